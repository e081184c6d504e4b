import { createHash } from 'crypto';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { errorKind } from '@berth/core';
import { RegistryResolver } from './resolver';

/** Small local HTTP servers standing in for a registry and its storage backend. */
async function listen(handler: http.RequestListener): Promise<{ url: string; host: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const data = Buffer.from('layer bytes served by a storage backend '.repeat(100));
const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: data.length };
const creds = { username: 'redirect-user', password: 'redirect-secret' };

describe('RegistryTransport against local fakes', () => {
  it('follows a blob redirect to another origin without sending the registry credentials there', async () => {
    const seenByStorage: (string | undefined)[] = [];
    const storage = await listen((req, res) => {
      seenByStorage.push(req.headers.authorization);
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(start ? 206 : 200, start ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {});
      res.end(data.subarray(start));
    });
    const registry = await listen((req, res) => {
      const expected = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' });
        return res.end();
      }
      res.writeHead(307, { location: `${storage.url}/bucket/blob?signature=abc` });
      res.end();
    });
    const resolver = new RegistryResolver({ plainHttp: true, credentials: creds, retryDelayMs: 1 });
    try {
      const fetcher = resolver.fetcher(`${registry.host}/repo`);
      const whole = await fetcher.fetch(desc);
      const chunks: Buffer[] = [];
      for await (const c of whole.body) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks)).toEqual(data);

      const rest = await fetcher.fetch(desc, { offset: 100 });
      let n = 0;
      for await (const c of rest.body) n += (c as Buffer).length;
      expect(rest.offset).toBe(100);
      expect(n).toBe(data.length - 100);
      expect(seenByStorage).toEqual([undefined, undefined]);
    } finally {
      await resolver.close();
      await registry.close();
      await storage.close();
    }
  });

  it('retries connection failures, then reports the host as unavailable', async () => {
    const gone = await listen(() => undefined);
    const host = gone.host;
    await gone.close();
    const resolver = new RegistryResolver({ plainHttp: true, retries: 2, retryDelayMs: 1 });
    try {
      const err = await resolver.resolve(`${host}/repo:tag`).catch((e: Error) => e);
      expect(errorKind(err)).toBe('unavailable');
      expect((err as Error).message).toContain(`connection to http://${host} failed: ECONNREFUSED`);
    } finally {
      await resolver.close();
    }
  });

  it('refuses a 403 as PermissionDenied and a manifest descriptor over the cap before any request', async () => {
    let requests = 0;
    const registry = await listen((_req, res) => {
      requests++;
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}');
    });
    const resolver = new RegistryResolver({ plainHttp: true, retryDelayMs: 1, maxManifestSize: 1000 });
    try {
      const err = await resolver.resolve(`${registry.host}/repo:tag`).catch((e: Error) => e);
      expect(errorKind(err)).toBe('permission-denied');
      // HEAD has no body, so no registry detail.
      expect((err as Error).message).toBe(`${registry.host}: access denied to manifest tag of ${registry.host}/repo (HTTP 403)`);
      const blob = await resolver.fetcher(`${registry.host}/repo`).fetch(desc).catch((e: Error) => e);
      expect((blob as Error).message).toBe(
        `${registry.host}: access denied to blob ${digest} (HTTP 403: DENIED: requested access to the resource is denied)`,
      );
      requests = 0;
      const big = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 5000 };
      const tooBig = await resolver.fetcher(`${registry.host}/repo`).fetch(big).catch((e: Error) => e);
      expect(errorKind(tooBig)).toBe('resource-exhausted');
      expect((tooBig as Error).message).toBe(
        `manifest ${digest} is 4.9 KiB, over the 1000 bytes limit for manifests and indexes`,
      );
      expect(requests).toBe(0);
    } finally {
      await resolver.close();
      await registry.close();
    }
  });
});
