import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorKind, type ErrorKind } from '../errdefs';
import type { Labels } from '../metadata/types';
import type { Mount, SnapshotInfo, Snapshotter } from './types';

/** A fresh, empty snapshotter for one test, its root directory, and how to dispose of it. */
export interface SnapshotterSuiteFixture {
  snapshotter: Snapshotter;
  root: string;
  /** Called after `close()`; removes the root. */
  cleanup(): Promise<void>;
}

export type SnapshotterFactory = () => Promise<SnapshotterSuiteFixture>;

/**
 * How the suite mounts what snapshotters return. Core knows nothing of Linux,
 * so spec files pass @berth/sys (its mountAll/unmountAll fit as they are).
 */
export interface SnapshotMounter {
  mountAll(mounts: readonly Mount[], target: string): Promise<void>;
  unmountAll(target: string): Promise<void>;
}

/** Extended attribute access (@berth/sys's lsetxattr/lgetxattr fit as they are). */
export interface XattrAccess {
  lsetxattr(path: string, name: string, value: Buffer): void;
  lgetxattr(path: string, name: string): Buffer;
}

export interface SnapshotterSuiteOptions {
  mounter: SnapshotMounter;
  /** When given, the suite also checks that xattrs (user.* and trusted.*) reach children. */
  xattrs?: XattrAccess;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * The conformance suite every Snapshotter runs from its own spec file, after
 * containerd's snapshots/testsuite:
 *
 *   snapshotterSuite('native', async () => ({ snapshotter, root, cleanup }), { mounter: sys });
 *
 * Every returned mount is really mounted and read back, so the suite needs root
 * and skips itself otherwise. Each test gets its own snapshotter from `factory`;
 * mounts left by a failing test are unmounted before the snapshotter is closed.
 * Uses jest's globals, so only call it from a spec file.
 */
export function snapshotterSuite(name: string, factory: SnapshotterFactory, options: SnapshotterSuiteOptions): void {
  const describeAsRoot: jest.Describe = isRoot ? describe : describe.skip;
  const { mounter } = options;

  describeAsRoot(`Snapshotter conformance: ${name}`, () => {
    let fixture: SnapshotterSuiteFixture | undefined;
    let work = '';
    const mounted = new Set<string>();
    let mountPointSeq = 0;

    const sn = (): Snapshotter => {
      if (!fixture) throw new Error('snapshotter used outside a test');
      return fixture.snapshotter;
    };

    /** Mounts `mounts` on a fresh directory and returns it. */
    async function mountAt(mounts: Mount[], label = 'mnt'): Promise<string> {
      expect(mounts.length).toBeGreaterThan(0);
      const target = join(work, `${label}-${++mountPointSeq}`);
      mkdirSync(target);
      await mounter.mountAll(mounts, target);
      mounted.add(target);
      return target;
    }

    async function unmount(target: string): Promise<void> {
      await mounter.unmountAll(target);
      mounted.delete(target);
    }

    /** Mounts, runs `fn` on the mount point, and always unmounts. */
    async function withMounted<T>(mounts: Mount[], fn: (dir: string) => T | Promise<T>): Promise<T> {
      const target = await mountAt(mounts);
      try {
        return await fn(target);
      } finally {
        await unmount(target);
      }
    }

    /** prepare(key, parent) → mount → `fill` → unmount → commit(name). */
    async function commitLayer(
      name: string,
      parent: string,
      fill: (dir: string) => void | Promise<void>,
      labels?: Labels,
    ): Promise<void> {
      const key = `${name}-active`;
      await withMounted(await sn().prepare(key, parent), fill);
      await sn().commit(name, key, labels ? { labels } : undefined);
    }

    /** What a read-only view on `parent` shows, as `fn` reads it. */
    async function inView<T>(parent: string, fn: (dir: string) => T | Promise<T>): Promise<T> {
      const key = `view-${++mountPointSeq}`;
      try {
        return await withMounted(await sn().view(key, parent), fn);
      } finally {
        await sn().remove(key);
      }
    }

    beforeEach(async () => {
      work = mkdtempSync(join(tmpdir(), `berth-snapshotter-suite-${name}-`));
      fixture = await factory();
    });

    afterEach(async () => {
      const done = fixture;
      fixture = undefined;
      try {
        for (const target of [...mounted].reverse()) await unmount(target);
      } finally {
        try {
          await done?.snapshotter.close();
        } finally {
          await done?.cleanup();
          rmSync(work, { recursive: true, force: true });
        }
      }
    });

    describe('lifecycle', () => {
      it('prepares, commits, builds a child on it and views the result read-only', async () => {
        const base = await sn().prepare('base-active', '');
        await withMounted(base, (dir) => {
          writeFileSync(join(dir, 'foo'), 'foo\n', { mode: 0o777 });
          mkdirSync(join(dir, 'a/b/c'), { recursive: true });
        });
        await sn().commit('base', 'base-active');
        const baseInfo = await sn().stat('base');
        expect(baseInfo).toMatchObject({ name: 'base', kind: 'committed', parent: '' });
        await expectKind(() => sn().stat('base-active'), 'not-found');

        await withMounted(await sn().prepare('next-active', 'base'), (dir) => {
          expect(readFileSync(join(dir, 'foo'), 'utf8')).toBe('foo\n');
          expect(statSync(join(dir, 'a/b/c')).isDirectory()).toBe(true);
          writeFileSync(join(dir, 'bar'), 'bar\n');
          writeFileSync(join(dir, 'foo'), 'bar\n');
          rmSync(join(dir, 'a/b'), { recursive: true });
        });
        expect(await sn().stat('next-active')).toMatchObject({ kind: 'active', parent: 'base' });
        await sn().commit('next', 'next-active');
        const nextInfo = await sn().stat('next');
        expect(nextInfo).toMatchObject({ name: 'next', kind: 'committed', parent: 'base' });
        await expectKind(() => sn().stat('next-active'), 'not-found');

        const walked = await collect(sn().walk());
        expect(sortByName(walked)).toEqual([baseInfo, nextInfo]);

        const view = await mountAt(await sn().view('top-view', 'next'));
        expect(readdirSync(view).sort()).toEqual(['a', 'bar', 'foo']);
        expect(readdirSync(join(view, 'a'))).toEqual([]);
        expect(readFileSync(join(view, 'foo'), 'utf8')).toBe('bar\n');
        expect(readFileSync(join(view, 'bar'), 'utf8')).toBe('bar\n');
        expect(() => writeFileSync(join(view, 'new'), 'x')).toThrow();
        expect(() => writeFileSync(join(view, 'foo'), 'x')).toThrow();
        await unmount(view);

        await sn().remove('top-view');
        await expectKind(() => sn().remove('base'), 'failed-precondition');
        await sn().remove('next');
        await sn().remove('base');
        expect(await collect(sn().walk())).toEqual([]);
      });

      it('gives an active snapshot with no parent an empty, writable tree', async () => {
        const mounts = await sn().prepare('empty', '');
        await withMounted(mounts, (dir) => {
          expect(readdirSync(dir)).toEqual([]);
          writeFileSync(join(dir, 'f'), 'x');
        });
        // Contents outlive the mount.
        await withMounted(await sn().mounts('empty'), (dir) => {
          expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('x');
        });
      });

      it('answers mounts() for actives and views like prepare/view did', async () => {
        const prepared = await sn().prepare('a', '');
        expect(await sn().mounts('a')).toEqual(prepared);
        await sn().commit('c', 'a');
        const viewed = await sn().view('v', 'c');
        expect(await sn().mounts('v')).toEqual(viewed);
        await expectKind(() => sn().mounts('c'), 'failed-precondition');
        await expectKind(() => sn().mounts('missing'), 'not-found');
      });

      it('keeps an active snapshot isolated from its parent and siblings', async () => {
        await commitLayer('base', '', (dir) => writeFileSync(join(dir, 'shared'), 'base'));
        const one = await mountAt(await sn().prepare('one', 'base'));
        const two = await mountAt(await sn().prepare('two', 'base'));
        writeFileSync(join(one, 'shared'), 'one');
        writeFileSync(join(one, 'only-one'), '');
        expect(readFileSync(join(two, 'shared'), 'utf8')).toBe('base');
        expect(existsSync(join(two, 'only-one'))).toBe(false);
        await inView('base', (dir) => {
          expect(readFileSync(join(dir, 'shared'), 'utf8')).toBe('base');
          expect(readdirSync(dir)).toEqual(['shared']);
        });
      });

      it('mounts a view with no parent as an empty read-only tree', async () => {
        await withMounted(await sn().view('empty-view', ''), (dir) => {
          expect(readdirSync(dir)).toEqual([]);
          expect(() => writeFileSync(join(dir, 'x'), 'x')).toThrow();
        });
        expect(await sn().stat('empty-view')).toMatchObject({ kind: 'view', parent: '' });
      });

      it('keeps a view read-only even when mounted directly', async () => {
        await commitLayer('c', '', (dir) => writeFileSync(join(dir, 'file'), 'content'));
        const view = await mountAt(await sn().view('v', 'c'));
        expect(readFileSync(join(view, 'file'), 'utf8')).toBe('content');
        expect(() => writeFileSync(join(view, 'testfile'), 'x')).toThrow();
        expect(() => rmSync(join(view, 'file'))).toThrow();
      });
    });

    describe('stat', () => {
      it('reports kind, name, parent, labels and times', async () => {
        const before = Date.now();
        await sn().prepare('a', '', { labels: { l: 'v' } });
        const after = Date.now();
        const info = await sn().stat('a');
        expect(info).toMatchObject({ name: 'a', kind: 'active', parent: '', labels: { l: 'v' } });
        expect(info.createdAt.getTime()).toBeGreaterThanOrEqual(before - 1);
        expect(info.createdAt.getTime()).toBeLessThanOrEqual(after + 1);
        expect(info.updatedAt.getTime()).toBe(info.createdAt.getTime());
        await expectKind(() => sn().stat('nope'), 'not-found');
      });

      it('records the parent chain (A <- B <- C)', async () => {
        await commitLayer('A', '', (dir) => writeFileSync(join(dir, 'foo'), 'foo'));
        await commitLayer('B', 'A', (dir) => writeFileSync(join(dir, 'foo'), 'foo bar'));
        await sn().prepare('C', 'B');
        expect((await sn().stat('C')).parent).toBe('B');
        expect((await sn().stat('B')).parent).toBe('A');
        expect((await sn().stat('A')).parent).toBe('');
      });

      it('lets commit set the labels and times of the committed snapshot, not inherit them', async () => {
        await sn().prepare('a', '', { labels: { from: 'prepare' } });
        const active = await sn().stat('a');
        await sleep(5);
        await sn().commit('c', 'a', { labels: { from: 'commit' } });
        const committed = await sn().stat('c');
        expect(committed.labels).toEqual({ from: 'commit' });
        expect(committed.createdAt.getTime()).toBeGreaterThan(active.createdAt.getTime());
        expect(committed.updatedAt.getTime()).toBe(committed.createdAt.getTime());
        await sn().prepare('b', 'c');
        await sn().commit('d', 'b');
        expect((await sn().stat('d')).labels).toEqual({});
      });
    });

    describe('keys and names', () => {
      it('refuses a second prepare or view with the same key', async () => {
        await commitLayer('base', '', () => undefined);
        await sn().prepare('k', 'base');
        await expectKind(() => sn().prepare('k', 'base'), 'already-exists');
        await expectKind(() => sn().view('k', 'base'), 'already-exists');
        await sn().view('v', 'base');
        await expectKind(() => sn().view('v', 'base'), 'already-exists');
        await expectKind(() => sn().prepare('v', ''), 'already-exists');
        expect((await sn().stat('k')).kind).toBe('active');
        expect((await sn().stat('v')).kind).toBe('view');
      });

      it('shares one space between keys and committed names', async () => {
        await commitLayer('taken', '', () => undefined);
        await expectKind(() => sn().prepare('taken', ''), 'already-exists');
        await expectKind(() => sn().view('taken', ''), 'already-exists');
        await sn().prepare('p1', '');
        await sn().prepare('p2', '');
        await expectKind(() => sn().commit('p2', 'p1'), 'already-exists');
        await expectKind(() => sn().commit('taken', 'p1'), 'already-exists');
        // A failed commit leaves the active snapshot as it was.
        expect((await sn().stat('p1')).kind).toBe('active');
        expect((await sn().stat('taken')).kind).toBe('committed');
      });

      it('accepts keys with slashes and spaces, as the metadata layer and unpack produce', async () => {
        const key = 'ns/12/extract-123456 sha256:0123abcd';
        await withMounted(await sn().prepare(key, ''), (dir) => writeFileSync(join(dir, 'f'), ''));
        await sn().commit('ns/13/sha256:0123abcd', key);
        expect((await sn().stat('ns/13/sha256:0123abcd')).kind).toBe('committed');
      });
    });

    describe('parents', () => {
      it('answers NotFound for a missing parent', async () => {
        await expectKind(() => sn().prepare('a', 'missing'), 'not-found');
        await expectKind(() => sn().view('v', 'missing'), 'not-found');
        await expectKind(() => sn().stat('a'), 'not-found');
      });

      it('accepts only committed snapshots as parents (InvalidArgument, as containerd)', async () => {
        await sn().prepare('active', '');
        await sn().view('view', '');
        await expectKind(() => sn().prepare('a', 'active'), 'invalid-argument');
        await expectKind(() => sn().view('b', 'active'), 'invalid-argument');
        await expectKind(() => sn().prepare('c', 'view'), 'invalid-argument');
        expect(await names(sn().walk())).toEqual(['active', 'view']);
      });
    });

    describe('commit', () => {
      it('commits only active snapshots', async () => {
        await commitLayer('c', '', () => undefined);
        await sn().view('v', 'c');
        await expectKind(() => sn().commit('from-view', 'v'), 'failed-precondition');
        await expectKind(() => sn().commit('from-committed', 'c'), 'failed-precondition');
        await expectKind(() => sn().commit('from-missing', 'missing'), 'not-found');
        expect(await names(sn().walk())).toEqual(['c', 'v']);
      });

      it('commits a child whose view shows both layers', async () => {
        await commitLayer('base', '', (dir) => writeFileSync(join(dir, 'base'), 'b'));
        await withMounted(await sn().prepare('child', 'base'), (dir) => writeFileSync(join(dir, 'child'), 'c'));
        await sn().commit('child-committed', 'child');
        await inView('child-committed', (dir) => expect(readdirSync(dir).sort()).toEqual(['base', 'child']));
      });
    });

    describe('remove', () => {
      it('refuses to remove a snapshot with children', async () => {
        await commitLayer('base', '', () => undefined);
        await commitLayer('inter', 'base', () => undefined);
        await sn().prepare('top', 'inter');
        await sn().view('v', 'base');
        await expectKind(() => sn().remove('inter'), 'failed-precondition');
        await expectKind(() => sn().remove('base'), 'failed-precondition');
        await sn().remove('top');
        await sn().remove('inter');
        await expectKind(() => sn().remove('base'), 'failed-precondition');
        await sn().remove('v');
        await sn().remove('base');
      });

      it('makes a removed snapshot NotFound and frees its key', async () => {
        await expectKind(() => sn().remove('missing'), 'not-found');
        await commitLayer('committed-1', '', () => undefined);
        await sn().prepare('reuse-1', 'committed-1');
        await sn().remove('reuse-1');
        await expectKind(() => sn().stat('reuse-1'), 'not-found');
        await expectKind(() => sn().mounts('reuse-1'), 'not-found');
        await sn().view('reuse-1', 'committed-1');
        await sn().remove('reuse-1');
        await withMounted(await sn().prepare('reuse-1', ''), (dir) => {
          // A reused key starts from its own parent, not from the removed snapshot.
          expect(readdirSync(dir)).toEqual([]);
        });
        await sn().remove('committed-1');
        await sn().commit('committed-1', 'reuse-1');
        await expectKind(() => sn().remove('reuse-1'), 'not-found');
        expect(await names(sn().walk())).toEqual(['committed-1']);
      });
    });

    describe('update', () => {
      it('updates labels by containerd fieldpaths on every kind', async () => {
        const t1 = Date.now();
        await baseTestSnapshots(sn());
        const t2 = Date.now();
        const cases: [string, SnapshotInfo['kind'], string][] = [
          ['c1', 'committed', ''],
          ['c2', 'committed', 'c1'],
          ['a1', 'active', 'c2'],
          ['a2', 'active', ''],
          ['v1', 'view', 'c2'],
          ['v2', 'view', ''],
        ];
        for (const [key, kind, parent] of cases) {
          const st = await sn().stat(key);
          expect(st).toMatchObject({ name: key, kind, parent });
          expect(st.createdAt.getTime()).toBeGreaterThanOrEqual(t1 - 1);
          expect(st.createdAt.getTime()).toBeLessThanOrEqual(t2 + 1);
          expect(st.updatedAt.getTime()).toBe(st.createdAt.getTime());

          const root = { 'containerd.io/gc.root': new Date().toISOString() };
          let expected: Labels = { l1: 'v1', l2: 'v2', l3: 'v3', ...root };
          const u1 = Date.now();
          let updated = await sn().update({ name: key, labels: expected });
          const u2 = Date.now();
          expect(updated).toMatchObject({ name: key, kind, parent, labels: expected });
          expect(updated.createdAt.getTime()).toBe(st.createdAt.getTime());
          expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(u1 - 1);
          expect(updated.updatedAt.getTime()).toBeLessThanOrEqual(u2 + 1);

          expected = { l1: 'updated', l3: 'v3', ...root };
          updated = await sn().update({ name: key, labels: { l1: 'updated', l4: 'v4' } }, ['labels.l1', 'labels.l2']);
          expect(updated.labels).toEqual(expected);

          expected = { l4: 'v4', ...root };
          updated = await sn().update({ name: key, labels: expected }, ['labels']);
          expect(updated.labels).toEqual(expected);
          expect((await sn().stat(key)).labels).toEqual(expected);

          await expectKind(() => sn().update({ name: key, labels: {} }, ['parent']), 'invalid-argument');
          await expectKind(() => sn().update({ name: key, labels: {} }, ['name']), 'invalid-argument');
          expect((await sn().stat(key)).labels).toEqual(expected);
        }
        await expectKind(() => sn().update({ name: 'missing', labels: { a: 'b' } }), 'not-found');
      });

      it('keeps label keys with dots and slashes distinct', async () => {
        await sn().prepare('a', '');
        const labels = { 'containerd.io/snapshot/x': '1', 'containerd.io': '2', 'a.b.c': '3' };
        await sn().update({ name: 'a', labels });
        await sn().update({ name: 'a', labels: { 'containerd.io': '' } }, ['labels.containerd.io']);
        expect((await sn().stat('a')).labels).toEqual({ 'containerd.io/snapshot/x': '1', 'a.b.c': '3' });
      });
    });

    describe('walk', () => {
      it('walks everything, or what any filter matches', async () => {
        await baseTestSnapshots(sn());
        await sn().update({ name: 'a1', labels: { x: 'y', 'containerd.io/snapshot.ref': 'sha256:abc' } });
        await sn().update({ name: 'c1', labels: { x: 'z' } });

        expect(await names(sn().walk())).toEqual(['a1', 'a2', 'c1', 'c2', 'v1', 'v2']);
        expect(await names(sn().walk([]))).toEqual(['a1', 'a2', 'c1', 'c2', 'v1', 'v2']);
        expect(await names(sn().walk(['kind==committed']))).toEqual(['c1', 'c2']);
        expect(await names(sn().walk(['kind==view']))).toEqual(['v1', 'v2']);
        expect(await names(sn().walk(['labels."x"==y']))).toEqual(['a1']);
        expect(await names(sn().walk(['labels.x']))).toEqual(['a1', 'c1']);
        expect(await names(sn().walk(['labels."containerd.io/snapshot.ref"==sha256:abc']))).toEqual(['a1']);
        expect(await names(sn().walk(['parent==c2']))).toEqual(['a1', 'v1']);
        expect(await names(sn().walk(['parent==c2,kind==active']))).toEqual(['a1']);
        expect(await names(sn().walk(['name==a2', 'name==v2']))).toEqual(['a2', 'v2']);
        expect(await names(sn().walk(['name~=^c']))).toEqual(['c1', 'c2']);
        expect(await names(sn().walk(['kind==nothing']))).toEqual([]);
        await expectKind(() => collect(sn().walk(['kind=='])), 'invalid-argument');
      });

      it('yields what stat returns', async () => {
        await baseTestSnapshots(sn());
        for (const info of await collect(sn().walk())) expect(await sn().stat(info.name)).toEqual(info);
      });
    });

    describe('usage', () => {
      it('grows as an active snapshot is written and is recorded at commit', async () => {
        const mounts = await sn().prepare('a', '');
        const empty = await sn().usage('a');
        const oneMiB = 1024 * 1024;
        await withMounted(mounts, (dir) => {
          writeFileSync(join(dir, 'big'), randomBytes(oneMiB));
          mkdirSync(join(dir, 'dir'));
        });
        const written = await sn().usage('a');
        expect(written.size).toBeGreaterThanOrEqual(empty.size + oneMiB);
        expect(written.inodes).toBeGreaterThanOrEqual(empty.inodes + 2);
        await sn().commit('c', 'a');
        const committed = await sn().usage('c');
        expect(committed.size).toBeGreaterThanOrEqual(oneMiB);
        expect(committed.inodes).toBeGreaterThanOrEqual(2);
        await expectKind(() => sn().usage('missing'), 'not-found');
      });

      it('reports usage for views', async () => {
        await commitLayer('c', '', (dir) => writeFileSync(join(dir, 'f'), 'x'));
        await sn().view('v', 'c');
        const usage = await sn().usage('v');
        expect(usage.size).toBeGreaterThanOrEqual(0);
        expect(usage.inodes).toBeGreaterThanOrEqual(0);
      });
    });

    describe('file system semantics across layers', () => {
      it('hides files deleted in a child (whiteouts)', async () => {
        await commitLayer('l1', '', (dir) => {
          writeFileSync(join(dir, 'foo'), 'foo\n');
          writeFileSync(join(dir, 'foobar'), 'foobar\n');
        });
        await commitLayer('l2', 'l1', (dir) => rmSync(join(dir, 'foobar')));
        await commitLayer('l3', 'l2', () => undefined);
        await inView('l1', (dir) => expect(readdirSync(dir).sort()).toEqual(['foo', 'foobar']));
        await inView('l2', (dir) => expect(readdirSync(dir)).toEqual(['foo']));
        await inView('l3', (dir) => {
          expect(readdirSync(dir)).toEqual(['foo']);
          expect(existsSync(join(dir, 'foobar'))).toBe(false);
        });
      });

      it('hides a directory removed in a child, and only shows the new contents of one recreated (opaque)', async () => {
        await commitLayer('l1', '', (dir) => {
          mkdirSync(join(dir, 'gone/deep'), { recursive: true });
          writeFileSync(join(dir, 'gone/deep/f'), '');
          mkdirSync(join(dir, 'again'));
          writeFileSync(join(dir, 'again/old'), 'old');
        });
        await commitLayer('l2', 'l1', (dir) => {
          rmSync(join(dir, 'gone'), { recursive: true });
          rmSync(join(dir, 'again'), { recursive: true });
          mkdirSync(join(dir, 'again'));
          writeFileSync(join(dir, 'again/new'), 'new');
        });
        await inView('l2', (dir) => {
          expect(readdirSync(dir)).toEqual(['again']);
          expect(readdirSync(join(dir, 'again'))).toEqual(['new']);
        });
      });

      it('moves and renames files from a lower layer', async () => {
        await commitLayer('l1', '', (dir) => {
          mkdirSync(join(dir, 'dir1'), { mode: 0o700 });
          writeFileSync(join(dir, 'dir1/f1'), 'Hello', { mode: 0o644 });
          mkdirSync(join(dir, 'dir2'), { mode: 0o700 });
          writeFileSync(join(dir, 'dir2/f2'), '...', { mode: 0o644 });
        });
        await commitLayer('l2', 'l1', (dir) => {
          mkdirSync(join(dir, 'dir3'), { mode: 0o700 });
          renameSync(join(dir, 'dir1/f1'), join(dir, 'dir3/f1'));
          rmSync(join(dir, 'dir1'), { recursive: true });
          linkSync(join(dir, 'dir2/f2'), join(dir, 'dir3/f2'));
          rmSync(join(dir, 'dir2/f2'));
        });
        await inView('l2', (dir) => {
          expect(readdirSync(dir).sort()).toEqual(['dir2', 'dir3']);
          expect(readdirSync(join(dir, 'dir2'))).toEqual([]);
          expect(readFileSync(join(dir, 'dir3/f1'), 'utf8')).toBe('Hello');
          expect(readFileSync(join(dir, 'dir3/f2'), 'utf8')).toBe('...');
          expect(statSync(join(dir, 'dir3')).mode & 0o7777).toBe(0o700);
        });
      });

      it('carries modes, owners, times, symlinks, hardlinks and xattrs from parent to child', async () => {
        const mtime = new Date('2001-02-03T04:05:06Z');
        const atime = new Date('2002-03-04T05:06:07Z');
        const { xattrs } = options;
        await commitLayer('parent', '', (dir) => {
          writeFileSync(join(dir, 'setuid'), '#!/bin/sh\n');
          chmodSync(join(dir, 'setuid'), 0o4755);
          mkdirSync(join(dir, 'sticky'));
          chmodSync(join(dir, 'sticky'), 0o1777);
          writeFileSync(join(dir, 'owned'), 'owned');
          chownSync(join(dir, 'owned'), 1234, 5678);
          chmodSync(join(dir, 'owned'), 0o640);
          mkdirSync(join(dir, 'owned-dir'));
          chownSync(join(dir, 'owned-dir'), 4321, 8765);
          symlinkSync('owned', join(dir, 'link'));
          lchownSync(join(dir, 'link'), 111, 222);
          symlinkSync('/does/not/exist', join(dir, 'dangling'));
          writeFileSync(join(dir, 'hard1'), 'same inode');
          linkSync(join(dir, 'hard1'), join(dir, 'hard2'));
          writeFileSync(join(dir, 'timed'), 't');
          utimesSync(join(dir, 'timed'), atime, mtime);
          lutimesSync(join(dir, 'link'), atime, mtime);
          if (xattrs) {
            xattrs.lsetxattr(join(dir, 'owned'), 'user.berth', Buffer.from('user value'));
            xattrs.lsetxattr(join(dir, 'owned'), 'trusted.berth', Buffer.from([0, 1, 2, 3]));
            xattrs.lsetxattr(join(dir, 'owned-dir'), 'trusted.dir', Buffer.from('d'));
          }
          // Last, so writing the entries above does not move it.
          utimesSync(join(dir, 'sticky'), atime, mtime);
          // containerd gives a child's root the owner of its parent's root.
          chownSync(dir, 2000, 3000);
        });
        const check = (dir: string): void => {
          const root = lstatSync(dir);
          expect([root.uid, root.gid]).toEqual([2000, 3000]);
          expect(lstatSync(join(dir, 'setuid')).mode & 0o7777).toBe(0o4755);
          expect(lstatSync(join(dir, 'sticky')).mode & 0o7777).toBe(0o1777);
          const owned = lstatSync(join(dir, 'owned'));
          expect([owned.uid, owned.gid, owned.mode & 0o7777]).toEqual([1234, 5678, 0o640]);
          const ownedDir = lstatSync(join(dir, 'owned-dir'));
          expect([ownedDir.uid, ownedDir.gid]).toEqual([4321, 8765]);
          const link = lstatSync(join(dir, 'link'));
          expect(link.isSymbolicLink()).toBe(true);
          expect([link.uid, link.gid]).toEqual([111, 222]);
          expect(link.mtime.getTime()).toBe(mtime.getTime());
          expect(readlinkSync(join(dir, 'link'))).toBe('owned');
          expect(readFileSync(join(dir, 'link'), 'utf8')).toBe('owned');
          expect(readlinkSync(join(dir, 'dangling'))).toBe('/does/not/exist');
          const [h1, h2] = [lstatSync(join(dir, 'hard1')), lstatSync(join(dir, 'hard2'))];
          expect(h2.ino).toBe(h1.ino);
          expect(h1.nlink).toBe(2);
          expect(lstatSync(join(dir, 'timed')).mtime.getTime()).toBe(mtime.getTime());
          expect(lstatSync(join(dir, 'sticky')).mtime.getTime()).toBe(mtime.getTime());
          if (xattrs) {
            expect(xattrs.lgetxattr(join(dir, 'owned'), 'user.berth').toString()).toBe('user value');
            expect(xattrs.lgetxattr(join(dir, 'owned'), 'trusted.berth')).toEqual(Buffer.from([0, 1, 2, 3]));
            expect(xattrs.lgetxattr(join(dir, 'owned-dir'), 'trusted.dir').toString()).toBe('d');
          }
        };
        await withMounted(await sn().prepare('child', 'parent'), check);
        await inView('parent', check);
      });

      it('builds a chain of 20 layers', async () => {
        let parent = '';
        for (let i = 0; i < 20; i++) {
          const name = `layer-${i}`;
          await commitLayer(name, parent, (dir) => {
            writeFileSync(join(dir, `file-${i}`), String(i));
            writeFileSync(join(dir, 'top'), String(i));
            if (i === 10) rmSync(join(dir, 'file-5'));
          });
          parent = name;
        }
        await withMounted(await sn().prepare('container', 'layer-19'), (dir) => {
          const expected = Array.from({ length: 20 }, (_, i) => `file-${i}`).filter((f) => f !== 'file-5');
          expect(readdirSync(dir).sort()).toEqual([...expected, 'top'].sort());
          expect(readFileSync(join(dir, 'top'), 'utf8')).toBe('19');
          expect(readFileSync(join(dir, 'file-0'), 'utf8')).toBe('0');
        });
        let depth = 0;
        for (let at = (await sn().stat('container')).parent; at; at = (await sn().stat(at)).parent) depth++;
        expect(depth).toBe(20);
      });
    });

    describe('concurrency', () => {
      it('prepares many keys at once, each isolated', async () => {
        await commitLayer('base', '', (dir) => writeFileSync(join(dir, 'base'), 'b'));
        const keys = Array.from({ length: 12 }, (_, i) => `concurrent-${i}`);
        const allMounts = await Promise.all(keys.map((key, i) => sn().prepare(key, i % 2 ? 'base' : '')));
        const dirs = await Promise.all(allMounts.map((mounts) => mountAt(mounts)));
        dirs.forEach((dir, i) => writeFileSync(join(dir, 'mine'), keys[i]));
        dirs.forEach((dir, i) => {
          expect(readFileSync(join(dir, 'mine'), 'utf8')).toBe(keys[i]);
          expect(existsSync(join(dir, 'base'))).toBe(i % 2 === 1);
        });
        expect(await names(sn().walk(['kind==active']))).toEqual([...keys].sort());
      });

      it('lets exactly one of several racing prepares of the same key win', async () => {
        await commitLayer('base', '', () => undefined);
        const results = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) => sn().prepare('contested', i % 2 ? 'base' : '')),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(errorKind(r.reason)).toBe('already-exists');
        }
        expect(await names(sn().walk())).toEqual(['base', 'contested']);
      });

      it('commits and removes concurrently without losing track', async () => {
        await Promise.all(Array.from({ length: 8 }, (_, i) => sn().prepare(`a-${i}`, '')));
        await Promise.all(Array.from({ length: 8 }, (_, i) => sn().commit(`c-${i}`, `a-${i}`)));
        await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? sn().remove(`c-${i}`) : Promise.resolve())));
        expect(await names(sn().walk())).toEqual(['c-0', 'c-2', 'c-4', 'c-6']);
      });
    });

    describe('close', () => {
      it('can be closed twice', async () => {
        await sn().prepare('p', '');
        await sn().commit('c', 'p');
        await sn().remove('c');
        await sn().close();
        await sn().close();
      });
    });
  });
}

/**
 * containerd's baseTestSnapshots: c1 committed; c2 committed on c1; a1 active
 * on c2; a2 active; v1 view on c2; v2 view.
 */
async function baseTestSnapshots(sn: Snapshotter): Promise<void> {
  await sn.prepare('c1-a', '');
  await sn.commit('c1', 'c1-a');
  await sn.prepare('c2-a', 'c1');
  await sn.commit('c2', 'c2-a');
  await sn.prepare('a1', 'c2');
  await sn.prepare('a2', '');
  await sn.view('v1', 'c2');
  await sn.view('v2', '');
}

async function expectKind(fn: () => Promise<unknown>, kind: ErrorKind): Promise<Error> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error(`expected a ${kind} error, but the call succeeded`);
  if (errorKind(caught) !== kind) {
    throw new Error(`expected a ${kind} error, got ${errorKind(caught)}: ${(caught as Error)?.message ?? String(caught)}`);
  }
  return caught as Error;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function names(items: AsyncIterable<SnapshotInfo>): Promise<string[]> {
  return (await collect(items)).map((i) => i.name).sort();
}

function sortByName(infos: SnapshotInfo[]): SnapshotInfo[] {
  return [...infos].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
