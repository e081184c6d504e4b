import { createHash } from 'crypto';
import { Readable } from 'stream';
import { gzipSync } from 'zlib';
import type { ContentStore, ContentWriter, Descriptor, WriterOptions } from '@berth/core';
import { exportArchive } from './export';
import { importArchive, type ImportArchiveOptions } from './import';
import { MemoryContentStore } from './test-fixtures/memory-content-store';
import { tarHeader } from './tar-writer';
import {
  allDigests,
  buildImage,
  buildIndex,
  Collector,
  json,
  layerTar,
  OCI,
  rawTar,
  sha256,
  streamOf,
  type RawMember,
} from './test-fixtures/images';

const today = () => `import-${new Date().toISOString().slice(0, 10)}`;

async function exported(store: ContentStore, images: Array<{ name: string; target: Descriptor }>, extra = {}): Promise<Buffer> {
  const out = new Collector();
  await exportArchive(out, { provider: store, images, ...extra });
  return out.buffer;
}

function doImport(tar: Buffer, options: ImportArchiveOptions) {
  return importArchive(streamOf(tar), options);
}

/** An OCI layout tar made by hand, the way other tools lay it out. */
function ociLayoutTar(blobs: Buffer[], manifests: Descriptor[], prefix = ''): Buffer {
  const members: RawMember[] = [
    { path: `${prefix}oci-layout`, data: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    ...blobs.map((b) => ({ path: `${prefix}blobs/sha256/${sha256(b).slice(7)}`, data: b })),
    { path: `${prefix}index.json`, data: JSON.stringify({ schemaVersion: 2, manifests }) },
  ];
  return rawTar(members);
}

describe('importArchive: round trip with exportArchive', () => {
  it('gives back the same digests, names and blobs', async () => {
    const source = new MemoryContentStore();
    const single = await buildImage(source);
    const multi = await buildIndex(source);
    const images = [
      { name: 'docker.io/library/single:1', target: single.manifest },
      { name: 'registry.example.com/multi:2', target: multi.index },
    ];
    const tar = await exported(source, images);

    const target = new MemoryContentStore();
    const imported = await doImport(tar, { store: target });

    expect(imported.map((i) => i.name)).toEqual(images.map((i) => i.name));
    expect(imported.map((i) => i.target.digest)).toEqual(images.map((i) => i.target.digest));
    expect(imported[1].target).toMatchObject({ mediaType: OCI.index, size: multi.index.size });
    const expectedBlobs = new Set([...allDigests(single), multi.index.digest, ...multi.images.flatMap(allDigests)]);
    expect(new Set(target.blobs.keys())).toEqual(expectedBlobs);
    for (const digest of expectedBlobs) expect(target.bytes(digest).equals(source.bytes(digest))).toBe(true);
    expect(target.ingests.size).toBe(0);
  });

  it('sets the GC labels a pull sets: index → m.<i>, manifest → config and l.<i>', async () => {
    const source = new MemoryContentStore();
    const { index, images } = await buildIndex(source);
    const target = new MemoryContentStore();
    await doImport(await exported(source, [{ name: 'example.com/multi:1', target: index }]), { store: target });

    expect((await target.info(index.digest)).labels).toEqual({
      'containerd.io/gc.ref.content.m.0': images[0].manifest.digest,
      'containerd.io/gc.ref.content.m.1': images[1].manifest.digest,
    });
    for (const image of images) {
      expect((await target.info(image.manifest.digest)).labels).toEqual({
        'containerd.io/gc.ref.content.config': image.config.digest,
        'containerd.io/gc.ref.content.l.0': image.layers[0].digest,
        'containerd.io/gc.ref.content.l.1': image.layers[1].digest,
        'containerd.io/gc.ref.content.l.2': image.layers[2].digest,
      });
      expect((await target.info(image.layers[0].digest)).labels).toEqual({});
    }
  });

  it('imports into a store that already has the content, keeping its other labels', async () => {
    const store = new MemoryContentStore();
    const image = await buildImage(store);
    await store.update({ digest: image.manifest.digest, labels: { keep: 'me' } });
    const tar = await exported(store, [{ name: 'example.com/a:1', target: image.manifest }]);
    const imported = await doImport(tar, { store });
    expect(imported).toEqual([{ name: 'example.com/a:1', target: expect.objectContaining({ digest: image.manifest.digest }) }]);
    expect((await store.info(image.manifest.digest)).labels).toMatchObject({
      keep: 'me',
      'containerd.io/gc.ref.content.config': image.config.digest,
    });
    expect(store.ingests.size).toBe(0);
  });

  it('imports an archive exported for one platform (the index lists platforms it does not hold)', async () => {
    const source = new MemoryContentStore();
    const { index, images } = await buildIndex(source);
    const tar = await exported(source, [{ name: 'example.com/multi:1', target: index }], { platforms: ['linux/amd64'] });

    const target = new MemoryContentStore();
    const imported = await doImport(tar, { store: target });
    expect(imported.map((i) => i.target.digest)).toEqual([index.digest]);
    expect((await target.info(index.digest)).labels).toEqual({
      'containerd.io/gc.ref.content.m.0': images[0].manifest.digest,
    });

    // Asking for the platform the archive left out is an error naming the manifest.
    await expect(doImport(tar, { store: new MemoryContentStore(), platforms: ['linux/arm64'] })).rejects.toMatchObject({
      kind: 'not-found',
      message: expect.stringContaining(images[1].manifest.digest),
    });
  });

  it('accepts a gzip-compressed archive', async () => {
    const source = new MemoryContentStore();
    const image = await buildImage(source);
    const tar = await exported(source, [{ name: 'example.com/a:1', target: image.manifest }]);
    const imported = await doImport(gzipSync(tar), { store: new MemoryContentStore() });
    expect(imported.map((i) => i.target.digest)).toEqual([image.manifest.digest]);
  });
});

describe('importArchive: names', () => {
  async function layoutWith(annotations: Array<Record<string, string> | undefined>) {
    const store = new MemoryContentStore();
    const image = await buildImage(store, undefined, [10]);
    const blobs = allDigests(image).map((d) => store.bytes(d));
    const manifests = annotations.map((a) => ({ ...image.manifest, platform: undefined, annotations: a }));
    return { tar: ociLayoutTar(blobs, manifests), image };
  }

  it('prefers io.containerd.image.name, and prefixes bare OCI tags with import-<date> like ctr', async () => {
    const { tar, image } = await layoutWith([
      { 'io.containerd.image.name': 'docker.io/library/full:1', 'org.opencontainers.image.ref.name': '1' },
      { 'org.opencontainers.image.ref.name': 'latest' },
      { 'org.opencontainers.image.ref.name': 'quay.io/other/image:3' },
      undefined,
    ]);
    const imported = await doImport(tar, { store: new MemoryContentStore() });
    expect(imported.map((i) => i.name)).toEqual(['docker.io/library/full:1', `${today()}:latest`, 'quay.io/other/image:3']);
    expect(imported.every((i) => i.target.digest === image.manifest.digest)).toBe(true);
  });

  it('with baseName, names bare tags under it and drops full names outside it', async () => {
    const { tar } = await layoutWith([
      { 'org.opencontainers.image.ref.name': 'v1' },
      { 'org.opencontainers.image.ref.name': 'example.com/app:v2' },
      { 'org.opencontainers.image.ref.name': 'quay.io/other/image:3' },
      { 'io.containerd.image.name': 'docker.io/library/kept:1' },
    ]);
    const imported = await doImport(tar, { store: new MemoryContentStore(), baseName: 'example.com/app' });
    expect(imported.map((i) => i.name)).toEqual(['example.com/app:v1', 'example.com/app:v2', 'docker.io/library/kept:1']);
  });

  it('indexName names the whole index.json, stored with labels for its manifests; digests adds @digest names', async () => {
    const { tar, image } = await layoutWith([{ 'org.opencontainers.image.ref.name': 'v1' }]);
    const store = new MemoryContentStore();
    const imported = await doImport(tar, { store, baseName: 'example.com/app', indexName: 'example.com/app-index:all', digests: true });
    expect(imported.map((i) => i.name)).toEqual([
      'example.com/app-index:all',
      'example.com/app:v1',
      `example.com/app@${image.manifest.digest}`,
    ]);
    const indexTarget = imported[0].target;
    expect(indexTarget.mediaType).toBe(OCI.index);
    expect(JSON.parse(store.bytes(indexTarget.digest).toString()).manifests[0].digest).toBe(image.manifest.digest);
    expect((await store.info(indexTarget.digest)).labels).toEqual({
      'containerd.io/gc.ref.content.m.0': image.manifest.digest,
    });
  });

  it('keeps one entry per name (the last wins, as repeated creates would)', async () => {
    const { tar } = await layoutWith([
      { 'io.containerd.image.name': 'example.com/a:1' },
      { 'io.containerd.image.name': 'example.com/a:1' },
    ]);
    expect(await doImport(tar, { store: new MemoryContentStore() })).toHaveLength(1);
  });

  it('refuses names with control characters or spaces', async () => {
    const { tar } = await layoutWith([{ 'io.containerd.image.name': 'example.com/a:1\nrm -rf' }]);
    await expect(doImport(tar, { store: new MemoryContentStore() })).rejects.toMatchObject({ kind: 'invalid-argument' });
  });

  it('filters top-level manifests by platform', async () => {
    const store = new MemoryContentStore();
    const amd64 = await buildImage(store, { os: 'linux', architecture: 'amd64' }, [5]);
    const arm64 = await buildImage(store, { os: 'linux', architecture: 'arm64' }, [6]);
    const blobs = [...allDigests(amd64), ...allDigests(arm64)].map((d) => store.bytes(d));
    const tar = ociLayoutTar(blobs, [
      { ...amd64.manifest, annotations: { 'io.containerd.image.name': 'example.com/a:amd64' } },
      { ...arm64.manifest, annotations: { 'io.containerd.image.name': 'example.com/a:arm64' } },
    ]);
    const imported = await doImport(tar, { store: new MemoryContentStore(), platforms: [{ os: 'linux', architecture: 'arm64' }] });
    expect(imported.map((i) => i.name)).toEqual(['example.com/a:arm64']);
  });
});

describe('importArchive: layouts made by other tools', () => {
  it('reads members named ./x, directory entries and unknown files (as `tar -C dir -cf x.tar .` writes)', async () => {
    const store = new MemoryContentStore();
    const image = await buildImage(store, undefined, [100]);
    const blobs = allDigests(image).map((d) => store.bytes(d));
    const tar = rawTar([
      { path: './', type: 'Directory' },
      { path: './blobs/', type: 'Directory' },
      { path: './blobs/sha256/', type: 'Directory' },
      ...blobs.map((b) => ({ path: `./blobs/sha256/${sha256(b).slice(7)}`, data: b })),
      { path: './README.md', data: 'not part of any image' },
      { path: './blobs/sha512/abcd', data: 'another algorithm' },
      { path: './index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [{ ...image.manifest, annotations: { 'org.opencontainers.image.ref.name': 't' } }] }) },
      { path: './oci-layout', data: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    ]);
    const target = new MemoryContentStore();
    const imported = await doImport(tar, { store: target, baseName: 'example.com/x' });
    expect(imported).toEqual([{ name: 'example.com/x:t', target: expect.objectContaining({ digest: image.manifest.digest }) }]);
    // README.md came before oci-layout, so it may have been stored as a possible docker-save file; nothing else was.
    const stored = new Set(target.blobs.keys());
    for (const digest of allDigests(image)) expect(stored.has(digest)).toBe(true);
    expect(stored.has(sha256('another algorithm'))).toBe(false);
  });
});

describe('importArchive: docker save archives', () => {
  const configFor = (arch: string, diffIds: string[]) =>
    json({ architecture: arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } });

  it('stores layers under their content digest, builds a schema 2 manifest and names images from RepoTags', async () => {
    const base = layerTar('etc/base', 'base layer');
    const app = layerTar('app/run', 'application');
    const appGz = gzipSync(app);
    const baseId = 'a'.repeat(64);
    const appId = 'b'.repeat(64);
    const sharedId = 'c'.repeat(64);
    const config1 = configFor('amd64', [sha256(base), sha256(app)]);
    const config2 = configFor('arm64', [sha256(base)]);
    const config1Name = `${sha256(config1).slice(7)}.json`;
    const config2Name = `${sha256(config2).slice(7)}.json`;
    const manifestJson = [
      { Config: config1Name, RepoTags: ['busybox:latest', 'example.com:5000/team/app:v1'], Layers: [`${baseId}/layer.tar`, `${appId}/layer.tar`] },
      // Same base layer, reached through a symlink as docker save writes shared layers.
      { Config: config2Name, RepoTags: null, Layers: [`${sharedId}/layer.tar`] },
    ];
    const tar = rawTar([
      { path: `${baseId}/`, type: 'Directory' },
      { path: `${baseId}/VERSION`, data: '1.0' },
      { path: `${baseId}/json`, data: '{}' },
      { path: `${baseId}/layer.tar`, data: base },
      { path: `${appId}/layer.tar`, data: appGz },
      { path: `${sharedId}/layer.tar`, type: 'SymbolicLink', linkpath: `../${baseId}/layer.tar` },
      { path: config1Name, data: config1 },
      { path: config2Name, data: config2 },
      { path: 'manifest.json', data: JSON.stringify(manifestJson) },
      { path: 'repositories', data: '{}' },
    ]);

    const store = new MemoryContentStore();
    const imported = await doImport(tar, { store });
    expect(imported.map((i) => i.name)).toEqual(['docker.io/library/busybox:latest', 'example.com:5000/team/app:v1']);
    const target = imported[0].target;
    expect(target).toMatchObject({
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { os: 'linux', architecture: 'amd64' },
      annotations: {
        'io.containerd.image.name': 'docker.io/library/busybox:latest',
        'org.opencontainers.image.ref.name': 'latest',
      },
    });
    expect(imported[1].target.digest).toBe(target.digest);

    const manifestBytes = store.bytes(target.digest);
    expect(sha256(manifestBytes)).toBe(target.digest);
    expect(JSON.parse(manifestBytes.toString())).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha256(config1), size: config1.length },
      layers: [
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar', digest: sha256(base), size: base.length },
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha256(appGz), size: appGz.length },
      ],
    });
    expect(store.bytes(sha256(base)).equals(base)).toBe(true);
    expect((await store.info(target.digest)).labels).toEqual({
      'containerd.io/gc.ref.content.config': sha256(config1),
      'containerd.io/gc.ref.content.l.0': sha256(base),
      'containerd.io/gc.ref.content.l.1': sha256(appGz),
    });
    // Legacy metadata nothing reads is not stored.
    expect(store.blobs.has(sha256('1.0'))).toBe(false);

    // The untagged image is stored and labelled but unnamed; digests names it.
    const withDigests = await doImport(tar, { store, digests: true, baseName: 'example.com/saved' });
    const untagged = withDigests.find((i) => i.target.platform?.architecture === 'arm64');
    expect(untagged?.name).toBe(`example.com/saved@${untagged?.target.digest}`);
    // Two tags, one manifest: one digest name for it.
    expect(withDigests.map((i) => i.name)).toEqual([
      'docker.io/library/busybox:latest',
      `example.com/saved@${target.digest}`,
      'example.com:5000/team/app:v1',
      `example.com/saved@${untagged?.target.digest}`,
    ]);
  });

  it('refuses a manifest.json naming a file the archive does not have', async () => {
    const tar = rawTar([{ path: 'manifest.json', data: JSON.stringify([{ Config: 'missing.json', RepoTags: ['a:1'], Layers: [] }]) }]);
    await expect(doImport(tar, { store: new MemoryContentStore() })).rejects.toMatchObject({
      kind: 'invalid-argument',
      message: expect.stringContaining('missing.json'),
    });
  });
});

describe('importArchive: streaming', () => {
  it('streams a large layer into the store as it is read, never far ahead of the store', async () => {
    const MiB = 1024 * 1024;
    const layerChunks = 48;
    const chunk = (i: number) => Buffer.alloc(MiB, i % 251);
    const hash = createHash('sha256');
    for (let i = 0; i < layerChunks; i++) hash.update(chunk(i));
    const layer: Descriptor = { mediaType: OCI.layer, digest: `sha256:${hash.digest('hex')}`, size: layerChunks * MiB };
    const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } });
    const configDesc: Descriptor = { mediaType: OCI.config, digest: sha256(config), size: config.length };
    const manifest = json({ schemaVersion: 2, mediaType: OCI.manifest, config: configDesc, layers: [layer] });
    const manifestDesc: Descriptor = { mediaType: OCI.manifest, digest: sha256(manifest), size: manifest.length, annotations: { 'io.containerd.image.name': 'example.com/big:1' } };

    let pulled = 0;
    let written = 0;
    let maxAhead = 0;
    async function* archive(): AsyncGenerator<Buffer> {
      yield tarHeader(`blobs/sha256/${layer.digest.slice(7)}`, 'file', layer.size, 0o444);
      for (let i = 0; i < layerChunks; i++) {
        pulled += MiB;
        yield chunk(i);
      }
      yield rawTar([
        { path: `blobs/sha256/${configDesc.digest.slice(7)}`, data: config },
        { path: `blobs/sha256/${manifestDesc.digest.slice(7)}`, data: manifest },
        { path: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [manifestDesc] }) },
        { path: 'oci-layout', data: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
      ]);
    }

    // A slow store that notes how far reading has run ahead of what it has been given.
    const inner = new MemoryContentStore();
    const store: ContentStore = Object.assign(Object.create(inner) as MemoryContentStore, {
      writer: async (options: WriterOptions): Promise<ContentWriter> => {
        const w = await inner.writer(options);
        const write = w.write.bind(w);
        w.write = async (data: Uint8Array) => {
          await new Promise((resolve) => setImmediate(resolve));
          written += data.length;
          maxAhead = Math.max(maxAhead, pulled - written);
          await write(data);
        };
        return w;
      },
    });

    const imported = await importArchive(Readable.from(archive(), { objectMode: false }), { store });
    expect(imported.map((i) => i.name)).toEqual(['example.com/big:1']);
    expect((await inner.info(layer.digest)).size).toBe(layer.size);
    expect(written).toBeGreaterThanOrEqual(layer.size);
    // Bounded read-ahead: a few chunks, not the layer.
    expect(maxAhead).toBeLessThan(8 * MiB);
  });
});
