import * as fs from 'fs/promises';
import { join } from 'path';
import { gunzipSync } from 'zlib';
import { createContainer, loadPlugins, type Mount, PluginType } from '@berth/core';
import { mountPoints } from '@berth/sys';
import { walkingDifferPlugin } from './plugin';
import { buildTar, describeAsRoot, gzip, isRoot, makeWorkspace, sha256 } from './test-fixtures/tar-builder';
import { MemoryContent } from './test-fixtures/memory-content';
import { listTree } from './test-fixtures/trees';
import { Applier, Comparer, MediaTypes, UNCOMPRESSED_LABEL } from './types';
import { readonlyMounts, WalkingDiffer } from './walking-differ';

type Workspace = Awaited<ReturnType<typeof makeWorkspace>>;

const layerTar = buildTar([
  { name: 'etc/', type: '5' },
  { name: 'etc/motd', data: 'welcome' },
  { name: '.wh.old', data: '' },
  { name: 'opq/.wh..wh..opq', data: '' },
  { name: 'opq/new', data: 'new' },
]);

let ws: Workspace;
let tempDir: string;
let content: MemoryContent;
let differ: WalkingDiffer;
let lower: string;
let upper: string;
let work: string;

beforeEach(async () => {
  ws = await makeWorkspace();
  tempDir = join(ws.dir, 'tmpmounts');
  lower = join(ws.dir, 'lower');
  upper = join(ws.dir, 'upper');
  work = join(ws.dir, 'work');
  for (const dir of [lower, upper, work]) await fs.mkdir(dir);
  await fs.writeFile(join(lower, 'old'), 'old');
  await fs.mkdir(join(lower, 'opq'));
  await fs.writeFile(join(lower, 'opq/was'), 'was');
  content = new MemoryContent();
  differ = new WalkingDiffer({ tempDir });
});
afterEach(async () => {
  const leaked = mountPoints().filter((point) => point.startsWith(`${ws.dir}/`));
  await ws.cleanup();
  expect(leaked).toEqual([]);
});

function overlayMount(): Mount {
  return { type: 'overlay', source: 'overlay', options: [`workdir=${work}`, `upperdir=${upper}`, `lowerdir=${lower}`] };
}

function layerDescriptor(bytes: Buffer) {
  return { mediaType: MediaTypes.layerGzip, digest: content.add(bytes), size: bytes.length };
}

describeAsRoot('WalkingDiffer.apply', () => {
  it('applies into the source of a single bind mount, without mounting; returns the diffID', async () => {
    const desc = layerDescriptor(gzip(layerTar));
    const applied = await differ.apply(desc, [{ type: 'bind', source: lower, options: ['rbind', 'rw'] }], { provider: content });
    expect(applied).toEqual({ mediaType: MediaTypes.layer, digest: sha256(layerTar), size: layerTar.length });
    expect(await listTree(lower)).toEqual(['etc', 'etc/motd', 'opq', 'opq/new']);
    await expect(fs.readdir(tempDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('writes an overlay layer straight into the upper dir', async () => {
    const applied = await differ.apply(layerDescriptor(gzip(layerTar)), [overlayMount()], { provider: content });
    expect(applied.digest).toBe(sha256(layerTar));
    const whiteout = await fs.lstat(join(upper, 'old'));
    expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true);
    expect(await listTree(upper)).toEqual(['etc', 'etc/motd', 'old', 'opq', 'opq/new']);
    await expect(fs.readdir(tempDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('mounts other mounts on a temp dir, applies, and unmounts (overlay with the fast path off)', async () => {
    const mounting = new WalkingDiffer({ tempDir, overlayFastPath: false });
    const applied = await mounting.apply(layerDescriptor(gzip(layerTar)), [overlayMount()], { provider: content });
    expect(applied.digest).toBe(sha256(layerTar));
    // The kernel made its own whiteout in the upper dir when the file was deleted through the mount.
    expect((await fs.lstat(join(upper, 'old'))).isCharacterDevice()).toBe(true);
    expect(await fs.readFile(join(upper, 'opq/new'), 'utf8')).toBe('new');
    expect(await fs.readdir(tempDir)).toEqual([]);
  });

  it('unmounts and fails cleanly when the layer is hostile', async () => {
    const mounting = new WalkingDiffer({ tempDir, overlayFastPath: false });
    const hostile = buildTar([{ name: '../escape', data: 'x' }]);
    await expect(mounting.apply(layerDescriptor(hostile), [overlayMount()], { provider: content })).rejects.toMatchObject({
      kind: 'invalid-argument',
    });
    expect(await fs.readdir(tempDir)).toEqual([]);
    expect(await fs.readdir(ws.dir)).not.toContain('escape');
  });

  it('applies maxBytes from the options', async () => {
    const big = buildTar([{ name: 'big', data: Buffer.alloc(1024 * 1024) }]);
    await expect(
      differ.apply(layerDescriptor(gzip(big)), [{ type: 'bind', source: lower, options: ['rbind'] }], {
        provider: content,
        maxBytes: 64 * 1024,
      }),
    ).rejects.toMatchObject({ kind: 'resource-exhausted' });
  });

  it('refuses encrypted layers', async () => {
    const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted', digest: content.add(gzip(layerTar)), size: 1 };
    await expect(differ.apply(desc, [{ type: 'bind', source: lower, options: [] }], { provider: content })).rejects.toMatchObject({
      kind: 'not-implemented',
    });
  });
});

describeAsRoot('WalkingDiffer.compare', () => {
  beforeEach(async () => {
    // The active snapshot's changes, in its upper dir.
    await fs.writeFile(join(upper, 'added'), 'added');
  });

  it('stores the gzip layer between a bind lower and an overlay upper, labelled with its diffID', async () => {
    const lowerMounts: Mount[] = [{ type: 'bind', source: lower, options: ['rbind', 'ro'] }];
    const desc = await differ.compare(lowerMounts, [overlayMount()], { ingester: content, labels: { owner: 'test' } });
    expect(desc.mediaType).toBe(MediaTypes.layerGzip);
    const blob = content.blobs.get(desc.digest);
    expect(blob).toBeDefined();
    expect(desc.size).toBe(blob?.length);
    const tar = gunzipSync(blob as Buffer);
    expect(content.labels.get(desc.digest)).toEqual({ owner: 'test', [UNCOMPRESSED_LABEL]: sha256(tar) });
    // The mounts were read-only and are gone again.
    expect(await fs.readdir(tempDir)).toEqual([]);

    const target = join(ws.dir, 'target');
    await fs.cp(lower, target, { recursive: true });
    await differ.apply(desc, [{ type: 'bind', source: target, options: ['rbind'] }], { provider: content });
    expect(await listTree(target)).toEqual(['added', 'old', 'opq', 'opq/was']);
    expect(await fs.readFile(join(target, 'added'), 'utf8')).toBe('added');
  });

  it('writes an uncompressed layer when asked; an empty lower gives the whole upper', async () => {
    const desc = await differ.compare([], [{ type: 'bind', source: upper, options: ['rbind'] }], {
      ingester: content,
      mediaType: MediaTypes.layer,
    });
    const blob = content.blobs.get(desc.digest) as Buffer;
    expect(desc).toEqual({ mediaType: MediaTypes.layer, digest: sha256(blob), size: blob.length });
    expect(content.labels.get(desc.digest)).toEqual({ [UNCOMPRESSED_LABEL]: desc.digest });
  });

  it('counts a blob that is already stored as written', async () => {
    const mounts: Mount[] = [{ type: 'bind', source: upper, options: ['rbind'] }];
    const first = await differ.compare([], mounts, { ingester: content });
    expect(await differ.compare([], mounts, { ingester: content })).toEqual(first);
  });

  it('refuses media types it cannot write', async () => {
    await expect(differ.compare([], [], { ingester: content, mediaType: MediaTypes.layerZstd })).rejects.toMatchObject({
      kind: 'not-implemented',
    });
  });
});

describe('readonlyMounts', () => {
  it("turns an overlay's upperdir into its top lowerdir and drops the workdir", () => {
    expect(
      readonlyMounts([{ type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l1:/l2'] }]),
    ).toEqual([{ type: 'overlay', source: 'overlay', options: ['index=off', 'lowerdir=/u:/l1:/l2', 'ro'] }]);
  });

  it('makes a one-layer overlay a read-only bind, and other mounts ro', () => {
    expect(readonlyMounts([{ type: 'overlay', source: 'overlay', options: ['workdir=/w', 'upperdir=/u'] }])).toEqual([
      { type: 'bind', source: '/u', target: undefined, options: ['rbind', 'ro'] },
    ]);
    expect(readonlyMounts([{ type: 'bind', source: '/s', options: ['rbind', 'rw'] }])).toEqual([
      { type: 'bind', source: '/s', options: ['rbind', 'ro'] },
    ]);
  });
});

describe('walkingDifferPlugin', () => {
  it('registers as io.berth.differ.v1.walking and binds the Applier and Comparer tokens', async () => {
    expect([walkingDifferPlugin.type, walkingDifferPlugin.id]).toEqual([PluginType.Differ, 'walking']);
    const container = createContainer();
    const set = await loadPlugins({
      registrations: [walkingDifferPlugin],
      root: join(ws.dir, 'root'),
      state: join(ws.dir, 'state'),
      container,
      pluginConfigs: { [`${PluginType.Differ}.walking`]: { max_layer_bytes: 1024 } },
    });
    const differ = set.getById<WalkingDiffer>(PluginType.Differ, 'walking');
    expect(differ).toBeInstanceOf(WalkingDiffer);
    expect(container.get(Applier)).toBe(differ);
    expect(container.get(Comparer)).toBe(differ);
    if (isRoot) {
      const big = buildTar([{ name: 'big', data: Buffer.alloc(4096) }]);
      await expect(
        differ.apply(layerDescriptor(big), [{ type: 'bind', source: lower, options: [] }], { provider: content }),
      ).rejects.toMatchObject({ kind: 'resource-exhausted' });
    }
    await set.closeAll();
  });

  it('has sane config defaults', () => {
    expect(walkingDifferPlugin.config?.parse({})).toEqual({ max_layer_bytes: 64 * 1024 ** 3, symlinks: 'refuse-outside-root' });
    expect(() => walkingDifferPlugin.config?.parse({ symlinks: 'follow' })).toThrow();
  });
});
