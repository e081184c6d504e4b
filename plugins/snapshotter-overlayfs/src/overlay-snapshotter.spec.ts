import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorKind, type SnapshotInfo } from '@berth/core';
import { OverlaySnapshotter, UPPERDIR_LABEL, type OverlaySnapshotterOptions } from './overlay-snapshotter';
import { overlayIndexParameter } from './overlay-support';
import { isRoot } from './test-fixtures/root';

// Nothing here mounts: these tests cover the bookkeeping and run as any user.

let root: string;
let open: OverlaySnapshotter[];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'berth-overlay-'));
  open = [];
});
afterEach(async () => {
  for (const s of open) await s.close();
  rmSync(root, { recursive: true, force: true });
});

async function snapshotter(options: OverlaySnapshotterOptions = {}): Promise<OverlaySnapshotter> {
  const s = await OverlaySnapshotter.open(root, options);
  open.push(s);
  return s;
}

const fsOf = (id: number) => join(root, 'snapshots', String(id), 'fs');
const workOf = (id: number) => join(root, 'snapshots', String(id), 'work');
const indexOff = existsSync(overlayIndexParameter) ? ['index=off'] : [];

async function kindOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return errorKind(err);
  }
  return 'no error';
}

async function all(s: OverlaySnapshotter, filters?: string[]): Promise<SnapshotInfo[]> {
  const infos: SnapshotInfo[] = [];
  for await (const info of s.walk(filters)) infos.push(info);
  return infos;
}

function snapshotDirs(): string[] {
  return readdirSync(join(root, 'snapshots')).sort();
}

describe('OverlaySnapshotter mounts', () => {
  it('binds a snapshot without parents: rw when active, ro for a view', async () => {
    const s = await snapshotter();
    expect(await s.prepare('active', '')).toEqual([{ type: 'bind', source: fsOf(1), options: ['rw', 'rbind'] }]);
    expect(await s.view('view', '')).toEqual([{ type: 'bind', source: fsOf(2), options: ['ro', 'rbind'] }]);
  });

  it('binds the parent read-only for a view on one parent', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.commit('base', 'a');
    expect(await s.view('view', 'base')).toEqual([{ type: 'bind', source: fsOf(1), options: ['ro', 'rbind'] }]);
  });

  it('overlays an active snapshot on its parents, nearest parent first', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.commit('base', 'a');
    expect(await s.prepare('b', 'base')).toEqual([
      {
        type: 'overlay',
        source: 'overlay',
        options: [...indexOff, `workdir=${workOf(2)}`, `upperdir=${fsOf(2)}`, `lowerdir=${fsOf(1)}`],
      },
    ]);
    await s.commit('middle', 'b');
    expect(await s.prepare('c', 'middle')).toEqual([
      {
        type: 'overlay',
        source: 'overlay',
        options: [...indexOff, `workdir=${workOf(3)}`, `upperdir=${fsOf(3)}`, `lowerdir=${fsOf(2)}:${fsOf(1)}`],
      },
    ]);
  });

  it('overlays a view on several parents with lowerdir only', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.commit('base', 'a');
    await s.prepare('b', 'base');
    await s.commit('middle', 'b');
    expect(await s.view('view', 'middle')).toEqual([
      { type: 'overlay', source: 'overlay', options: [...indexOff, `lowerdir=${fsOf(2)}:${fsOf(1)}`] },
    ]);
    expect(existsSync(workOf(3))).toBe(false);
  });

  it('puts configured mount options after the defaults on overlay mounts only', async () => {
    const s = await snapshotter({ mountOptions: ['volatile'] });
    expect((await s.prepare('a', ''))[0].options).toEqual(['rw', 'rbind']);
    await s.commit('base', 'a');
    expect((await s.prepare('b', 'base'))[0].options).toEqual([
      ...indexOff,
      'volatile',
      `workdir=${workOf(2)}`,
      `upperdir=${fsOf(2)}`,
      `lowerdir=${fsOf(1)}`,
    ]);
  });

  it('mounts() repeats what prepare() returned and refuses committed snapshots', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.commit('base', 'a');
    const prepared = await s.prepare('b', 'base');
    expect(await s.mounts('b')).toEqual(prepared);
    expect(await kindOf(s.mounts('base'))).toBe('failed-precondition');
    expect(await kindOf(s.mounts('missing'))).toBe('not-found');
  });
});

describe('OverlaySnapshotter lifecycle', () => {
  it('lays out snapshots/<id>/{fs,work}, work only while active', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.view('v', '');
    expect(snapshotDirs()).toEqual(['1', '2']);
    expect(readdirSync(join(root, 'snapshots', '1')).sort()).toEqual(['fs', 'work']);
    expect(readdirSync(join(root, 'snapshots', '2'))).toEqual(['fs']);
    expect(statSync(fsOf(1)).mode & 0o7777).toBe(0o755);
    expect(existsSync(join(root, 'metadata.db'))).toBe(true);

    await s.commit('base', 'a');
    expect(readdirSync(join(root, 'snapshots', '1'))).toEqual(['fs']);
  });

  it('gives a new snapshot the owner and mode of its parent root', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    chmodSync(fsOf(1), 0o750);
    const [uid, gid] = isRoot ? [1234, 5678] : [process.getuid!(), process.getgid!()];
    chownSync(fsOf(1), uid, gid);
    await s.commit('base', 'a');
    await s.prepare('b', 'base');
    await s.view('v', 'base');
    for (const id of [2, 3]) {
      const st = statSync(fsOf(id));
      expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o750, uid, gid]);
    }
  });

  it('records the usage of the upper dir at commit and measures active snapshots live', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    const empty = await s.usage('a');
    expect(empty.inodes).toBe(1);
    writeFileSync(join(fsOf(1), 'one'), Buffer.alloc(10000, 1));
    mkdirSync(join(fsOf(1), 'dir'));
    writeFileSync(join(fsOf(1), 'dir', 'two'), 'x');
    const live = await s.usage('a');
    expect(live.inodes).toBe(4);
    expect(live.size).toBeGreaterThanOrEqual(empty.size + 10000);

    await s.commit('base', 'a');
    expect(await s.usage('base')).toEqual(live);
    // Recorded, not measured again: later changes to the layer do not show.
    writeFileSync(join(fsOf(1), 'late'), Buffer.alloc(50000, 1));
    expect(await s.usage('base')).toEqual(live);
    expect(await s.usage('base')).toEqual(live);
    await s.view('v', 'base');
    expect(await s.usage('v')).toEqual({ size: 0, inodes: 0 });
  });

  it('commit keeps the id, takes labels from its options only and resets the times', async () => {
    const s = await snapshotter();
    await s.prepare('a', '', { labels: { from: 'prepare' } });
    const before = await s.stat('a');
    await new Promise((r) => setTimeout(r, 5));
    await s.commit('base', 'a', { labels: { from: 'commit' } });
    const info = await s.stat('base');
    expect(info).toMatchObject({ kind: 'committed', name: 'base', parent: '', labels: { from: 'commit' } });
    expect(info.createdAt.getTime()).toBeGreaterThan(before.createdAt.getTime());
    expect(await kindOf(s.stat('a'))).toBe('not-found');
    expect(snapshotDirs()).toEqual(['1']);
  });

  it('refuses bad commits', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.prepare('b', '');
    await s.view('v', '');
    expect(await kindOf(s.commit('x', 'missing'))).toBe('not-found');
    expect(await kindOf(s.commit('x', 'v'))).toBe('failed-precondition');
    expect(await kindOf(s.commit('b', 'a'))).toBe('already-exists');
    expect(await kindOf(s.commit('', 'a'))).toBe('invalid-argument');
    await s.commit('base', 'a');
    expect(await kindOf(s.commit('again', 'base'))).toBe('failed-precondition');
  });

  it('refuses bad prepares and views', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    expect(await kindOf(s.prepare('a', ''))).toBe('already-exists');
    expect(await kindOf(s.view('a', ''))).toBe('already-exists');
    expect(await kindOf(s.prepare('b', 'missing'))).toBe('not-found');
    expect(await kindOf(s.prepare('b', 'a'))).toBe('invalid-argument');
    expect(await kindOf(s.prepare('', ''))).toBe('invalid-argument');
    expect(await kindOf(s.prepare('b', '', { labels: { k: 'x'.repeat(5000) } }))).toBe('invalid-argument');
    expect((await all(s)).map((i) => i.name)).toEqual(['a']);
    expect(snapshotDirs()).toEqual(['1']);
  });

  it('lets exactly one of several concurrent prepares of a key win, leaving no temp dirs', async () => {
    const s = await snapshotter();
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => s.prepare('same', '')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(errorKind(r.reason)).toBe('already-exists');
    expect(snapshotDirs()).toHaveLength(1);
  });

  it('remove refuses a snapshot with children', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.commit('base', 'a');
    await s.view('child', 'base');
    expect(await kindOf(s.remove('base'))).toBe('failed-precondition');
    expect((await s.stat('base')).kind).toBe('committed');
    await s.remove('child');
    await s.remove('base');
    expect(await kindOf(s.remove('base'))).toBe('not-found');
    expect(await all(s)).toEqual([]);
  });

  it('leaves removed directories to cleanup()', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.prepare('b', '');
    writeFileSync(join(fsOf(1), 'data'), 'x');
    await s.remove('a');
    expect(snapshotDirs()).toEqual(['1', '2']);
    await s.cleanup();
    expect(snapshotDirs()).toEqual(['2']);
    expect((await s.stat('b')).kind).toBe('active');
  });

  it('deletes the directory inside remove() with syncRemove', async () => {
    const s = await snapshotter({ syncRemove: true });
    await s.prepare('a', '');
    await s.remove('a');
    expect(snapshotDirs()).toEqual([]);
  });

  it('does not reuse the id of a removed snapshot whose directory waits for cleanup', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.remove('a');
    expect(await s.prepare('a', '')).toEqual([{ type: 'bind', source: fsOf(2), options: ['rw', 'rbind'] }]);
  });

  it('updates labels by field path, and only labels', async () => {
    const s = await snapshotter();
    await s.prepare('a', '', { labels: { keep: '1', drop: '2' } });
    const created = await s.stat('a');
    await new Promise((r) => setTimeout(r, 5));
    let info = await s.update({ name: 'a', labels: { add: '3', keep: 'ignored' } }, ['labels.add', 'labels.drop']);
    expect(info.labels).toEqual({ keep: '1', add: '3' });
    expect(info.updatedAt.getTime()).toBeGreaterThan(created.updatedAt.getTime());
    expect(info.createdAt).toEqual(created.createdAt);
    info = await s.update({ name: 'a', labels: { only: 'this' } });
    expect(info.labels).toEqual({ only: 'this' });
    expect((await s.stat('a')).labels).toEqual({ only: 'this' });
    expect(await kindOf(s.update({ name: 'a', labels: {} }, ['parent']))).toBe('invalid-argument');
    expect(await kindOf(s.update({ name: 'missing', labels: {} }))).toBe('not-found');
  });

  it('walks with containerd filters', async () => {
    const s = await snapshotter();
    await s.prepare('a', '', { labels: { 'com.example.role': 'base' } });
    await s.commit('base', 'a', { labels: { 'com.example.role': 'base' } });
    await s.prepare('b', 'base');
    await s.view('v', 'base', { labels: { 'com.example.role': 'view' } });
    const names = async (filters?: string[]) => (await all(s, filters)).map((i) => i.name);
    expect(await names()).toEqual(['base', 'b', 'v']);
    expect(await names(['kind==committed'])).toEqual(['base']);
    expect(await names(['parent==base'])).toEqual(['b', 'v']);
    expect(await names(['labels."com.example.role"==view', 'kind==active'])).toEqual(['b', 'v']);
    expect(await names(['name~=^b'])).toEqual(['base', 'b']);
    expect(await kindOf(names(['name~=(']))).toBe('invalid-argument');
  });

  it('adds the upper dir label with upperdirLabel and never stores it', async () => {
    const s = await snapshotter({ upperdirLabel: true });
    await s.prepare('a', '', { labels: { x: 'y' } });
    const info = await s.stat('a');
    expect(info.labels).toEqual({ x: 'y', [UPPERDIR_LABEL]: fsOf(1) });
    await s.update(info);
    await s.close();
    const plain = await snapshotter();
    expect((await plain.stat('a')).labels).toEqual({ x: 'y' });
  });

  it('keeps everything across a restart and refuses calls once closed', async () => {
    const s = await snapshotter();
    await s.prepare('a', '', { labels: { l: 'v' } });
    await s.commit('base', 'a');
    await s.prepare('b', 'base');
    const before = await all(s);
    const mounts = await s.mounts('b');
    await s.close();
    expect(await kindOf(s.stat('b'))).toBe('failed-precondition');

    const again = await snapshotter();
    expect(await all(again)).toEqual(before);
    expect(await again.mounts('b')).toEqual(mounts);
  });
});

describe('OverlaySnapshotter crash safety', () => {
  it('deletes leftovers of interrupted work on open and shows none of them', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    await s.commit('base', 'a');
    await s.prepare('b', 'base');
    await s.close();

    // Killed between building a temp dir and its transaction:
    mkdirSync(join(root, 'snapshots', 'new-123abc', 'fs'), { recursive: true });
    // killed after the rename, before the commit (or removed, not yet cleaned up):
    mkdirSync(join(root, 'snapshots', '7', 'fs'), { recursive: true });
    writeFileSync(join(root, 'snapshots', '7', 'fs', 'file'), 'x');
    // killed between a commit's transaction and deleting its work dir:
    mkdirSync(workOf(1));
    // not ours: left alone.
    writeFileSync(join(root, 'snapshots', 'README'), 'hands off');

    const again = await snapshotter();
    expect(snapshotDirs()).toEqual(['1', '2', 'README']);
    expect(readdirSync(join(root, 'snapshots', '1'))).toEqual(['fs']);
    expect(readdirSync(join(root, 'snapshots', '2')).sort()).toEqual(['fs', 'work']);
    expect((await all(again)).map((i) => [i.name, i.kind])).toEqual([
      ['base', 'committed'],
      ['b', 'active'],
    ]);
  });

  it('leaves nothing visible when publishing a snapshot fails', async () => {
    const s = await snapshotter();
    await s.prepare('a', '');
    // The directory the next snapshot would be renamed to exists already.
    mkdirSync(join(root, 'snapshots', '2', 'fs'), { recursive: true });
    expect(await kindOf(s.prepare('b', ''))).toBe('internal');
    expect(await kindOf(s.stat('b'))).toBe('not-found');
    expect((await all(s)).map((i) => i.name)).toEqual(['a']);
    expect(snapshotDirs()).toEqual(['1', '2']);
    await s.cleanup();
    expect(snapshotDirs()).toEqual(['1']);
    expect(await s.prepare('b', '')).toEqual([{ type: 'bind', source: fsOf(2), options: ['rw', 'rbind'] }]);
  });

  it('cleanup() leaves the temp dir of a prepare under way alone', async () => {
    const s = await snapshotter();
    const preparing = s.prepare('a', '');
    // Wait for the prepare's temp dir, then clean up while it is still building.
    while (!snapshotDirs().some((name) => name.startsWith('new-'))) await new Promise((r) => setImmediate(r));
    await s.cleanup();
    await expect(preparing).resolves.toHaveLength(1);
    expect(snapshotDirs()).toEqual(['1']);
  });
});
