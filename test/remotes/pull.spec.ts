import * as fs from 'fs';
import { type ContentStore, isNotFound } from '@berth/core';
import { type BlobProgress, pullImage, pushImage, RegistryResolver } from '@berth/remotes';
import { type FixtureImages, fixtureImages, inspectRaw, sha256 } from '../harness/images';
import { newTestContentStore } from '../harness/memory-content-store';
import { type RegistryHandle, startRegistry } from '../harness/registry';

/** Pulls from a real docker-registry (plain HTTP) seeded with the fixture images. */
describe('pull and push against a real registry (plain HTTP)', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  const roots: string[] = [];

  beforeAll(async () => {
    fixtures = await fixtureImages();
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  const newStore = () => newTestContentStore(roots);

  const options = { plainHttp: true, retryDelayMs: 10 };

  async function blobBytes(store: ContentStore, digest: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await store.read(digest)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async function has(store: ContentStore, digest: string): Promise<boolean> {
    try {
      await store.info(digest);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  it('pulls busybox:latest into a content store with the digests the registry serves and containerd GC labels', async () => {
    const store = await newStore();
    const events: BlobProgress[] = [];
    const result = await pullImage(registry.ref('busybox'), { ...options, store, onProgress: (e) => events.push(e) });

    const raw = await inspectRaw(registry.ref('busybox:latest'));
    expect(result.name).toBe(`${registry.host}/busybox:latest`);
    expect(result.target).toEqual({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: sha256(raw),
      size: raw.length,
    });
    expect(result.target.digest).toBe(fixtures.busybox.manifest.digest);
    expect(result.manifests.map((m) => m.digest)).toEqual([result.target.digest]);

    expect(await blobBytes(store, result.target.digest)).toEqual(raw);
    const manifest = JSON.parse(raw.toString()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
    for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
      const bytes = await blobBytes(store, d);
      expect(sha256(bytes)).toBe(d);
    }
    const info = await store.info(result.target.digest);
    expect(info.labels).toEqual({
      'containerd.io/gc.ref.content.config': manifest.config.digest,
      'containerd.io/gc.ref.content.l.0': manifest.layers[0].digest,
      'containerd.io/gc.ref.content.l.1': manifest.layers[1].digest,
      'containerd.io/gc.ref.content.l.2': manifest.layers[2].digest,
      [`containerd.io/distribution.source.${registry.host}`]: 'busybox',
    });
    expect((await store.info(manifest.layers[0].digest)).labels).toEqual({
      [`containerd.io/distribution.source.${registry.host}`]: 'busybox',
    });
    expect(await store.listStatuses()).toEqual([]);

    // Every blob reports its bytes and finishes 'done' at its full size.
    for (const layer of manifest.layers) {
      const mine = events.filter((e) => e.digest === layer.digest);
      expect(mine[0].status).toBe('waiting');
      expect(mine.at(-1)).toMatchObject({ status: 'done', offset: layer.size, total: layer.size });
      if (layer.size > 100_000) expect(mine.filter((e) => e.status === 'downloading').length).toBeGreaterThan(2);
    }

    // A second pull finds everything and downloads nothing.
    const again: BlobProgress[] = [];
    await pullImage(registry.ref('busybox:latest'), { ...options, store, onProgress: (e) => again.push(e) });
    expect(again.filter((e) => e.status === 'downloading')).toEqual([]);
    expect(new Set(again.filter((e) => e.status === 'exists').map((e) => e.digest)).size).toBe(5);
  });

  it('pulls Docker schema 2 media types (busybox-docker)', async () => {
    const store = await newStore();
    const result = await pullImage(registry.ref('busybox-docker:latest'), { ...options, store });
    expect(result.target).toEqual(fixtures.busyboxDocker.manifest);
    expect((await store.info(result.target.digest)).labels['containerd.io/gc.ref.content.config']).toBe(
      fixtures.busyboxDocker.config.digest,
    );
    for (const layer of fixtures.busyboxDocker.layers) expect(await has(store, layer.digest)).toBe(true);
  });

  it('pulls an index for the host platform only by default (linux/amd64)', async () => {
    const store = await newStore();
    const result = await pullImage(registry.ref('multi:latest'), { ...options, store });
    expect(result.target).toEqual({ ...fixtures.multi.index, mediaType: 'application/vnd.oci.image.index.v1+json' });
    expect(result.manifests.map((m) => m.digest)).toEqual([fixtures.multi.amd64.manifest.digest]);
    expect((await store.info(fixtures.multi.index.digest)).labels).toMatchObject({
      'containerd.io/gc.ref.content.m.0': fixtures.multi.amd64.manifest.digest,
    });
    expect((await store.info(fixtures.multi.index.digest)).labels['containerd.io/gc.ref.content.m.1']).toBeUndefined();
    expect(await has(store, fixtures.multi.amd64.layers[0].digest)).toBe(true);
    expect(await has(store, fixtures.multi.arm64.manifest.digest)).toBe(false);
    expect(await has(store, fixtures.multi.arm64.layers[0].digest)).toBe(false);
  });

  it('selects linux/arm64 when asked, and later adds amd64 without losing the arm64 reference', async () => {
    const store = await newStore();
    const result = await pullImage(registry.ref('multi'), { ...options, store, platforms: ['linux/arm64'] });
    expect(result.manifests.map((m) => m.digest)).toEqual([fixtures.multi.arm64.manifest.digest]);
    expect(await has(store, fixtures.multi.arm64.config.digest)).toBe(true);
    expect(await has(store, fixtures.multi.amd64.manifest.digest)).toBe(false);

    await pullImage(registry.ref('multi'), { ...options, store, platforms: ['linux/amd64'] });
    const labels = (await store.info(fixtures.multi.index.digest)).labels;
    expect(labels['containerd.io/gc.ref.content.m.0']).toBe(fixtures.multi.arm64.manifest.digest);
    expect(labels['containerd.io/gc.ref.content.m.1']).toBe(fixtures.multi.amd64.manifest.digest);
  });

  it('pulls every platform with allPlatforms', async () => {
    const store = await newStore();
    const result = await pullImage(registry.ref('multi'), { ...options, store, allPlatforms: true });
    expect(result.manifests.map((m) => m.digest).sort()).toEqual(
      [fixtures.multi.amd64.manifest.digest, fixtures.multi.arm64.manifest.digest].sort(),
    );
    expect((await store.info(fixtures.multi.index.digest)).labels).toMatchObject({
      'containerd.io/gc.ref.content.m.0': fixtures.multi.amd64.manifest.digest,
      'containerd.io/gc.ref.content.m.1': fixtures.multi.arm64.manifest.digest,
    });
    for (const blob of [...fixtures.multi.arm64.layers, fixtures.multi.arm64.config, ...fixtures.multi.amd64.layers]) {
      expect(await has(store, blob.digest)).toBe(true);
    }
  });

  it('fails clearly when no manifest matches the platform, storing nothing', async () => {
    const store = await newStore();
    const err = await pullImage(registry.ref('multi'), { ...options, store, platforms: ['linux/s390x'] }).catch((e: Error) => e);
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toBe(
      `${registry.host}/multi:latest: no manifest for platform linux/s390x in index ${fixtures.multi.index.digest}` +
        ' (it has: linux/amd64, linux/arm64)',
    );
    expect(await has(store, fixtures.multi.index.digest)).toBe(false);
  });

  it('pulls by digest', async () => {
    const store = await newStore();
    const ref = `${registry.host}/multi@${fixtures.multi.index.digest}`;
    const result = await pullImage(ref, { ...options, store, platforms: ['linux/arm64'] });
    expect(result.name).toBe(ref);
    expect(result.target.digest).toBe(fixtures.multi.index.digest);
  });

  it('reports a missing tag or repository as NotFound naming the reference', async () => {
    const store = await newStore();
    for (const ref of [registry.ref('busybox:nope'), registry.ref('no/such/repo')]) {
      const err = await pullImage(ref, { ...options, store }).catch((e: Error) => e);
      expect(isNotFound(err)).toBe(true);
      expect((err as Error).message).toContain(`${ref.includes(':nope') ? ref : `${ref}:latest`}: not found`);
    }
  });

  it('resolves with HEAD and fetches a manifest through the Fetcher', async () => {
    const resolver = new RegistryResolver(options);
    try {
      const { name, descriptor } = await resolver.resolve(registry.ref('multi'));
      expect(name).toBe(`${registry.host}/multi:latest`);
      expect(descriptor.digest).toBe(fixtures.multi.index.digest);
      const { body, offset } = await resolver.fetcher(name).fetch(descriptor);
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      expect(offset).toBe(0);
      expect(sha256(Buffer.concat(chunks))).toBe(descriptor.digest);

      // A blob from an offset: the registry honours Range.
      const layer = fixtures.busybox.layers[0];
      const partial = await resolver.fetcher(name).fetch(layer, { offset: 1000 });
      let n = 0;
      for await (const c of partial.body) n += (c as Buffer).length;
      expect(partial.offset).toBe(1000);
      expect(n).toBe(layer.size - 1000);
    } finally {
      await resolver.close();
    }
  });

  it('pushes a pulled image to another repository and pulls it back identical', async () => {
    const source = await newStore();
    const pulled = await pullImage(registry.ref('busybox'), { ...options, store: source });
    const events: BlobProgress[] = [];
    const pushed = await pushImage(registry.ref('copies/busybox:v1'), pulled.target, source, {
      ...options,
      onProgress: (e) => events.push(e),
    });
    expect(pushed.name).toBe(`${registry.host}/copies/busybox:v1`);
    expect(pushed.pushed.at(-1)).toEqual(pulled.target);
    expect(pushed.pushed).toHaveLength(5);

    expect(sha256(await inspectRaw(registry.ref('copies/busybox:v1')))).toBe(pulled.target.digest);
    const back = await newStore();
    const again = await pullImage(registry.ref('copies/busybox:v1'), { ...options, store: back });
    expect(again.target).toEqual(pulled.target);
    for (const layer of fixtures.busybox.layers) expect(await has(back, layer.digest)).toBe(true);
    // The second push finds everything there.
    const second: BlobProgress[] = [];
    await pushImage(registry.ref('copies/busybox:v1'), pulled.target, source, { ...options, onProgress: (e) => second.push(e) });
    expect(second.filter((e) => e.status === 'exists').map((e) => e.digest)).toContain(pulled.target.digest);
    expect(second.filter((e) => e.status === 'uploading' && e.offset > 0)).toEqual([]);
  });

  it('pushes a whole index (all platforms) and refuses an index whose platforms were not all pulled', async () => {
    const full = await newStore();
    const pulled = await pullImage(registry.ref('multi'), { ...options, store: full, allPlatforms: true });
    await pushImage(registry.ref('copies/multi:all'), pulled.target, full, options);
    expect(sha256(await inspectRaw(registry.ref('copies/multi:all')))).toBe(fixtures.multi.index.digest);

    const partial = await newStore();
    const one = await pullImage(registry.ref('multi'), { ...options, store: partial });
    const err = await pushImage(registry.ref('copies/multi:partial'), one.target, partial, options).catch((e: Error) => e);
    expect((err as Error).message).toContain(`${fixtures.multi.arm64.manifest.digest} (linux/arm64) is not in the local store`);
  });
});
