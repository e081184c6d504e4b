import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  linkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InversifyContainer as Container, errorKind, silentLogger, Snapshotter, snapshotterSuite, type InitContext } from '@berth/core';
import * as sys from '@berth/sys';
import { NativeSnapshotter, nativeSnapshotterPlugin, type NativeSnapshotterConfig } from './index';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const describeAsRoot: jest.Describe = isRoot ? describe : describe.skip;

snapshotterSuite(
  'native',
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-native-'));
    const snapshotter = await NativeSnapshotter.open(root);
    return { snapshotter, root, cleanup: async () => rmSync(root, { recursive: true, force: true }) };
  },
  { mounter: sys, xattrs: sys },
);

describeAsRoot('NativeSnapshotter', () => {
  let root: string;
  let open: NativeSnapshotter[] = [];

  async function openAt(dir = root): Promise<NativeSnapshotter> {
    const s = await NativeSnapshotter.open(dir);
    open.push(s);
    return s;
  }

  /** Fills the directory of an active snapshot directly: native mounts are plain binds of it. */
  async function commitDir(s: NativeSnapshotter, name: string, parent: string, fill: (dir: string) => void): Promise<void> {
    const [mount] = await s.prepare(`${name}-active`, parent);
    fill(mount.source);
    await s.commit(name, `${name}-active`);
  }

  const snapshotsDir = (): string => join(root, 'snapshots');

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'berth-native-only-'));
  });

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('lays snapshots out as containerd does: metadata.db and snapshots/<id>, bind mounts', async () => {
    const s = await openAt();
    const prepared = await s.prepare('a', '');
    expect(prepared).toEqual([{ type: 'bind', source: join(snapshotsDir(), '1'), options: ['rbind', 'rw'] }]);
    await s.commit('c', 'a');
    // A view on a parent borrows the parent's directory, read-only.
    expect(await s.view('v', 'c')).toEqual([{ type: 'bind', source: join(snapshotsDir(), '1'), options: ['rbind', 'ro'] }]);
    expect(await s.view('v2', '')).toEqual([{ type: 'bind', source: join(snapshotsDir(), '3'), options: ['rbind', 'ro'] }]);
    expect(await s.prepare('b', 'c')).toEqual([{ type: 'bind', source: join(snapshotsDir(), '4'), options: ['rbind', 'rw'] }]);
    expect(readdirSync(root).sort()).toEqual(expect.arrayContaining(['metadata.db', 'snapshots']));
    expect(readdirSync(snapshotsDir()).sort()).toEqual(['1', '3', '4']);
    await s.remove('v');
    expect(readdirSync(snapshotsDir()).sort()).toEqual(['1', '3', '4']);
    await s.remove('b');
    expect(readdirSync(snapshotsDir()).sort()).toEqual(['1', '3']);
  });

  it('copies device nodes, FIFOs, hardlinks, symlink times and capabilities into a child', async () => {
    const s = await openAt();
    const mtime = new Date('2010-01-02T03:04:05.678Z');
    const atime = new Date('2011-01-02T03:04:05Z');
    const capability = Buffer.alloc(20);
    capability.writeUInt32LE(0x02000001, 0);
    capability.writeUInt32LE(1 << 10, 4);
    await commitDir(s, 'parent', '', (dir) => {
      const mknod = spawnSync('mknod', ['-m', '0666', join(dir, 'null'), 'c', '1', '3']);
      expect(mknod.status).toBe(0);
      sys.mkfifo(join(dir, 'fifo'), 0o640);
      writeFileSync(join(dir, 'a'), 'linked');
      linkSync(join(dir, 'a'), join(dir, 'b'));
      writeFileSync(join(dir, 'ping'), '');
      sys.setxattr(join(dir, 'ping'), 'security.capability', capability);
      mkdirSync(join(dir, 'opaque'));
      sys.setxattr(join(dir, 'opaque'), 'trusted.overlay.opaque', 'y');
      symlinkSync('a', join(dir, 'link'));
      lutimesSync(join(dir, 'link'), atime, mtime);
      utimesSync(join(dir, 'a'), atime, mtime);
    });
    const [child] = await s.prepare('child', 'parent');
    const dir = child.source;
    const dev = lstatSync(join(dir, 'null'));
    expect(dev.isCharacterDevice()).toBe(true);
    expect([major(dev.rdev), minor(dev.rdev), dev.mode & 0o777]).toEqual([1, 3, 0o666]);
    const fifo = lstatSync(join(dir, 'fifo'));
    expect([fifo.isFIFO(), fifo.mode & 0o777]).toEqual([true, 0o640]);
    const [a, b] = [lstatSync(join(dir, 'a')), lstatSync(join(dir, 'b'))];
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
    expect(a.ino).not.toBe(lstatSync(join(root, 'snapshots', '1', 'a')).ino);
    expect(a.mtime.getTime()).toBe(mtime.getTime());
    expect(a.atime.getTime()).toBe(atime.getTime());
    const link = lstatSync(join(dir, 'link'));
    expect([link.mtime.getTime(), link.atime.getTime()]).toEqual([mtime.getTime(), atime.getTime()]);
    expect(sys.getxattr(join(dir, 'ping'), 'security.capability')).toEqual(capability);
    expect(sys.getxattr(join(dir, 'opaque'), 'trusted.overlay.opaque').toString()).toBe('y');
    // The copy is a copy: writing the child leaves the parent alone.
    writeFileSync(join(dir, 'a'), 'changed');
    expect(readFileSync(join(root, 'snapshots', '1', 'a'), 'utf8')).toBe('linked');
  });

  it('keeps snapshots across close and reopen', async () => {
    const s = await openAt();
    await commitDir(s, 'base', '', (dir) => writeFileSync(join(dir, 'f'), 'kept'));
    await s.prepare('work', 'base', { labels: { l: 'v' } });
    await s.close();
    const again = await openAt();
    expect(await again.stat('work')).toMatchObject({ kind: 'active', parent: 'base', labels: { l: 'v' } });
    const [mount] = await again.mounts('work');
    expect(readFileSync(join(mount.source, 'f'), 'utf8')).toBe('kept');
    expect((await again.usage('base')).size).toBeGreaterThan(0);
  });

  it('refuses every call after close', async () => {
    const s = await openAt();
    await s.close();
    await expect(s.stat('x')).rejects.toThrow(/closed/);
    await expect(s.prepare('x', '')).rejects.toThrow(/closed/);
  });

  it('removes leftovers of a crash at open: new-*, rm-* and directories without a row', async () => {
    const s = await openAt();
    await commitDir(s, 'base', '', (dir) => writeFileSync(join(dir, 'f'), 'base'));
    await s.close();
    mkdirSync(join(snapshotsDir(), 'new-0123456789abcdef/deep'), { recursive: true });
    writeFileSync(join(snapshotsDir(), 'new-0123456789abcdef/deep/file'), 'half a copy');
    mkdirSync(join(snapshotsDir(), '99'));
    mkdirSync(join(snapshotsDir(), 'rm-98'));
    mkdirSync(join(snapshotsDir(), 'not-ours'));
    const again = await openAt();
    expect(readdirSync(snapshotsDir()).sort()).toEqual(['1', 'not-ours']);
    expect(await names(again)).toEqual(['base']);
  });

  it('cleanup() leaves a prepare in flight alone', async () => {
    const s = await openAt();
    await commitDir(s, 'big', '', (dir) => {
      for (let i = 0; i < 400; i++) writeFileSync(join(dir, `f${i}`), String(i));
    });
    const preparing = s.prepare('copying', 'big');
    // Let cp start, so a new-* directory exists while cleanup runs.
    await new Promise((r) => setTimeout(r, 5));
    await s.cleanup();
    const [mount] = await preparing;
    expect(readdirSync(mount.source)).toHaveLength(400);
  });

  describe('a crash (SIGKILL) part-way', () => {
    const child = join(__dirname, 'test-fixtures', 'crash-child.js');

    function crash(...args: string[]): Promise<NodeJS.Signals | null> {
      return new Promise((resolve, reject) => {
        const p = spawn(process.execPath, [child, root, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        p.on('error', reject);
        p.on('close', (code, signal) => (signal ? resolve(signal) : reject(new Error(`child exited ${code}: ${stderr}`))));
      });
    }

    async function withBase(): Promise<void> {
      const s = await NativeSnapshotter.open(root);
      await commitDir(s, 'base', '', (dir) => writeFileSync(join(dir, 'f'), 'base'));
      await s.close();
    }

    it('after the copy, before the rename: no snapshot, no directory', async () => {
      await withBase();
      expect(await crash('prepare', 'victim', 'base', 'before', '/snapshots/\\d+$')).toBe('SIGKILL');
      expect(readdirSync(snapshotsDir()).some((e) => e.startsWith('new-'))).toBe(true);
      const s = await openAt();
      expect(await names(s)).toEqual(['base']);
      await expect(s.stat('victim')).rejects.toThrow(/not found/);
      expect(readdirSync(snapshotsDir())).toEqual(['1']);
      // The key is free, and the next id does not collide with anything left over.
      const [mount] = await s.prepare('victim', 'base');
      expect(readFileSync(join(mount.source, 'f'), 'utf8')).toBe('base');
    });

    it('after the rename, before the metadata commit: no snapshot, no directory', async () => {
      await withBase();
      expect(await crash('prepare', 'victim', 'base', 'after', '/snapshots/\\d+$')).toBe('SIGKILL');
      // The directory made it under its id; the row did not.
      expect(readdirSync(snapshotsDir()).sort()).toEqual(['1', '2']);
      const s = await openAt();
      expect(await names(s)).toEqual(['base']);
      expect(readdirSync(snapshotsDir())).toEqual(['1']);
      await s.prepare('victim', 'base');
      expect(await names(s)).toEqual(['base', 'victim']);
    });

    it('during remove, after the rename to rm-<id>: the snapshot stays, whole', async () => {
      await withBase();
      const s = await NativeSnapshotter.open(root);
      await s.prepare('doomed', 'base');
      await s.close();
      expect(await crash('remove', 'doomed', '', 'after', '/rm-\\d+$')).toBe('SIGKILL');
      expect(readdirSync(snapshotsDir()).sort()).toEqual(['1', 'rm-2']);
      const again = await openAt();
      expect(await names(again)).toEqual(['base', 'doomed']);
      const [mount] = await again.mounts('doomed');
      expect(readFileSync(join(mount.source, 'f'), 'utf8')).toBe('base');
      await again.remove('doomed');
      expect(readdirSync(snapshotsDir())).toEqual(['1']);
    });
  });

  describe('plugin registration', () => {
    it('is io.berth.snapshotter.v1.native, binds itself by id and exports its root', async () => {
      expect(nativeSnapshotterPlugin.type).toBe('io.berth.snapshotter.v1');
      expect(nativeSnapshotterPlugin.id).toBe('native');
      const config = nativeSnapshotterPlugin.config!.parse({});
      expect(config).toEqual({ root_path: '' });
      const container = new Container();
      const ctx: Partial<InitContext<NativeSnapshotterConfig>> = {
        type: nativeSnapshotterPlugin.type,
        id: 'native',
        root,
        config,
        logger: silentLogger(),
        container,
        meta: { platforms: [], exports: {}, capabilities: [] },
      };
      const instance = await nativeSnapshotterPlugin.init(ctx as InitContext<NativeSnapshotterConfig>);
      open.push(instance);
      expect(ctx.meta!.exports.root).toBe(root);
      expect(container.getNamed<Snapshotter>(Snapshotter, 'native')).toBe(instance);
      expect(errorKind(await instance.stat('nothing').catch((e: unknown) => e))).toBe('not-found');
    });
  });
});

async function names(s: NativeSnapshotter): Promise<string[]> {
  const out: string[] = [];
  for await (const info of s.walk()) out.push(info.name);
  return out.sort();
}

/** glibc's gnu_dev_major/minor on the 32-bit rdev Node reports. */
function major(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}

function minor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
}
