import { PassThrough } from 'stream';
import { errorKind, type ContentInfo, type Descriptor } from '@berth/core';
import { exportArchive } from './export';
import { MemoryContentStore } from './test-fixtures/memory-content-store';
import { allDigests, buildImage, buildIndex, Collector, listTar, OCI, sha256 } from './test-fixtures/images';

async function exportToBuffer(...args: Parameters<typeof exportArchive>): Promise<Buffer> {
  const [out, options] = args;
  await exportArchive(out, options);
  return (out as Collector).buffer;
}

function blobMembers(members: Awaited<ReturnType<typeof listTar>>): string[] {
  return members.filter((m) => m.path.startsWith('blobs/sha256/') && m.type === 'File').map((m) => `sha256:${m.path.slice(13)}`);
}

describe('exportArchive', () => {
  it('writes an OCI layout: oci-layout, index.json naming each image, manifest.json, and every blob once', async () => {
    const store = new MemoryContentStore();
    const image = await buildImage(store);
    const tar = await exportToBuffer(new Collector(), {
      provider: store,
      images: [
        { name: 'docker.io/library/busybox:1.36', target: image.manifest },
        { name: 'registry.example.com:5000/team/app:v2', target: image.manifest },
      ],
    });
    const members = await listTar(tar);
    const byPath = new Map(members.map((m) => [m.path, m]));

    expect(members.slice(0, 3).map((m) => m.path)).toEqual(['oci-layout', 'index.json', 'manifest.json']);
    expect(JSON.parse(byPath.get('oci-layout')!.data.toString())).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(byPath.get('blobs/')?.type).toBe('Directory');
    expect(byPath.get('blobs/sha256/')?.type).toBe('Directory');

    const index = JSON.parse(byPath.get('index.json')!.data.toString());
    expect(index.schemaVersion).toBe(2);
    expect(index.mediaType).toBe(OCI.index);
    expect(index.manifests).toHaveLength(2);
    expect(index.manifests[0]).toMatchObject({
      mediaType: OCI.manifest,
      digest: image.manifest.digest,
      size: image.manifest.size,
      annotations: {
        'io.containerd.image.name': 'docker.io/library/busybox:1.36',
        'org.opencontainers.image.ref.name': '1.36',
      },
    });
    expect(index.manifests[1].annotations).toEqual({
      'io.containerd.image.name': 'registry.example.com:5000/team/app:v2',
      'org.opencontainers.image.ref.name': 'v2',
    });

    // One manifest.json entry per manifest, with docker's short names.
    expect(JSON.parse(byPath.get('manifest.json')!.data.toString())).toEqual([
      {
        Config: `blobs/sha256/${image.config.digest.slice(7)}`,
        RepoTags: ['busybox:1.36', 'registry.example.com:5000/team/app:v2'],
        Layers: image.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
      },
    ]);

    expect(blobMembers(members).sort()).toEqual(allDigests(image).sort());
    for (const digest of allDigests(image)) {
      const member = byPath.get(`blobs/sha256/${digest.slice(7)}`)!;
      expect(sha256(member.data)).toBe(digest);
      expect(member.mode).toBe(0o444);
    }
  });

  it('leaves manifest.json out with skipDockerManifest', async () => {
    const store = new MemoryContentStore();
    const image = await buildImage(store);
    const members = await listTar(
      await exportToBuffer(new Collector(), {
        provider: store,
        images: [{ name: 'example.com/a:1', target: image.manifest }],
        skipDockerManifest: true,
      }),
    );
    expect(members.map((m) => m.path).filter((p) => !p.startsWith('blobs/'))).toEqual(['oci-layout', 'index.json']);
  });

  it('is reproducible: the same images give the same bytes', async () => {
    const store = new MemoryContentStore();
    const { index } = await buildIndex(store);
    const options = { provider: store, images: [{ name: 'example.com/multi:1', target: index }] };
    const first = await exportToBuffer(new Collector(), options);
    const second = await exportToBuffer(new Collector(), options);
    expect(first.equals(second)).toBe(true);
    expect(first.length % 512).toBe(0);
  });

  it('exports every platform of an index by default, each blob once', async () => {
    const store = new MemoryContentStore();
    const { index, images } = await buildIndex(store);
    const members = await listTar(
      await exportToBuffer(new Collector(), { provider: store, images: [{ name: 'example.com/multi:1', target: index }] }),
    );
    const expected = [index.digest, ...images.flatMap(allDigests)];
    expect(blobMembers(members).sort()).toEqual([...new Set(expected)].sort());
    // Two platforms and no preference: docker load cannot be told which, so no manifest.json.
    expect(members.some((m) => m.path === 'manifest.json')).toBe(false);
  });

  it('with platforms, exports only those platforms and picks that manifest for manifest.json', async () => {
    const store = new MemoryContentStore();
    const { index, images } = await buildIndex(store);
    const [amd64, arm64] = images;
    const members = await listTar(
      await exportToBuffer(new Collector(), {
        provider: store,
        images: [{ name: 'example.com/multi:1', target: index }],
        platforms: ['linux/arm64'],
      }),
    );
    const blobs = blobMembers(members);
    expect(blobs.sort()).toEqual([index.digest, ...allDigests(arm64)].sort());
    expect(blobs).not.toContain(amd64.manifest.digest);
    const dockerManifest = JSON.parse(members.find((m) => m.path === 'manifest.json')!.data.toString());
    expect(dockerManifest).toEqual([
      {
        Config: `blobs/sha256/${arm64.config.digest.slice(7)}`,
        RepoTags: ['example.com/multi:1'],
        Layers: arm64.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
      },
    ]);
  });

  it('skips platforms not present locally, keeping the index that lists them', async () => {
    const store = new MemoryContentStore();
    const { index, images } = await buildIndex(store);
    const [amd64, arm64] = images;
    await store.delete(arm64.layers[1].digest);

    const members = await listTar(
      await exportToBuffer(new Collector(), { provider: store, images: [{ name: 'example.com/multi:1', target: index }] }),
    );
    const blobs = blobMembers(members);
    expect(blobs.sort()).toEqual([index.digest, ...allDigests(amd64)].sort());
    // arm64 is incomplete, so none of it goes in: no manifest without its layers.
    expect(blobs).not.toContain(arm64.manifest.digest);
    expect(blobs).not.toContain(arm64.layers[0].digest);
  });

  it('refuses, naming the digest, when a requested platform is incomplete, and writes nothing', async () => {
    const store = new MemoryContentStore();
    const { index, images } = await buildIndex(store);
    const missing = images[1].layers[2].digest;
    await store.delete(missing);

    for (const options of [{ platforms: ['linux/arm64'] }, { allPlatforms: true }]) {
      const out = new Collector();
      const err = await exportArchive(out, {
        provider: store,
        images: [{ name: 'example.com/multi:1', target: index }],
        ...options,
      }).catch((e: unknown) => e);
      expect(errorKind(err)).toBe('not-found');
      expect((err as Error).message).toContain(missing);
      expect(out.buffer.length).toBe(0);
      expect(out.writableEnded).toBe(false);
    }
  });

  it('refuses an image whose manifest or layer is missing (NotFound naming the digest)', async () => {
    const store = new MemoryContentStore();
    const image = await buildImage(store);
    await store.delete(image.layers[0].digest);
    await expect(
      exportArchive(new Collector(), { provider: store, images: [{ name: 'example.com/a:1', target: image.manifest }] }),
    ).rejects.toMatchObject({ kind: 'not-found', message: expect.stringContaining(image.layers[0].digest) });

    const ghost: Descriptor = { mediaType: OCI.manifest, digest: sha256('nothing'), size: 7 };
    await expect(
      exportArchive(new Collector(), { provider: store, images: [{ name: 'example.com/b:1', target: ghost }] }),
    ).rejects.toMatchObject({ kind: 'not-found', message: expect.stringContaining(ghost.digest) });
  });

  it('refuses an index with no platform present at all', async () => {
    const store = new MemoryContentStore();
    const { index, images } = await buildIndex(store);
    for (const image of images) await store.delete(image.manifest.digest);
    await expect(
      exportArchive(new Collector(), { provider: store, images: [{ name: 'example.com/multi:1', target: index }] }),
    ).rejects.toMatchObject({ kind: 'not-found', message: expect.stringContaining(index.digest) });
  });

  it('refuses targets that are not manifests or indexes, and bad digests', async () => {
    const store = new MemoryContentStore();
    const image = await buildImage(store);
    await expect(
      exportArchive(new Collector(), { provider: store, images: [{ name: 'x:1', target: image.config }] }),
    ).rejects.toMatchObject({ kind: 'invalid-argument' });
    await expect(
      exportArchive(new Collector(), {
        provider: store,
        images: [{ name: 'x:1', target: { ...image.manifest, digest: 'sha256:../../etc/passwd' } }],
      }),
    ).rejects.toMatchObject({ kind: 'invalid-argument' });
  });

  it('fails with DataLoss and destroys the output when a stored blob does not match its digest', async () => {
    const store = new MemoryContentStore();
    const image = await buildImage(store);
    const layer = image.layers[1].digest;
    const stored = store.blobs.get(layer)!;
    const corrupt = Buffer.from(stored.data);
    corrupt[100] ^= 0xff;
    store.blobs.set(layer, { data: corrupt, info: stored.info as ContentInfo });

    const out = new PassThrough();
    out.resume();
    const err = await exportArchive(out, { provider: store, images: [{ name: 'example.com/a:1', target: image.manifest }] }).catch(
      (e: unknown) => e,
    );
    expect(errorKind(err)).toBe('data-loss');
    expect((err as Error).message).toContain(layer);
    expect(out.destroyed).toBe(true);
  });

  it('streams: a slow reader holds the export back instead of it buffering layers', async () => {
    const store = new MemoryContentStore();
    const image = await buildImage(store, undefined, [4 * 1024 * 1024, 4 * 1024 * 1024]);
    const out = new PassThrough({ highWaterMark: 64 * 1024 });
    const done = exportArchive(out, { provider: store, images: [{ name: 'example.com/big:1', target: image.manifest }] });
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Nothing reads `out`, so the export must be waiting with well under a layer buffered.
    expect(out.readableLength).toBeLessThan(1024 * 1024);
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await done;
    expect(Buffer.concat(chunks).length).toBeGreaterThan(8 * 1024 * 1024);
  });
});
