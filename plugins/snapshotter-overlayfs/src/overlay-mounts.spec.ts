import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Mount } from '@berth/core';
import { mount, mountAll, pageSize, unmountAll } from '@berth/sys';
import { mountPointsUnder } from './mount-points';
import { OverlaySnapshotter } from './overlay-snapshotter';
import { describeAsRoot } from './test-fixtures/root';

// Real mounts of what the snapshotter returns.

let base: string;
let snapshotter: OverlaySnapshotter;
let targets = 0;

beforeEach(async () => {
  base = mkdtempSync(join(tmpdir(), 'berth-overlay-mounts-'));
  snapshotter = await OverlaySnapshotter.open(join(base, 'root'));
});
afterEach(async () => {
  await snapshotter.close();
  const leaked = mountPointsUnder(base);
  // Unmount before failing, so one broken test does not strand mounts on the host.
  for (const point of leaked.reverse()) await unmountAll(point, { detach: true });
  rmSync(base, { recursive: true, force: true });
  expect(leaked).toEqual([]);
});

async function withMounted<T>(mounts: Mount[], use: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = join(base, `mnt-${++targets}`);
  await mkdir(dir);
  await mountAll(mounts, dir);
  try {
    return await use(dir);
  } finally {
    await unmountAll(dir);
    await rmdir(dir);
  }
}

/** The directory a prepared snapshot's writes land in. */
function upperOf(mounts: Mount[]): string {
  const [m] = mounts;
  if (m.type === 'bind') return m.source;
  const upper = m.options.find((o) => o.startsWith('upperdir='));
  if (!upper) throw new Error(`no upperdir in ${JSON.stringify(m)}`);
  return upper.slice('upperdir='.length);
}

function writeFails(path: string): string | undefined {
  try {
    writeFileSync(path, 'x');
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

describeAsRoot('overlay snapshots, mounted', () => {
  it('binds a snapshot without parents writable, and a view of nothing read-only', async () => {
    await withMounted(await snapshotter.prepare('a', ''), (dir) => writeFileSync(join(dir, 'hello'), 'world'));
    await snapshotter.commit('base', 'a');
    expect(readFileSync(join(base, 'root', 'snapshots', '1', 'fs', 'hello'), 'utf8')).toBe('world');

    await withMounted(await snapshotter.view('empty', ''), (dir) => {
      expect(readdirSync(dir)).toEqual([]);
      expect(writeFails(join(dir, 'x'))).toBe('EROFS');
    });
  });

  it('shows the parent read-only in a view on one parent', async () => {
    const upper = upperOf(await snapshotter.prepare('a', ''));
    writeFileSync(join(upper, 'file'), 'layer');
    await snapshotter.commit('base', 'a');
    await withMounted(await snapshotter.view('v', 'base'), (dir) => {
      expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('layer');
      expect(writeFails(join(dir, 'file'))).toBe('EROFS');
    });
  });

  it('writes of an active snapshot land in its own upper dir only', async () => {
    const lower = upperOf(await snapshotter.prepare('a', ''));
    writeFileSync(join(lower, 'file'), 'lower');
    await snapshotter.commit('base', 'a');
    const mounts = await snapshotter.prepare('b', 'base');
    await withMounted(mounts, (dir) => {
      expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('lower');
      writeFileSync(join(dir, 'file'), 'changed');
      writeFileSync(join(dir, 'new'), 'new');
    });
    expect(readFileSync(join(lower, 'file'), 'utf8')).toBe('lower');
    expect(readdirSync(upperOf(mounts)).sort()).toEqual(['file', 'new']);
  });

  it('mounts a chain of 128 layers, each adding a file, with a whiteout in the middle', async () => {
    const layers = 128;
    const fileOf = (i: number) => `layer-${String(i).padStart(3, '0')}`;
    let parent = '';
    for (let i = 0; i < layers; i++) {
      const key = `extract-${i}`;
      const mounts = await snapshotter.prepare(key, parent);
      if (i === 64) {
        // Deleting through the mount makes the kernel write the whiteout.
        await withMounted(mounts, (dir) => {
          unlinkSync(join(dir, 'doomed'));
          writeFileSync(join(dir, fileOf(i)), String(i));
        });
      } else {
        writeFileSync(join(upperOf(mounts), fileOf(i)), String(i));
        if (i === 0) writeFileSync(join(upperOf(mounts), 'doomed'), 'from the base layer');
      }
      await snapshotter.commit(`layer-${i}`, key);
      parent = `layer-${i}`;
    }
    const whiteout = lstatSync(join(base, 'root', 'snapshots', '65', 'fs', 'doomed'));
    expect([whiteout.isCharacterDevice(), whiteout.rdev]).toEqual([true, 0]);

    const expected = Array.from({ length: layers }, (_, i) => fileOf(i));
    const active = await snapshotter.prepare('rootfs', parent);
    // Longer than a page: only mountable because @berth/sys shortens the lowerdir list.
    expect(active[0].options.join(',').length).toBeGreaterThan(pageSize());
    await withMounted(active, (dir) => {
      expect(readdirSync(dir).sort()).toEqual(expected);
      expect(readFileSync(join(dir, fileOf(0)), 'utf8')).toBe('0');
      expect(readFileSync(join(dir, fileOf(127)), 'utf8')).toBe('127');
      writeFileSync(join(dir, 'container-file'), 'x');
    });
    expect(readdirSync(upperOf(active))).toEqual(['container-file']);

    await withMounted(await snapshotter.view('rootfs-view', parent), (dir) => {
      expect(readdirSync(dir).sort()).toEqual(expected);
      expect(writeFails(join(dir, 'x'))).toBe('EROFS');
    });
  });

  it('does not delete a removed snapshot while something is still mounted inside it', async () => {
    const fs = upperOf(await snapshotter.prepare('a', ''));
    mount('tmpfs', fs, 'tmpfs', []);
    writeFileSync(join(fs, 'precious'), 'x');
    await snapshotter.remove('a');
    await snapshotter.cleanup();
    expect(readFileSync(join(fs, 'precious'), 'utf8')).toBe('x');

    await unmountAll(fs);
    await snapshotter.cleanup();
    expect(existsSync(join(base, 'root', 'snapshots', '1'))).toBe(false);
  });
});
