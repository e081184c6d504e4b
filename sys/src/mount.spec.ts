import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorKind } from '@berth/core';
import {
  compactLowerdirOption,
  isMountPoint,
  mkfifo,
  mount,
  mountAll,
  mountFlags,
  mountPoints,
  parseMountOptions,
  SyscallError,
  umount,
  unmountAll,
} from './index';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
/** Mount tests need root; they skip only when not root. */
const describeAsRoot: jest.Describe = isRoot ? describe : describe.skip;

describe('parseMountOptions', () => {
  it('turns containerd option words into flags and leaves the rest as data', () => {
    const parsed = parseMountOptions(['rbind', 'ro', 'nosuid', 'X-hint', 'lowerdir=/a:/b', 'index=off']);
    expect(parsed.flags).toBe(mountFlags(['bind', 'rec', 'rdonly', 'nosuid']));
    expect(parsed.data).toEqual(['lowerdir=/a:/b', 'index=off']);
  });

  it('lets a later word clear an earlier one', () => {
    expect(parseMountOptions(['ro', 'rw']).flags).toBe(0);
    expect(parseMountOptions(['nodev', 'dev', 'noexec']).flags).toBe(mountFlags(['noexec']));
  });

  it('knows propagation words', () => {
    expect(parseMountOptions(['rprivate']).flags).toBe(mountFlags(['private', 'rec']));
    expect(parseMountOptions(['slave']).flags).toBe(mountFlags(['slave']));
  });

  it('refuses loop devices', () => {
    expect(() => parseMountOptions(['loop'])).toThrow(/loop/);
  });
});

describe('compactLowerdirOption', () => {
  it('rewrites lowerdirs relative to their common parent', () => {
    const compacted = compactLowerdirOption([
      'index=off',
      'lowerdir=/var/lib/x/snapshots/12/fs:/var/lib/x/snapshots/3/fs',
      'upperdir=/var/lib/x/snapshots/13/fs',
    ]);
    expect(compacted).toEqual({
      dir: '/var/lib/x/snapshots',
      options: ['index=off', 'upperdir=/var/lib/x/snapshots/13/fs', 'lowerdir=12/fs:3/fs'],
    });
  });

  it('compares whole path components, not characters', () => {
    expect(compactLowerdirOption(['lowerdir=/data/layer1/fs:/data/layer12/fs'])?.dir).toBe('/data');
  });

  it('keeps every lowerdir strictly below the common dir', () => {
    expect(compactLowerdirOption(['lowerdir=/a/b:/a/b/c'])).toEqual({ dir: '/a', options: ['lowerdir=b:b/c'] });
  });

  it('leaves single lowerdirs and nothing-in-common lists alone', () => {
    expect(compactLowerdirOption(['lowerdir=/a/b'])).toBeUndefined();
    expect(compactLowerdirOption(['lowerdir=/a/x:/b/y'])).toBeUndefined();
    expect(compactLowerdirOption(['upperdir=/a'])).toBeUndefined();
  });
});

describeAsRoot('mounts (root)', () => {
  let root: string;
  const targets: string[] = [];

  /** A fresh directory under this test's root. */
  function dir(name: string): string {
    const path = join(root, name);
    mkdirSync(path, { recursive: true });
    return path;
  }

  function target(name: string): string {
    const path = dir(name);
    targets.push(path);
    return path;
  }

  function mountsUnder(path: string): string[] {
    return mountPoints().filter((p) => p === path || p.startsWith(path + '/'));
  }

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'berth-sys-'));
  });

  afterEach(async () => {
    // Unmount even when the test failed, then prove nothing leaked.
    for (const t of targets.splice(0).reverse()) await unmountAll(t, { detach: true });
    for (const leaked of mountsUnder(root).reverse()) umount(leaked, { detach: true });
    const leaked = mountsUnder(root);
    rmSync(root, { recursive: true, force: true });
    expect(leaked).toEqual([]);
  });

  it('bind mounts a directory and reads a file back through it', async () => {
    const source = dir('src');
    writeFileSync(join(source, 'hello'), 'world');
    const at = target('mnt');
    await mountAll([{ type: 'bind', source, options: ['rbind', 'rw'] }], at);
    expect(isMountPoint(at)).toBe(true);
    expect(readFileSync(join(at, 'hello'), 'utf8')).toBe('world');
    writeFileSync(join(at, 'back'), 'written through the mount');
    expect(readFileSync(join(source, 'back'), 'utf8')).toBe('written through the mount');
    await unmountAll(at);
    expect(isMountPoint(at)).toBe(false);
    expect(readdirSync(at)).toEqual([]);
  });

  it('makes a read-only bind refuse writes with EROFS', async () => {
    const source = dir('src');
    writeFileSync(join(source, 'file'), 'data');
    const at = target('mnt');
    await mountAll([{ type: 'bind', source, options: ['rbind', 'ro'] }], at);
    expect(readFileSync(join(at, 'file'), 'utf8')).toBe('data');
    expect(() => writeFileSync(join(at, 'file'), 'x')).toThrow(expect.objectContaining({ code: 'EROFS' }));
    expect(() => writeFileSync(join(at, 'new'), 'x')).toThrow(expect.objectContaining({ code: 'EROFS' }));
    // Read-only applies to this bind only, not the source.
    writeFileSync(join(source, 'new'), 'fine');
  });

  it('merges an overlay of two lowers, an upper and a work dir', async () => {
    const lower1 = dir('lower1');
    const lower2 = dir('lower2');
    const upper = dir('upper');
    const work = dir('work');
    writeFileSync(join(lower2, 'base'), 'from lower2');
    writeFileSync(join(lower2, 'shadowed'), 'lower2');
    writeFileSync(join(lower1, 'shadowed'), 'lower1');
    writeFileSync(join(lower1, 'only1'), 'from lower1');
    const at = target('merged');
    await mountAll(
      [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lower1}:${lower2}`, `upperdir=${upper}`, `workdir=${work}`] }],
      at,
    );
    expect(readdirSync(at).sort()).toEqual(['base', 'only1', 'shadowed']);
    expect(readFileSync(join(at, 'shadowed'), 'utf8')).toBe('lower1');
    writeFileSync(join(at, 'base'), 'changed');
    expect(readFileSync(join(upper, 'base'), 'utf8')).toBe('changed');
    expect(readFileSync(join(lower2, 'base'), 'utf8')).toBe('from lower2');
    rmSync(join(at, 'only1'));
    // A deletion in the merged view is a whiteout (0/0 char device) in the upper.
    const whiteout = statSync(join(upper, 'only1'));
    expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true);
  });

  /** `count` layers in containerd's layout under a long root: lowerdirs nearest first. */
  function overlayLayers(count: number): { options: string[]; upper: string } {
    const layersDir = dir(`${'a-deliberately-long-snapshotter-root-'.repeat(3)}/snapshots`);
    const lowerdirs: string[] = [];
    for (let i = 0; i < count; i++) {
      const fs = join(layersDir, String(i), 'fs');
      mkdirSync(fs, { recursive: true });
      writeFileSync(join(fs, `layer-${i}`), String(i));
      writeFileSync(join(fs, 'top'), String(i));
      lowerdirs.push(fs);
    }
    lowerdirs.reverse();
    const upper = dir('upper');
    return { options: [`lowerdir=${lowerdirs.join(':')}`, `upperdir=${upper}`, `workdir=${dir('work')}`], upper };
  }

  function mountOptionsOf(at: string): string {
    const line = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === at);
    return line?.split(' - ')[1] ?? '';
  }

  it('mounts an overlay of 128 long lowerdirs whose data exceeds a page, in-process', async () => {
    const { options, upper } = overlayLayers(128);
    expect(options.join(',').length).toBeGreaterThan(4096);
    const at = target('merged');
    await mountAll([{ type: 'overlay', source: 'overlay', options }], at);
    expect(readFileSync(join(at, 'layer-0'), 'utf8')).toBe('0');
    expect(readFileSync(join(at, 'layer-127'), 'utf8')).toBe('127');
    expect(readFileSync(join(at, 'top'), 'utf8')).toBe('127');
    expect(readdirSync(at)).toHaveLength(129);
    writeFileSync(join(at, 'new'), 'upper');
    expect(readFileSync(join(upper, 'new'), 'utf8')).toBe('upper');
    expect(mountOptionsOf(at)).toContain('/proc/self/fd/');
  });

  it('mounts an overlay of 400 lowerdirs from a helper process in their common dir', async () => {
    const { options } = overlayLayers(400);
    const at = target('merged');
    await mountAll([{ type: 'overlay', source: 'overlay', options }], at);
    expect(readFileSync(join(at, 'layer-0'), 'utf8')).toBe('0');
    expect(readFileSync(join(at, 'top'), 'utf8')).toBe('399');
    expect(readdirSync(at)).toHaveLength(401);
    expect(mountOptionsOf(at)).toMatch(/lowerdir=399\/fs:398\/fs:/);
  });

  it('refuses mount data that does not fit a page even when compacted', async () => {
    const at = target('merged');
    const options = ['lowerdir=/a:/b', `x-long=${'y'.repeat(5000)}`];
    await expect(mountAll([{ type: 'overlay', source: 'overlay', options }], at)).rejects.toThrow(/page/);
    expect(isMountPoint(at)).toBe(false);
  });

  it('detaches a busy mount lazily', async () => {
    const source = dir('src');
    writeFileSync(join(source, 'file'), 'data');
    const at = target('mnt');
    mount(source, at, '', ['bind']);
    const fd = openSync(join(at, 'file'), 'r');
    try {
      expect(() => umount(at)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
      umount(at, { detach: true });
      expect(isMountPoint(at)).toBe(false);
    } finally {
      closeSync(fd);
    }
  });

  it('unmounts every stacked mount on a target', async () => {
    const a = dir('a');
    const b = dir('b');
    writeFileSync(join(b, 'from-b'), '');
    const at = target('mnt');
    await mountAll(
      [
        { type: 'bind', source: a, options: ['rbind'] },
        { type: 'bind', source: b, options: ['rbind', 'ro'] },
      ],
      at,
    );
    expect(readdirSync(at)).toEqual(['from-b']);
    expect(mountsUnder(at)).toEqual([at, at]);
    await unmountAll(at);
    expect(mountsUnder(at)).toEqual([]);
    // Nothing left to unmount is not an error.
    await unmountAll(at);
    await unmountAll(join(root, 'does-not-exist'));
  });

  it('mounts at a sub-path given by Mount.target', async () => {
    const outer = dir('outer');
    const inner = dir('inner');
    mkdirSync(join(outer, 'sub'));
    writeFileSync(join(inner, 'deep'), 'yes');
    const at = target('mnt');
    targets.push(join(at, 'sub'));
    await mountAll(
      [
        { type: 'bind', source: outer, options: ['rbind'] },
        { type: 'bind', source: inner, target: 'sub', options: ['rbind', 'ro'] },
      ],
      at,
    );
    expect(readFileSync(join(at, 'sub', 'deep'), 'utf8')).toBe('yes');
    await expect(mountAll([{ type: 'bind', source: inner, target: '../escape', options: ['rbind'] }], at)).rejects.toThrow(
      /outside/,
    );
  });

  it('undoes earlier mounts when a later one fails', async () => {
    const source = dir('src');
    const at = target('mnt');
    await expect(
      mountAll(
        [
          { type: 'bind', source, options: ['rbind'] },
          { type: 'bind', source: join(root, 'missing'), options: ['rbind'] },
        ],
        at,
      ),
    ).rejects.toThrow(/ENOENT/);
    expect(isMountPoint(at)).toBe(false);
  });

  it('applies propagation options after the mount', async () => {
    const source = dir('src');
    const at = target('mnt');
    await mountAll([{ type: 'bind', source, options: ['rbind', 'rprivate'] }], at);
    const line = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === at);
    // mountinfo lists "shared:N" / "master:N" optional fields; a private mount has none.
    expect(line).toBeDefined();
    expect(line).not.toMatch(/ (shared|master):\d+/);
  });

  it('names the call, the path and the errno in errors', () => {
    const missing = join(root, 'nowhere');
    let caught: unknown;
    try {
      mount('overlay', missing, 'overlay', [], 'lowerdir=/x:/y');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SyscallError);
    expect((caught as SyscallError).message).toBe(`mount overlay on ${missing}: ENOENT (No such file or directory)`);
    expect((caught as SyscallError).code).toBe('ENOENT');
    expect((caught as SyscallError).path).toBe(missing);
    expect(errorKind(caught)).toBe('not-found');

    const notMounted = dir('plain');
    expect(() => umount(notMounted)).toThrow(`unmount ${notMounted}: EINVAL (Invalid argument)`);
    expect(() => mount(dir('s'), notMounted, 'no-such-fs', [])).toThrow(/ENODEV \(No such device\)/);
  });

  it('creates FIFOs with mkfifo', () => {
    const path = join(root, 'fifo');
    mkfifo(path, 0o600);
    const stat = statSync(path);
    expect(stat.isFIFO()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
    expect(() => mkfifo(path, 0o600)).toThrow(`mkfifo ${path}: EEXIST (File exists)`);
  });
});
