import { randomBytes } from 'crypto';
import { Readable } from 'stream';
import { type Berth, type BlobProgress, isNotFound } from '@berth/core';
import { createBerth } from '@berth/builtins';
import { bothDoors, type Door } from '../harness/doors';
import { type FixtureImages, fixtureBlob, fixtureImages } from '../harness/images';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { sha256Hex } from './helpers';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

// One registry for both doors; each door has its own store.
let registry: RegistryHandle;
let fixtures: FixtureImages;
beforeAll(async () => {
  [registry, fixtures] = await Promise.all([startRegistry(), fixtureImages()]);
});
afterAll(() => registry?.stop());

// One suite, two doors: images, content and leases behave the same in-process and over gRPC.
describe.each(
  bothDoors({ inProcess: { createBerth, name: 'createBerth (in-process, @berth/builtins)' } }),
)('facade images, content and leases: %s', (_name, makeDoor) => {
  let door: Door;
  let berth: Berth;
  beforeAll(async () => {
    door = makeDoor();
    berth = await door.open();
  });
  afterAll(() => door.close());

  const name = () => registry.ref('busybox:latest');
  const blobs = () => [fixtures.busybox.manifest, fixtures.busybox.config, ...fixtures.busybox.layers];

  it('images.pull reports progress: every blob ends done, no offset ever goes back', async () => {
    const snapshots: BlobProgress[][] = [];
    const image = await berth.images.pull(name(), {
      registry: { plainHttp: true },
      onProgress: (b) => snapshots.push(b.map((x) => ({ ...x }))),
    });
    expect(image.name).toBe(name());
    expect(image.target).toMatchObject({ digest: fixtures.busybox.manifest.digest, size: fixtures.busybox.manifest.size });
    expect(snapshots.length).toBeGreaterThan(0);
    for (const blob of blobs()) {
      const seen = snapshots.flatMap((s) => s.filter((b) => b.digest === blob.digest));
      expect(seen.map((b) => b.status)).toContain('done');
      const offsets = seen.map((b) => b.offset);
      for (let i = 1; i < offsets.length; i++) expect(offsets[i]).toBeGreaterThanOrEqual(offsets[i - 1]);
      expect(seen.at(-1)).toMatchObject({ offset: blob.size, total: blob.size, mediaType: blob.mediaType, status: 'done' });
    }
  });

  it('images.list, get, tag and delete', async () => {
    expect((await berth.images.list()).map((i) => i.name)).toEqual([name()]);
    const got = await berth.images.get(name());
    expect(got.target.digest).toBe(fixtures.busybox.manifest.digest);

    const tagged = await berth.images.tag(name(), 'local/busybox:copy');
    expect(tagged).toMatchObject({ name: 'local/busybox:copy', target: got.target });
    expect((await berth.images.list(['name~=local/'])).map((i) => [i.name, i.target.digest])).toEqual([
      ['local/busybox:copy', fixtures.busybox.manifest.digest],
    ]);
    await expect(berth.images.tag(name(), 'local/busybox:copy')).rejects.toMatchObject({ kind: 'already-exists' });

    await berth.images.delete('local/busybox:copy', { sync: true });
    expect(isNotFound(await berth.images.get('local/busybox:copy').catch((e: unknown) => e))).toBe(true);
    // The other name still holds every blob.
    for (const blob of blobs()) expect((await berth.content.info(blob.digest)).size).toBe(blob.size);
  });

  it('content.read returns the bytes the registry serves, whole and by range', async () => {
    for (const blob of blobs()) {
      const bytes = await readAll(await berth.content.read(blob.digest));
      expect(sha256Hex(bytes)).toBe(blob.digest);
      expect(bytes.equals(fixtureBlob(fixtures, blob.digest))).toBe(true);
    }
    const layer = fixtures.busybox.layers[0];
    const part = await readAll(await berth.content.read(layer.digest, { offset: 1000, length: 5000 }));
    expect(part.equals(fixtureBlob(fixtures, layer.digest).subarray(1000, 6000))).toBe(true);
    const missing = await berth.content.read(`sha256:${'1'.repeat(64)}`).catch((e: unknown) => e);
    expect(isNotFound(missing)).toBe(true);
  });

  it('leases.create and list; content.ingest under the lease, then info; leases.delete lets GC take it', async () => {
    const lease = await berth.leases.create({ id: 'facade-upload', labels: { purpose: 'test' } });
    expect(lease).toMatchObject({ id: 'facade-upload', labels: { purpose: 'test' } });
    expect((await berth.leases.list()).map((l) => l.id)).toContain('facade-upload');

    const data = randomBytes(200_000);
    const digest = sha256Hex(data);
    const ingested = await berth
      .withLease('facade-upload')
      .content.ingest('facade-ref', Readable.from([data.subarray(0, 70_000), data.subarray(70_000)]), {
        expected: { size: data.length, digest },
        labels: { source: 'facade' },
      });
    expect(ingested).toMatchObject({ digest, size: data.length, labels: { source: 'facade' } });
    expect(await berth.content.info(digest)).toMatchObject({ digest, size: data.length, labels: { source: 'facade' } });
    expect((await readAll(await berth.content.read(digest))).equals(data)).toBe(true);
    expect(await berth.leases.listResources('facade-upload')).toEqual([{ id: digest, type: 'content' }]);
    expect(await berth.content.active()).toEqual([]);

    await berth.leases.delete('facade-upload', { sync: true });
    expect((await berth.leases.list()).map((l) => l.id)).not.toContain('facade-upload');
    expect(isNotFound(await berth.content.info(digest).catch((e: unknown) => e))).toBe(true);
  });
});
