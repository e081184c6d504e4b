import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorKind } from '../errdefs';
import { diskUsage, snapshotFilter, updatedLabels, type SnapshotInfo } from './index';

describe('updatedLabels', () => {
  const current = { a: '1', b: '2' };

  it('replaces all labels without fieldpaths or with `labels`', () => {
    expect(updatedLabels(current, { c: '3' })).toEqual({ c: '3' });
    expect(updatedLabels(current, { c: '3' }, ['labels'])).toEqual({ c: '3' });
  });

  it('sets, and removes when absent or empty, single labels by `labels.<key>`', () => {
    expect(updatedLabels(current, { a: 'x', c: 'ignored' }, ['labels.a', 'labels.b'])).toEqual({ a: 'x' });
    expect(updatedLabels(current, { b: '' }, ['labels.b'])).toEqual({ a: '1' });
    expect(updatedLabels(current, { 'com.example.k': 'v' }, ['labels.com.example.k'])).toEqual({
      ...current,
      'com.example.k': 'v',
    });
  });

  it('refuses other fieldpaths as InvalidArgument', () => {
    for (const path of ['parent', 'name', 'kind', 'labels.', 'label.a']) {
      let caught: unknown;
      try {
        updatedLabels(current, {}, [path]);
      } catch (err) {
        caught = err;
      }
      expect(errorKind(caught)).toBe('invalid-argument');
    }
  });

  it('does not modify its inputs', () => {
    const before = { ...current };
    updatedLabels(current, { a: '' }, ['labels.a']);
    expect(current).toEqual(before);
  });
});

describe('snapshotFilter', () => {
  const info = (name: string, kind: SnapshotInfo['kind'], parent: string, labels = {}): SnapshotInfo => ({
    name,
    kind,
    parent,
    labels,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  });
  const all = [
    info('c1', 'committed', ''),
    info('c2', 'committed', 'c1', { 'containerd.io/snapshot.ref': 'sha256:aa' }),
    info('a1', 'active', 'c2', { x: 'y' }),
    info('v1', 'view', 'c2'),
  ];
  const matching = (...filters: string[]) => all.filter(snapshotFilter(filters)).map((i) => i.name);

  it('matches kind, name, parent and labels, any filter of several', () => {
    expect(matching()).toEqual(['c1', 'c2', 'a1', 'v1']);
    expect(matching('kind==committed')).toEqual(['c1', 'c2']);
    expect(matching('parent==c2')).toEqual(['a1', 'v1']);
    expect(matching('labels."containerd.io/snapshot.ref"==sha256:aa')).toEqual(['c2']);
    expect(matching('labels.x==y,kind==active')).toEqual(['a1']);
    expect(matching('name==c1', 'name==v1')).toEqual(['c1', 'v1']);
    expect(matching('kind!=committed')).toEqual(['a1', 'v1']);
  });

  it('throws InvalidArgument for a malformed filter before matching', () => {
    let caught: unknown;
    try {
      snapshotFilter(['kind==']);
    } catch (err) {
      caught = err;
    }
    expect(errorKind(caught)).toBe('invalid-argument');
  });
});

describe('diskUsage', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-du-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('counts allocated blocks and inodes, hardlinks once, the root included', async () => {
    const empty = await diskUsage(dir);
    expect(empty.inodes).toBe(1);
    writeFileSync(join(dir, 'big'), Buffer.alloc(256 * 1024, 1));
    linkSync(join(dir, 'big'), join(dir, 'big-link'));
    mkdirSync(join(dir, 'sub'));
    symlinkSync('big', join(dir, 'sub', 'link'));
    const usage = await diskUsage(dir);
    expect(usage.inodes).toBe(4);
    expect(usage.size).toBeGreaterThanOrEqual(empty.size + 256 * 1024);
    expect(usage.size).toBeLessThan(empty.size + 2 * 256 * 1024);
  });

  it('counts what a sparse file occupies, not its length', async () => {
    const path = join(dir, 'sparse');
    writeFileSync(path, '');
    truncateSync(path, 64 * 1024 * 1024);
    expect((await diskUsage(dir)).size).toBeLessThan(1024 * 1024);
  });
});
