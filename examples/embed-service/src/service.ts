import * as http from 'http';
import { AddressInfo } from 'net';
import { Berth, errorKind, toGrpcCode } from '@berth/core';
import { createBerth } from '@berth/builtins';

export interface EmbedServiceOptions {
  root: string;
  state: string;
  port?: number;
  host?: string;
}

export interface RunningService {
  url: string;
  berth: Berth;
  close(): Promise<void>;
}

/** berth error kinds → HTTP statuses, so callers see NotFound as 404 and so on. */
function httpStatus(err: unknown): number {
  switch (errorKind(err)) {
    case 'invalid-argument':
      return 400;
    case 'not-found':
      return 404;
    case 'already-exists':
    case 'failed-precondition':
      return 409;
    default:
      return 500;
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
      if (body.length > 64 * 1024) reject(new Error('request body too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/**
 * A small service with berth inside: `GET /namespaces` lists namespaces,
 * `POST /namespaces` with `{"name": ..., "labels": {...}}` creates one.
 */
export async function startEmbedService(options: EmbedServiceOptions): Promise<RunningService> {
  const berth = await createBerth({ root: options.root, state: options.state });
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body) + '\n');
    };
    const handle = async () => {
      if (req.url === '/namespaces' && req.method === 'GET') {
        return reply(200, { namespaces: await berth.namespaces.list() });
      }
      if (req.url === '/namespaces' && req.method === 'POST') {
        const input = JSON.parse((await readBody(req)) || '{}') as { name?: string; labels?: Record<string, string> };
        return reply(201, await berth.namespaces.create(input.name ?? '', input.labels ?? {}));
      }
      reply(404, { error: `no route for ${req.method} ${req.url}` });
    };
    handle().catch((err: unknown) =>
      reply(err instanceof SyntaxError ? 400 : httpStatus(err), {
        error: err instanceof Error ? err.message : String(err),
        code: toGrpcCode(err),
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}`,
    berth,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await berth.close();
    },
  };
}
