import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { errorKind, type Descriptor, type Snapshotter, type SnapshotInfo, type UnpackStatus } from '@berth/core';
import { MediaTypes as LayerMediaTypes, WalkingDiffer } from '@berth/differ';
import { NativeSnapshotter } from '@berth/snapshotter-native';
import { OverlaySnapshotter } from '@berth/snapshotter-overlayfs';
import { lgetxattr, lsetxattr } from '@berth/sys';
import pino from 'pino';
import { buildTar, gzip } from '../../differ/src/test-fixtures/tar-builder';
import { zstdLayer, zstdLayerEntries } from '../../differ/src/test-fixtures/zstd-fixtures';
import { ApplyPool } from './apply-pool';
import { chainIDs } from './chain-id';
import { Unpacker, type UnpackTarget } from './unpacker';
import {
  describeAsRoot,
  describeTree,
  type FixtureImage,
  makeTempDir,
  MediaTypes,
  MemoryBlobs,
  sha256,
  storeImage,
  tarOfDir,
  withMountedView,
} from './test-fixtures/unpack-fixtures';

/** chain IDs the long way, straight from the OCI image spec, to check chain-id.ts against. */
function specChainIDs(diffIDs: string[]): string[] {
  const out = [diffIDs[0]];
  for (let i = 1; i < diffIDs.length; i++) {
    out.push(`sha256:${createHash('sha256').update(`${out[i - 1]} ${diffIDs[i]}`).digest('hex')}`);
  }
  return out;
}

describe('chainIDs', () => {
  it('follows the image spec: the first is the diffID, then sha256("<parent> <diffID>")', () => {
    const diffIDs = ['a', 'b', 'c'].map((s) => sha256(s));
    expect(chainIDs(diffIDs)).toEqual(specChainIDs(diffIDs));
    expect(chainIDs([])).toEqual([]);
    expect(() => chainIDs(['md5:abc'])).toThrow(/not a sha256 digest/);
  });
});

/** Three layers: a base tree, one that changes, whites out and makes a dir opaque, one that adds a file. */
function buildLayers(work: string): Buffer[] {
  const l1 = path.join(work, 'l1');
  fs.mkdirSync(path.join(l1, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(l1, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.mkdirSync(path.join(l1, 'usr', 'bin'), { recursive: true });
  fs.writeFileSync(path.join(l1, 'usr', 'bin', 'tool'), 'tool\n', { mode: 0o755 });
  fs.chownSync(path.join(l1, 'usr', 'bin', 'tool'), 1000, 1000);
  fs.mkdirSync(path.join(l1, 'usr', 'lib'));
  fs.writeFileSync(path.join(l1, 'usr', 'lib', 'data'), 'data\n');
  fs.linkSync(path.join(l1, 'usr', 'lib', 'data'), path.join(l1, 'usr', 'lib', 'data-link'));
  lsetxattr(path.join(l1, 'usr', 'lib', 'data'), 'user.berth.test', 'hello');
  fs.symlinkSync('usr/bin', path.join(l1, 'bin'));
  fs.mkdirSync(path.join(l1, 'opt', 'gone'), { recursive: true });
  fs.writeFileSync(path.join(l1, 'opt', 'gone', 'a'), 'a\n');
  fs.mkdirSync(path.join(l1, 'var'));
  fs.writeFileSync(path.join(l1, 'var', 'keep'), 'old\n');
  fs.chmodSync(path.join(l1, 'var'), 0o1777);

  const l2 = path.join(work, 'l2');
  fs.mkdirSync(path.join(l2, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(l2, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\nnew\n');
  fs.mkdirSync(path.join(l2, 'opt'));
  fs.writeFileSync(path.join(l2, 'opt', '.wh.gone'), '');
  fs.mkdirSync(path.join(l2, 'var'));
  fs.chmodSync(path.join(l2, 'var'), 0o1777);
  fs.writeFileSync(path.join(l2, 'var', '.wh..wh..opq'), '');
  fs.writeFileSync(path.join(l2, 'var', 'new'), 'new\n');
  fs.mkdirSync(path.join(l2, 'usr', 'bin'), { recursive: true });
  fs.writeFileSync(path.join(l2, 'usr', 'bin', 'tool2'), 'tool2\n', { mode: 0o700 });

  const l3 = path.join(work, 'l3');
  fs.mkdirSync(path.join(l3, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(l3, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  return [tarOfDir(l1), tarOfDir(l2), tarOfDir(l3)];
}

const expectedTree = {
  bin: 'symlink -> usr/bin 0:0',
  etc: 'dir 755 0:0',
  'etc/hosts': 'file 644 0:0 127.0.0.1 localhost\n',
  'etc/passwd': 'file 644 0:0 root:x:0:0::/root:/bin/sh\nnew\n',
  opt: 'dir 755 0:0',
  usr: 'dir 755 0:0',
  'usr/bin': 'dir 755 0:0',
  'usr/bin/tool': 'file 755 1000:1000 tool\n',
  'usr/bin/tool2': 'file 700 0:0 tool2\n',
  'usr/lib': 'dir 755 0:0',
  'usr/lib/data': 'file 644 0:0 data\n',
  'usr/lib/data-link': 'file 644 0:0 data\n =usr/lib/data',
  var: 'dir 1777 0:0',
  'var/new': 'file 644 0:0 new\n',
};

async function list(snapshots: Snapshotter): Promise<SnapshotInfo[]> {
  const out: SnapshotInfo[] = [];
  for await (const info of snapshots.walk()) out.push(info);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Counts the calls unpack makes on a snapshotter. */
function counting(snapshots: Snapshotter): { snapshots: Snapshotter; calls: string[] } {
  const calls: string[] = [];
  const wrapped = Object.create(snapshots) as Snapshotter;
  for (const method of ['prepare', 'commit', 'remove'] as const) {
    const original = snapshots[method].bind(snapshots) as (...args: unknown[]) => Promise<unknown>;
    (wrapped as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      calls.push(`${method} ${String(args[0])}`);
      return original(...args);
    };
  }
  return { snapshots: wrapped, calls };
}

interface Backend {
  label: string;
  name: string;
  open(root: string): Promise<Snapshotter>;
  /** Extract side by side in worker threads, then rebase (staged-apply.ts). */
  staged: boolean;
}

const backends: Backend[] = [
  { label: 'overlayfs, in place', name: 'overlayfs', staged: false, open: (root) => OverlaySnapshotter.open(root, { syncRemove: true }) },
  { label: 'overlayfs, staged in workers', name: 'overlayfs', staged: true, open: (root) => OverlaySnapshotter.open(root, { syncRemove: true }) },
  { label: 'native', name: 'native', staged: false, open: (root) => NativeSnapshotter.open(root) },
];

let pool: ApplyPool;
beforeAll(() => {
  pool = new ApplyPool(2);
});
afterAll(async () => {
  await pool.close();
});

describeAsRoot.each(backends)('Unpacker on $label', (backend) => {
  let dir: string;
  let snapshotter: Snapshotter;
  let blobs: MemoryBlobs;
  let image: FixtureImage;
  let tars: Buffer[];

  beforeEach(async () => {
    dir = makeTempDir('berth-unpack-');
    snapshotter = await backend.open(path.join(dir, 'snapshots'));
    blobs = new MemoryBlobs();
    tars = buildLayers(path.join(dir, 'layers'));
    image = storeImage(blobs, tars);
  });
  afterEach(async () => {
    await snapshotter.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const targetFor = (snapshots: Snapshotter): UnpackTarget => ({
    snapshots,
    snapshotter: backend.name,
    content: blobs.asStore(),
    applier: new WalkingDiffer({ tempDir: path.join(dir, 'tmp') }),
    scope: `test/${backend.name}/${dir}`,
    stager: backend.staged ? { pool } : undefined,
  });

  it('commits one snapshot per layer, named by chain ID, and the top one holds the whole image', async () => {
    const statuses: string[] = [];
    const result = await new Unpacker(targetFor(snapshotter)).unpack(image.manifest, {
      onLayer: (layer, status) => statuses.push(`${indexOf(image, layer)} ${status}`),
    });
    const chain = specChainIDs(image.diffIDs);
    expect(result.chainID).toBe(chain[2]);
    expect(result.layers.map((l) => [l.chainID, l.diffID, l.unpacked])).toEqual(
      chain.map((c, i) => [c, image.diffIDs[i], true]),
    );
    if (!backend.staged) {
      expect(statuses).toEqual(['0 waiting', '1 waiting', '2 waiting', '0 unpacking', '0 unpacked', '1 unpacking', '1 unpacked', '2 unpacking', '2 unpacked']);
    } else {
      // Staged layers are all waiting first, then extract side by side; they are committed in order.
      expect(statuses.slice(0, 3)).toEqual(['0 waiting', '1 waiting', '2 waiting']);
      expect(statuses.filter((s) => s.endsWith('unpacked'))).toEqual(['0 unpacked', '1 unpacked', '2 unpacked']);
    }

    // Only committed snapshots are left: the chain, each on its parent, labelled with its ref.
    const infos = await list(snapshotter);
    expect(infos.map((i) => [i.name, i.kind, i.parent])).toEqual(
      [
        [chain[0], 'committed', ''],
        [chain[1], 'committed', chain[0]],
        [chain[2], 'committed', chain[1]],
      ].sort((a, b) => a[0].localeCompare(b[0])),
    );

    // GC references: the config keeps the top chain, layers record their verified diffID.
    expect(blobs.blobs.get(image.config.digest)!.labels).toEqual({ [`containerd.io/gc.ref.snapshot.${backend.name}`]: chain[2] });
    image.layers.forEach((layer, i) =>
      expect(blobs.blobs.get(layer.digest)!.labels).toEqual({ 'containerd.io/uncompressed': image.diffIDs[i] }),
    );

    await withMountedView(snapshotter, chain[2], async (root) => {
      expect(describeTree(root)).toEqual(expectedTree);
      expect(lgetxattr(path.join(root, 'usr/lib/data'), 'user.berth.test')?.toString()).toBe('hello');
    });
    // The middle of the chain is the image as of layer 2.
    await withMountedView(snapshotter, chain[0], async (root) => {
      expect(fs.readFileSync(path.join(root, 'opt/gone/a'), 'utf8')).toBe('a\n');
      expect(fs.readFileSync(path.join(root, 'var/keep'), 'utf8')).toBe('old\n');
    });
  });

  it('skips layers whose snapshots exist: a second unpack prepares nothing', async () => {
    await new Unpacker(targetFor(snapshotter)).unpack(image.manifest);
    const { snapshots, calls } = counting(snapshotter);
    const statuses: UnpackStatus[] = [];
    const again = await new Unpacker(targetFor(snapshots)).unpack(image.manifest, { onLayer: (_l, s) => statuses.push(s) });
    expect(calls).toEqual([]);
    expect(statuses).toEqual(['exists', 'exists', 'exists']);
    expect(again.layers.map((l) => l.unpacked)).toEqual([false, false, false]);

    // An image sharing the first two layers extracts only its own third one.
    const l4 = path.join(dir, 'layers', 'l4');
    fs.mkdirSync(l4);
    fs.writeFileSync(path.join(l4, 'other'), 'other\n');
    const other = storeImage(blobs, [tars[0], tars[1], tarOfDir(l4)]);
    const third = await new Unpacker(targetFor(snapshots)).unpack(other.manifest);
    expect(third.layers.map((l) => l.unpacked)).toEqual([false, false, true]);
    const prepares = calls.filter((c) => c.startsWith('prepare'));
    expect(prepares).toHaveLength(backend.staged ? 2 : 1);
    for (const p of prepares) expect(p).toMatch(new RegExp(`^prepare extract-\\S+ ${specChainIDs(other.diffIDs)[2]}$`));
  });

  it('fails on a diffID mismatch and leaves no snapshot for that layer, committed or not', async () => {
    const wrong = storeImage(blobs, tars, { diffIDs: [image.diffIDs[0], sha256('not this layer'), image.diffIDs[2]] });
    const { snapshots, calls } = counting(snapshotter);
    const err = await new Unpacker(targetFor(snapshots)).unpack(wrong.manifest).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('data-loss');
    expect((err as Error).message).toMatch(/wrong diff id/);
    const infos = await list(snapshotter);
    // The first layer was right and stays (a later pull reuses it); nothing else is there.
    expect(infos.map((i) => [i.name, i.kind])).toEqual([[specChainIDs(wrong.diffIDs)[0], 'committed']]);
    // The extraction snapshot of layer 1 (and, staged, the staging snapshots) went.
    expect(calls.filter((c) => c.startsWith('remove')).length).toBeGreaterThanOrEqual(1);
    expect(blobs.blobs.get(wrong.config.digest)!.labels).toEqual({});
    expect(blobs.blobs.get(wrong.layers[1].digest)!.labels).toEqual({});
  });

  it('applies each layer once its blob is there, in chain order, while later blobs still arrive', async () => {
    const arrived = new Map<string, () => void>();
    const waits = new Map<string, Promise<void>>();
    for (const d of [image.config, ...image.layers]) {
      waits.set(d.digest, new Promise<void>((resolve) => arrived.set(d.digest, resolve)));
    }
    const events: string[] = [];
    const unpack = new Unpacker(targetFor(snapshotter)).unpack(image.manifest, {
      blobReady: (desc: Descriptor) => waits.get(desc.digest)!,
      onLayer: (layer, status) => events.push(`${indexOf(image, layer)} ${status}`),
    });
    // The last layer arrives first: nothing can happen until the config and the first layer are there.
    arrived.get(image.layers[2].digest)!();
    arrived.get(image.config.digest)!();
    await waitFor(() => events.includes('2 waiting'));
    if (backend.staged) {
      // The last layer is staged as soon as it is there, before the first one.
      await waitFor(() => events.includes('2 unpacking'));
      expect(events).toEqual(['0 waiting', '1 waiting', '2 waiting', '2 unpacking']);
      arrived.get(image.layers[0].digest)!();
      await waitFor(() => events.includes('0 unpacked'));
      expect(events).not.toContain('2 unpacked');
      arrived.get(image.layers[1].digest)!();
      const result = await unpack;
      expect(result.layers.every((l) => l.unpacked)).toBe(true);
      expect(events.slice(-2)).toEqual(['1 unpacked', '2 unpacked']);
      return;
    }
    // In place, nothing happens until the first layer is there.
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual(['0 waiting', '1 waiting', '2 waiting']);
    arrived.get(image.layers[0].digest)!();
    await waitFor(() => events.includes('0 unpacked'));
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual(['0 waiting', '1 waiting', '2 waiting', '0 unpacking', '0 unpacked']);
    arrived.get(image.layers[1].digest)!();
    const result = await unpack;
    expect(result.layers.every((l) => l.unpacked)).toBe(true);
    expect(events.slice(-4)).toEqual(['1 unpacking', '1 unpacked', '2 unpacking', '2 unpacked']);
  });

  it('stops when aborted and removes the snapshot it was preparing', async () => {
    const abort = new AbortController();
    const never = new Promise<void>(() => undefined);
    const unpack = new Unpacker(targetFor(snapshotter)).unpack(image.manifest, {
      blobReady: (desc) => (desc.digest === image.layers[1].digest ? never : Promise.resolve()),
      signal: abort.signal,
      onLayer: (layer, status) => {
        if (layer.digest === image.layers[0].digest && status === 'unpacked') setTimeout(() => abort.abort(), 20);
      },
    });
    // blobReady for layer 1 never settles: the abort must get through anyway.
    const err = await Promise.race([unpack.catch((e: unknown) => e), new Promise((r) => setTimeout(() => r('hung'), 15_000))]);
    expect(err).not.toBe('hung');
    expect((await list(snapshotter)).map((i) => i.kind)).toEqual(['committed']);
  });

  it('stops at once when aborted while layers are still being staged, leaving nothing behind', async () => {
    const abort = new AbortController();
    const unpack = new Unpacker(targetFor(snapshotter)).unpack(image.manifest, {
      signal: abort.signal,
      onLayer: (layer, status) => {
        if (layer.digest === image.layers[2].digest && status === 'waiting') setTimeout(() => abort.abort(), 5);
      },
    });
    const err = await Promise.race([unpack.catch((e: unknown) => e), new Promise((r) => setTimeout(() => r('hung'), 15_000))]);
    expect(err).not.toBe('hung');
    expect((await list(snapshotter)).filter((i) => i.kind !== 'committed')).toEqual([]);
  });
});

function indexOf(image: FixtureImage, layer: Descriptor): number {
  return image.layers.findIndex((l) => l.digest === layer.digest);
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Layers that need what extraction in place reads from below, to check staging gets the same tree. */
function trickyLayers(): Buffer[] {
  const l1 = buildTar([
    { name: 'usr/', type: '5', mode: 0o750, uid: 5, gid: 6, mtime: 1000, pax: { 'SCHILY.xattr.user.lower': 'low' } },
    { name: 'usr/lib/', type: '5', mode: 0o755, mtime: 1100 },
    { name: 'usr/lib/libx.so', data: 'x', mtime: 1200 },
    { name: 'etc/', type: '5', mtime: 1300 },
    { name: 'etc/conf', data: 'conf', mtime: 1300 },
    { name: 'data/', type: '5', mode: 0o700, mtime: 1400, pax: { 'SCHILY.xattr.user.keep': 'yes' } },
    { name: 'data/file', data: 'file', mtime: 1400 },
  ]);
  // Parents not listed (usr, usr/lib from below; usr/share nowhere), a directory listed after its entry, whiteouts.
  const l2 = buildTar([
    { name: 'usr/lib/liby.so', data: 'y', mtime: 2000 },
    { name: 'usr/share/doc/readme', data: 'r', mtime: 2000 },
    { name: 'data/new', data: 'new', mtime: 2100 },
    { name: 'data/', type: '5', mode: 0o711, mtime: 2100 },
    { name: 'etc/.wh.conf', mtime: 2200 },
  ]);
  // A hard link to a file of a layer below: staging cannot see it, so this layer goes in place.
  const l3 = buildTar([{ name: 'etc2/', type: '5', mtime: 3000 }, { name: 'etc2/link', type: '1', linkname: 'usr/lib/libx.so', mtime: 3000 }]);
  // An entry below a symlink of the same layer: also in place.
  const l4 = buildTar([{ name: 'lnk', type: '2', linkname: 'usr', mtime: 4000 }, { name: 'lnk/fromlink', data: 'via link', mtime: 4000 }]);
  return [l1, l2, l3, l4];
}

describeAsRoot('Unpacker on overlayfs: staged in workers gives the tree extraction in place gives', () => {
  let dir: string;

  beforeEach(() => {
    dir = makeTempDir('berth-unpack-eq-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function unpackWith(staged: boolean, blobs: MemoryBlobs, image: FixtureImage, messages: string[]): Promise<Record<string, string>> {
    const root = path.join(dir, staged ? 'staged' : 'in-place');
    const snapshots = await OverlaySnapshotter.open(root, { syncRemove: true });
    try {
      const logger = pino({ level: 'debug' }, { write: (line: string) => messages.push((JSON.parse(line) as { msg: string }).msg) });
      const result = await new Unpacker(
        {
          snapshots,
          snapshotter: 'overlayfs',
          content: blobs.asStore(),
          applier: new WalkingDiffer({ tempDir: path.join(dir, 'tmp') }),
          scope: `eq/${root}`,
          stager: staged ? { pool } : undefined,
        },
        logger,
      ).unpack(image.manifest);
      const tree = await withMountedView(snapshots, result.chainID, async (mnt) => describeTree(mnt, true));
      // Directories no layer has get the time of the extraction, which is no fact of the image.
      const recent = Math.floor(Date.now() / 1000) - 3600;
      return Object.fromEntries(
        Object.entries(tree).map(([p, facts]) => [p, facts.replace(/mtime=(\d+)/, (m, t: string) => (Number(t) > recent ? 'mtime=now' : m))]),
      );
    } finally {
      await snapshots.close();
    }
  }

  it('with parents from below, late directories, whiteouts, and layers that must go in place', async () => {
    const blobs = new MemoryBlobs();
    const image = storeImage(blobs, trickyLayers());
    const inPlace = await unpackWith(false, blobs, image, []);
    const messages: string[] = [];
    const staged = await unpackWith(true, blobs, image, messages);
    expect(staged).toEqual(inPlace);
    // What the layers say, so the comparison is not of two wrong trees.
    expect(inPlace.usr).toBe('dir 750 5:6 mtime=1000 user.lower=low');
    expect(inPlace['usr/lib']).toBe('dir 755 0:0 mtime=1100');
    expect(inPlace.data).toBe('dir 711 0:0 mtime=2100 user.keep=yes');
    expect(inPlace['etc/conf']).toBeUndefined();
    expect(inPlace['usr/lib/libx.so']).toMatch(/ =etc2\/link$/);
    expect(inPlace['usr/fromlink']).toMatch(/^file 644 0:0 mtime=4000 via link/);
    // Layers 3 and 4 went in place, the first two were staged.
    expect(messages.filter((m) => m === 'staging a layer failed; extracting it in place')).toHaveLength(1);
    expect(messages.filter((m) => m === 'extracting a layer in place')).toHaveLength(1);
    // In place, but in a worker, all three: the base layer into its plain directory, layers 3 and 4 on their lowers.
    expect(messages.filter((m) => m === 'layer extracted in place by a worker')).toHaveLength(3);
  });

  it('stages a zstd layer in a worker too', async () => {
    const blobs = new MemoryBlobs();
    const base = buildTar([{ name: 'z/', type: '5', mode: 0o700, mtime: 1000 }, { name: 'z/old', data: 'old', mtime: 1000 }]);
    const layers = [blobs.add(MediaTypes.layerGzip, gzip(base)), blobs.add(LayerMediaTypes.layerZstd, zstdLayer)];
    const diffIDs = [sha256(base), sha256(buildTar(zstdLayerEntries()))];
    const config = blobs.json(MediaTypes.config, { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIDs } });
    const manifest = blobs.json(MediaTypes.manifest, {
      schemaVersion: 2,
      mediaType: MediaTypes.manifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    });
    const image: FixtureImage = { manifest, config, layers, diffIDs };
    const inPlace = await unpackWith(false, blobs, image, []);
    const messages: string[] = [];
    const staged = await unpackWith(true, blobs, image, messages);
    expect(staged).toEqual(inPlace);
    expect(inPlace['z/hello.txt']).toMatch(/^file 644 0:0 mtime=\d+ hello from zstd/);
    expect(inPlace['z/old']).toMatch(/^file 644 0:0 mtime=1000 old/);
    expect(messages.filter((m) => m === 'layer staged')).toHaveLength(1);
  });
});
