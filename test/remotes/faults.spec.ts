import * as fs from 'fs';
import * as path from 'path';
import { type ContentStore, errorKind, isNotFound } from '@berth/core';
import { type BlobProgress, ingestRefFor, pullImage, pushImage, RegistryResolver } from '@berth/remotes';
import { type FixtureImages, fixtureBlob, fixtureImages } from '../harness/images';
import { newTestContentStore } from '../harness/memory-content-store';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { type RegistryProxyHandle, startRegistryProxy } from '../harness/registry-proxy';

/**
 * Failure handling, with a fake (a Node proxy in front of a real registry)
 * that cuts, corrupts, truncates, stalls or answers itself, and counts requests.
 */
describe('pull through a misbehaving fake registry (proxy in front of docker-registry)', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let proxy: RegistryProxyHandle;
  const roots: string[] = [];
  const extraProxies: RegistryProxyHandle[] = [];
  const fast = { plainHttp: true, retryDelayMs: 5 };

  beforeAll(async () => {
    fixtures = await fixtureImages();
    registry = await startRegistry();
    proxy = await startRegistryProxy({ upstream: registry.url });
  });
  beforeEach(() => {
    proxy.intercept = undefined;
    proxy.requests.length = 0;
  });
  afterAll(async () => {
    for (const p of extraProxies) await p.stop();
    await proxy?.stop();
    await registry?.stop();
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  const bigLayer = () => fixtures.busybox.layers[0];
  const ref = (repoTag: string) => `${proxy.host}/${repoTag}`;
  const store = () => newTestContentStore(roots);
  const blobGets = (digest: string) => proxy.requestsFor(`/blobs/${digest}`, 'GET');

  async function has(s: ContentStore, digest: string): Promise<boolean> {
    return s.info(digest).then(
      () => true,
      (err: unknown) => {
        if (isNotFound(err)) return false;
        throw err;
      },
    );
  }

  it('fake serves a corrupted blob: the error names the digest, nothing is committed, the ingest is cleaned', async () => {
    const s = await store();
    const layer = bigLayer();
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(layer.digest) ? { corruptAt: 5000 } : undefined);
    const err = await pullImage(ref('busybox'), { ...fast, store: s }).catch((e: Error) => e);
    expect(errorKind(err)).toBe('data-loss');
    expect((err as Error).message).toContain(`blob ${layer.digest}`);
    expect((err as Error).message).toContain('does not match its digest');
    expect(await has(s, layer.digest)).toBe(false);
    expect((await s.listStatuses()).map((st) => st.ref)).not.toContain(ingestRefFor(layer.mediaType, layer.digest));
    // Wrong bytes are not retried: the registry would serve them again.
    expect(blobGets(layer.digest)).toHaveLength(1);
  });

  it('fake serves more bytes than the descriptor declares: refused, nothing committed', async () => {
    const s = await store();
    const config = fixtures.busybox.config;
    const padded = Buffer.concat([fixtureBlob(fixtures, config.digest), Buffer.from('trailing junk')]);
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(config.digest) ? { respond: { status: 200, body: padded } } : undefined);
    const err = await pullImage(ref('busybox'), { ...fast, store: s }).catch((e: Error) => e);
    expect(errorKind(err)).toBe('data-loss');
    expect((err as Error).message).toBe(
      `blob ${config.digest}: the registry sent more than the ${config.size} bytes its descriptor declares; nothing was committed`,
    );
    expect(await has(s, config.digest)).toBe(false);
    // Sibling layers stopped by the failure may keep partial ingests; the bad blob keeps none.
    expect((await s.listStatuses()).map((st) => st.ref)).not.toContain(ingestRefFor(config.mediaType, config.digest));
  });

  it('fake serves a truncated blob: the error names the digest and the partial ingest is kept for resume', async () => {
    const s = await store();
    const layer = bigLayer();
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(layer.digest) ? { truncateTo: 1000 } : undefined);
    const err = await pullImage(ref('busybox'), { ...fast, store: s, retries: 0 }).catch((e: Error) => e);
    expect(errorKind(err)).toBe('unavailable');
    expect((err as Error).message).toContain(`blob ${layer.digest}`);
    expect((err as Error).message).toContain(`after 1000 of ${layer.size} bytes (truncated)`);
    expect(await has(s, layer.digest)).toBe(false);
    const status = await s.status(ingestRefFor(layer.mediaType, layer.digest));
    expect(status.offset).toBe(1000);
  });

  it('resumes an interrupted blob with Range: bytes=N- and transfers only the rest', async () => {
    const s = await store();
    const layer = bigLayer();
    const cut = 300_000;
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(layer.digest) ? { cutAfter: cut } : undefined);
    const first = await pullImage(ref('busybox'), { ...fast, store: s, retries: 0 }).catch((e: Error) => e);
    expect(errorKind(first)).toBe('unavailable');
    expect((first as Error).message).toContain(layer.digest);
    const ingestRef = ingestRefFor(layer.mediaType, layer.digest);
    const held = (await s.status(ingestRef)).offset;
    expect(held).toBe(cut);

    proxy.intercept = undefined;
    proxy.requests.length = 0;
    const events: BlobProgress[] = [];
    await pullImage(ref('busybox'), { ...fast, store: s, onProgress: (e) => events.push(e) });
    const [resumed] = blobGets(layer.digest);
    expect(blobGets(layer.digest)).toHaveLength(1);
    expect(resumed.range).toBe(`bytes=${cut}-`);
    expect(resumed.status).toBe(206);
    expect(resumed.bytesSent).toBe(layer.size - cut);
    expect(await has(s, layer.digest)).toBe(true);
    // Progress starts where the ingest was.
    expect(events.find((e) => e.digest === layer.digest && e.status === 'downloading')?.offset).toBe(cut);
    expect(await s.listStatuses()).toEqual([]);
  });

  it('resumes within one pull when retries are allowed', async () => {
    const s = await store();
    const layer = bigLayer();
    let cuts = 0;
    proxy.intercept = (r) =>
      r.method === 'GET' && r.url.includes(layer.digest) && cuts++ === 0 ? { cutAfter: 100_000 } : undefined;
    await pullImage(ref('busybox'), { ...fast, store: s });
    expect(blobGets(layer.digest).map((r) => r.range)).toEqual([undefined, 'bytes=100000-']);
    expect(await has(s, layer.digest)).toBe(true);
  });

  it('restarts from zero when the registry ignores Range (200 instead of 206)', async () => {
    const s = await store();
    const layer = bigLayer();
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(layer.digest) ? { cutAfter: 50_000 } : undefined);
    await pullImage(ref('busybox'), { ...fast, store: s, retries: 0 }).catch(() => undefined);
    proxy.requests.length = 0;
    proxy.intercept = (r) => (r.url.includes(layer.digest) ? { ignoreRange: true } : undefined);
    await pullImage(ref('busybox'), { ...fast, store: s });
    const [again] = blobGets(layer.digest);
    expect(again.range).toBe('bytes=50000-');
    expect(again.status).toBe(200);
    expect(again.bytesSent).toBe(layer.size);
    expect(await has(s, layer.digest)).toBe(true);
  });

  it('aborts a stalled transfer after the progress deadline with DeadlineExceeded naming the digest', async () => {
    const s = await store();
    const layer = bigLayer();
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(layer.digest) ? { stallAfter: 20_000 } : undefined);
    // Long enough for a cold registry's first answers on a busy machine, short for a test.
    const started = Date.now();
    const err = await pullImage(ref('busybox'), { ...fast, store: s, progressTimeoutMs: 1500 }).catch((e: Error) => e);
    const elapsed = Date.now() - started;
    expect(errorKind(err)).toBe('deadline-exceeded');
    expect((err as Error).message).toContain(`blob ${layer.digest}: no progress for 1.5s`);
    expect(elapsed).toBeGreaterThanOrEqual(1500);
    expect(elapsed).toBeLessThan(6000);
    expect((await s.status(ingestRefFor(layer.mediaType, layer.digest))).offset).toBe(20_000);
  });

  it('stops promptly when the caller aborts, reporting Canceled and keeping the partial ingest', async () => {
    const s = await store();
    const layer = bigLayer();
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(layer.digest) ? { stallAfter: 10_000 } : undefined);
    const controller = new AbortController();
    const events: BlobProgress[] = [];
    const pulling = pullImage(ref('busybox'), {
      ...fast,
      store: s,
      signal: controller.signal,
      onProgress: (e) => {
        events.push(e);
        if (e.digest === layer.digest && e.offset >= 10_000) controller.abort();
      },
    });
    const err = await pulling.catch((e: Error) => e);
    expect(errorKind(err)).toBe('canceled');
    expect((await s.status(ingestRefFor(layer.mediaType, layer.digest))).offset).toBe(10_000);
  });

  it('retries 5xx answers with backoff', async () => {
    const s = await store();
    const config = fixtures.busybox.config;
    let failures = 0;
    proxy.intercept = (r) =>
      r.url.includes(config.digest) && failures++ < 2 ? { respond: { status: 503, body: 'busy' } } : undefined;
    await pullImage(ref('busybox'), { ...fast, store: s });
    expect(blobGets(config.digest).map((r) => r.status)).toEqual([503, 503, 200]);
  });

  it('gives up after the last retry with the status in the message', async () => {
    const s = await store();
    const config = fixtures.busybox.config;
    proxy.intercept = (r) => (r.url.includes(config.digest) ? { respond: { status: 502, body: 'bad gateway' } } : undefined);
    const err = await pullImage(ref('busybox'), { ...fast, store: s, retries: 2 }).catch((e: Error) => e);
    expect(errorKind(err)).toBe('unavailable');
    expect((err as Error).message).toContain(`answered HTTP 502 for blob ${config.digest} after 3 attempts`);
    expect(blobGets(config.digest)).toHaveLength(3);
  });

  it('two concurrent pulls of one image fetch each blob once', async () => {
    const s = await store();
    const a: BlobProgress[] = [];
    const b: BlobProgress[] = [];
    const [ra, rb] = await Promise.all([
      pullImage(ref('multi'), { ...fast, store: s, allPlatforms: true, onProgress: (e) => a.push(e) }),
      pullImage(ref('multi'), { ...fast, store: s, allPlatforms: true, onProgress: (e) => b.push(e) }),
    ]);
    expect(ra.target).toEqual(rb.target);
    const blobs = [
      fixtures.multi.amd64.config,
      ...fixtures.multi.amd64.layers,
      fixtures.multi.arm64.config,
      ...fixtures.multi.arm64.layers,
    ];
    for (const blob of blobs) expect(blobGets(blob.digest)).toHaveLength(1);
    for (const m of [fixtures.multi.index, fixtures.multi.amd64.manifest, fixtures.multi.arm64.manifest]) {
      expect(proxy.requestsFor(`/manifests/${m.digest}`, 'GET').length).toBeLessThanOrEqual(1);
    }
    for (const blob of blobs) expect(await has(s, blob.digest)).toBe(true);
    // Both pulls see every blob finish.
    for (const events of [a, b]) {
      for (const blob of blobs) {
        expect(events.filter((e) => e.digest === blob.digest).at(-1)?.status).toMatch(/^(done|exists)$/);
      }
    }
  });

  it('rejects a manifest over the size cap', async () => {
    const s = await store();
    const err = await pullImage(ref('busybox'), { ...fast, store: s, maxManifestSize: 256 }).catch((e: Error) => e);
    expect(errorKind(err)).toBe('resource-exhausted');
    expect((err as Error).message).toMatch(/manifest latest of .*busybox .* is \d+ bytes, over the 256 bytes limit for manifests and indexes/);

    // A fake that answers HEAD without a size and sends 5 MiB on GET.
    const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
    proxy.intercept = (r) =>
      r.url.startsWith('/v2/huge/manifests/')
        ? r.method === 'HEAD'
          ? { respond: { status: 405 } }
          : { respond: { status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: huge } }
        : undefined;
    const big = await pullImage(ref('huge:latest'), { ...fast, store: s }).catch((e: Error) => e);
    expect(errorKind(big)).toBe('resource-exhausted');
    expect((big as Error).message).toContain('is 5 MiB, over the 4 MiB limit for manifests and indexes');
  });

  it('rejects an unsupported manifest media type, naming it', async () => {
    const s = await store();
    const schema1 = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
    proxy.intercept = (r) =>
      r.url.startsWith('/v2/legacy/manifests/')
        ? { respond: { status: 200, headers: { 'content-type': schema1, 'docker-content-digest': fixtures.busybox.config.digest }, body: '{}' } }
        : undefined;
    const err = await pullImage(ref('legacy:old'), { ...fast, store: s }).catch((e: Error) => e);
    expect(errorKind(err)).toBe('not-implemented');
    expect((err as Error).message).toBe(
      `${proxy.host}/legacy:old: unsupported manifest media type "${schema1}" (Docker schema 1 manifests are deprecated and not supported); ` +
        'berth reads OCI image indexes and manifests and Docker schema 2 manifest lists and manifests',
    );
  });

  it('falls back to GET when HEAD gives no digest', async () => {
    const s = await store();
    proxy.intercept = (r) => (r.method === 'HEAD' && r.url.includes('/manifests/') ? { respond: { status: 405 } } : undefined);
    const result = await pullImage(ref('multi'), { ...fast, store: s });
    expect(result.target.digest).toBe(fixtures.multi.index.digest);
    expect(proxy.requestsFor('/manifests/latest', 'GET')).toHaveLength(1);
  });

  it('uses a hosts.toml mirror before the server, and the server when the mirror lacks the image', async () => {
    const server = await startRegistryProxy({ upstream: registry.url });
    const mirror = await startRegistryProxy({ upstream: registry.url });
    extraProxies.push(server, mirror);
    const hostsDir = path.join(registry.dir, 'hosts');
    fs.mkdirSync(path.join(hostsDir, server.host), { recursive: true });
    fs.writeFileSync(
      path.join(hostsDir, server.host, 'hosts.toml'),
      `server = "${server.url}"\n\n[host."${mirror.url}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const s = await store();
    const result = await pullImage(`${server.host}/busybox:latest`, { retryDelayMs: 5, store: s, hostsDir });
    expect(result.target.digest).toBe(fixtures.busybox.manifest.digest);
    expect(server.requests).toEqual([]);
    expect(mirror.requests.length).toBeGreaterThanOrEqual(5);
    // containerd tells a mirror which registry it stands in for.
    expect(mirror.requests.every((r) => r.url.includes(`ns=${encodeURIComponent(server.host)}`))).toBe(true);

    mirror.requests.length = 0;
    mirror.intercept = () => ({ respond: { status: 404, body: '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}' } });
    const fromServer = await pullImage(`${server.host}/multi:latest`, { retryDelayMs: 5, store: s, hostsDir });
    expect(fromServer.target.digest).toBe(fixtures.multi.index.digest);
    expect(mirror.requests.length).toBeGreaterThan(0);
    expect(server.requestsFor('/manifests/latest', 'HEAD')).toHaveLength(1);

    // Pushes skip a pull-only mirror.
    mirror.requests.length = 0;
    await pushImage(`${server.host}/mirrored/busybox:1`, result.target, s, { retryDelayMs: 5, hostsDir });
    expect(mirror.requests).toEqual([]);
    expect(server.requestsFor('/v2/mirrored/busybox/manifests/1', 'PUT')).toHaveLength(1);
  });

  it('mounts blobs from the source repository when pushing within one registry', async () => {
    const s = await store();
    const pulled = await pullImage(ref('busybox'), { ...fast, store: s });
    proxy.requests.length = 0;
    const events: BlobProgress[] = [];
    await pushImage(ref('mounted/busybox:1'), pulled.target, s, { ...fast, onProgress: (e) => events.push(e) });
    const mounts = proxy.requests.filter((r) => r.method === 'POST' && r.url.includes('mount='));
    expect(mounts.length).toBe(4);
    expect(mounts.every((r) => r.status === 201 && r.url.includes('from=busybox'))).toBe(true);
    expect(proxy.requests.filter((r) => r.method === 'PUT' && r.url.includes('/blobs/uploads/'))).toEqual([]);
    const resolver = new RegistryResolver(fast);
    expect((await resolver.resolve(ref('mounted/busybox:1'))).descriptor.digest).toBe(pulled.target.digest);
    await resolver.close();
  });
});
