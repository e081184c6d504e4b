import * as http from 'http';
import type { AddressInfo } from 'net';

/**
 * A fake in front of a real registry: it relays requests to the upstream and
 * can misbehave on purpose (cut, corrupt, truncate, stall, ignore Range, or
 * answer itself), recording every request. Real registries do not serve
 * corrupt data, so tests that need it say they use this fake.
 */

/** What the proxy saw and did for one request. */
export interface ProxiedRequest {
  method: string;
  /** Path and query, e.g. `/v2/busybox/blobs/sha256:...`. */
  url: string;
  /** The Range header the client sent, if any. */
  range?: string;
  authorization: boolean;
  status?: number;
  /** Body bytes sent to the client. */
  bytesSent: number;
}

/** How to misbehave for one request (decided by `intercept`). */
export type Misbehaviour =
  /** Answer without asking upstream. */
  | { respond: { status: number; headers?: Record<string, string>; body?: Buffer | string } }
  /** Relay, then destroy the connection after this many body bytes. */
  | { cutAfter: number }
  /** Relay with the byte at this body offset flipped. */
  | { corruptAt: number }
  /** Relay only this many body bytes, as a complete response (Content-Length says so). */
  | { truncateTo: number }
  /** Relay this many body bytes, then send nothing more while keeping the connection open. */
  | { stallAfter: number }
  /** Drop the client's Range header, so upstream sends the whole blob with 200. */
  | { ignoreRange: true };

export interface RegistryProxyOptions {
  /** `http://127.0.0.1:<port>` of the real registry. */
  upstream: string;
  /** Decides per request; undefined relays faithfully. Can be replaced later via `handle.intercept`. */
  intercept?: (req: ProxiedRequest) => Misbehaviour | undefined;
}

export interface RegistryProxyHandle {
  host: string;
  url: string;
  requests: ProxiedRequest[];
  intercept: ((req: ProxiedRequest) => Misbehaviour | undefined) | undefined;
  /** Requests whose path contains `fragment` (e.g. a digest), optionally of one method. */
  requestsFor(fragment: string, method?: string): ProxiedRequest[];
  stop(): Promise<void>;
}

export async function startRegistryProxy(options: RegistryProxyOptions): Promise<RegistryProxyHandle> {
  const upstream = new URL(options.upstream);
  const requests: ProxiedRequest[] = [];
  const stalled = new Set<http.ServerResponse>();

  const handle: RegistryProxyHandle = {
    host: '',
    url: '',
    requests,
    intercept: options.intercept,
    requestsFor: (fragment, method) =>
      requests.filter((r) => r.url.includes(fragment) && (method === undefined || r.method === method)),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const res of stalled) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const server = http.createServer((req, res) => {
    const record: ProxiedRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      range: req.headers.range,
      authorization: req.headers.authorization !== undefined,
      bytesSent: 0,
    };
    requests.push(record);
    const plan = handle.intercept?.(record);

    if (plan && 'respond' in plan) {
      const body = plan.respond.body === undefined ? Buffer.alloc(0) : Buffer.from(plan.respond.body);
      record.status = plan.respond.status;
      res.writeHead(plan.respond.status, { 'content-length': String(body.length), ...plan.respond.headers });
      if (req.method === 'HEAD') return res.end();
      record.bytesSent = body.length;
      res.end(body);
      return;
    }

    const headers = { ...req.headers };
    if (plan && 'ignoreRange' in plan) delete headers.range;
    const upstreamReq = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (up) => {
        record.status = up.statusCode;
        const outHeaders = { ...up.headers };
        if (plan && 'truncateTo' in plan) outHeaders['content-length'] = String(plan.truncateTo);
        res.writeHead(up.statusCode ?? 502, outHeaders);
        let offset = 0;
        up.on('data', (chunk: Buffer) => {
          if (res.destroyed) return;
          let out = chunk;
          if (plan && 'corruptAt' in plan && plan.corruptAt >= offset && plan.corruptAt < offset + chunk.length) {
            out = Buffer.from(chunk);
            out[plan.corruptAt - offset] ^= 0xff;
          }
          const limit =
            plan && 'cutAfter' in plan
              ? plan.cutAfter
              : plan && 'truncateTo' in plan
                ? plan.truncateTo
                : plan && 'stallAfter' in plan
                  ? plan.stallAfter
                  : Infinity;
          if (offset + out.length > limit) out = out.subarray(0, Math.max(0, limit - offset));
          offset += chunk.length;
          if (out.length) {
            res.write(out);
            record.bytesSent += out.length;
          }
          if (offset >= limit) {
            up.destroy();
            if (plan && 'cutAfter' in plan) {
              // Flush what was written, then close the connection mid-body.
              res.socket?.end();
            } else if (plan && 'truncateTo' in plan) {
              res.end();
            } else {
              stalled.add(res);
            }
          }
        });
        up.on('end', () => {
          if (!res.destroyed && !res.writableEnded && !stalled.has(res)) res.end();
        });
        up.on('error', () => res.destroy());
      },
    );
    upstreamReq.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstreamReq);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  handle.host = `127.0.0.1:${port}`;
  handle.url = `http://127.0.0.1:${port}`;
  return handle;
}
