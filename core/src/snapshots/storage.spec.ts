import fs = require('node:fs');
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { errorKind } from '../errdefs';
import { InversifyContainer as Container } from '../plugin';
import { bindSnapshotter } from './register';
import { SnapshotMetaStore } from './storage';
import { Snapshotter } from './types';

// The store's semantics are covered through both raw snapshotters by the
// conformance suite; this covers what the suite cannot see.

let dir: string;
let stores: SnapshotMetaStore[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-snapshot-store-'));
  stores = [];
});
afterEach(() => {
  for (const s of stores) s.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(path = join(dir, 'metadata.db')): SnapshotMetaStore {
  const store = SnapshotMetaStore.open(path, { name: 'test snapshotter' });
  stores.push(store);
  return store;
}

/** `<dir>/snapshots/new-1`, built, to be published as `<dir>/snapshots/<id>`. */
function builtDirectory() {
  const snapshots = join(dir, 'snapshots');
  mkdirSync(join(snapshots, 'new-1'), { recursive: true });
  return { snapshots, from: join(snapshots, 'new-1'), to: (id: number) => join(snapshots, String(id)) };
}

function kindOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return errorKind(err);
  }
  return 'no error';
}

describe('SnapshotMetaStore schema', () => {
  it('opens a database the native snapshotter wrote with its own copy of the schema', () => {
    const path = join(dir, 'metadata.db');
    const old = new Database(path);
    old.exec(`
      CREATE TABLE snapshots (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        key          TEXT    NOT NULL UNIQUE CHECK (key <> ''),
        kind         TEXT    NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
        parent_id    INTEGER REFERENCES snapshots (id),
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        usage_size   INTEGER NOT NULL DEFAULT 0,
        usage_inodes INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      CREATE INDEX snapshots_by_parent ON snapshots (parent_id);
      CREATE TABLE snapshot_labels (
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        key         TEXT    NOT NULL CHECK (key <> ''),
        value       TEXT    NOT NULL CHECK (value <> ''),
        PRIMARY KEY (snapshot_id, key)
      ) STRICT, WITHOUT ROWID;
      INSERT INTO snapshots (key, kind, created_at, updated_at, usage_size, usage_inodes)
        VALUES ('c', 'committed', 1, 2, 4096, 3);
      INSERT INTO snapshot_labels VALUES (1, 'l', 'v');
      PRAGMA user_version = 1;
    `);
    old.close();

    const store = open(path);
    expect(store.getInfo('c')).toEqual({
      id: 1,
      info: {
        kind: 'committed',
        name: 'c',
        parent: '',
        labels: { l: 'v' },
        createdAt: new Date(1),
        updatedAt: new Date(2),
      },
      usage: { size: 4096, inodes: 3 },
    });
    expect(store.createSnapshot({ kind: 'active', key: 'a', parent: 'c' })).toEqual({
      id: 2,
      kind: 'active',
      key: 'a',
      parentIds: [1],
    });
  });

  it('refuses a database of a newer berth and leaves it untouched', () => {
    const path = join(dir, 'metadata.db');
    const future = new Database(path);
    future.pragma('user_version = 99');
    future.close();
    expect(() => SnapshotMetaStore.open(path)).toThrow(/has schema version 99, but this berth supports at most 2/);
    const after = new Database(path, { readonly: true });
    expect([after.pragma('user_version', { simple: true }), after.pragma('journal_mode', { simple: true })]).toEqual([
      99,
      'delete',
    ]);
    after.close();
  });

  it('keeps everything across close and reopen, and refuses calls once closed', () => {
    const first = open();
    first.createSnapshot({ kind: 'active', key: 'a', parent: '', labels: { x: 'y', empty: '' } });
    first.close();
    expect(kindOf(() => first.getInfo('a'))).toBe('failed-precondition');
    expect(() => first.walkInfo()).toThrow('test snapshotter is closed');
    expect(open().getInfo('a').info.labels).toEqual({ x: 'y' });
  });
});

describe('SnapshotMetaStore', () => {
  it('relates snapshots by id: parents nearest first, idMap of every kind', async () => {
    const store = open();
    store.createSnapshot({ kind: 'active', key: 'a', parent: '' });
    await store.commitActive('base', 'a', {}, async () => ({ size: 1, inodes: 1 }));
    store.createSnapshot({ kind: 'active', key: 'b', parent: 'base' });
    await store.commitActive('middle', 'b', {}, async () => ({ size: 1, inodes: 1 }));
    expect(store.createSnapshot({ kind: 'view', key: 'v', parent: 'middle' }).parentIds).toEqual([2, 1]);
    expect([...store.idMap().values()]).toEqual([
      { id: 1, kind: 'committed', key: 'base', parentIds: [] },
      { id: 2, kind: 'committed', key: 'middle', parentIds: [1] },
      { id: 3, kind: 'view', key: 'v', parentIds: [2, 1] },
    ]);
    expect(kindOf(() => store.getSnapshot('base'))).toBe('failed-precondition');
    expect(kindOf(() => store.remove('middle'))).toBe('failed-precondition');
    expect(store.remove('v')).toEqual({ id: 3, kind: 'view', key: 'v', parentIds: [2, 1] });
  });

  it('publishes a directory under the new id, in the transaction that inserts the row', () => {
    const store = open();
    const directory = builtDirectory();
    writeFileSync(join(directory.from, 'f'), 'x');
    expect(store.createSnapshot({ kind: 'active', key: 'a', parent: '' }, directory).id).toBe(1);
    expect(readdirSync(directory.snapshots)).toEqual(['1']);
    expect(readdirSync(directory.to(1))).toEqual(['f']);
  });

  it('moves a published directory back when its transaction fails, and writes no row', () => {
    const store = open();
    const directory = builtDirectory();
    const fsync = jest.spyOn(fs, 'fsyncSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    try {
      expect(() => store.createSnapshot({ kind: 'active', key: 'a', parent: '' }, directory)).toThrow('EIO');
    } finally {
      fsync.mockRestore();
    }
    expect(readdirSync(directory.snapshots)).toEqual(['new-1']);
    expect(kindOf(() => store.getInfo('a'))).toBe('not-found');

    // A directory already where the new one would go (the rolled-back id comes
    // again): InternalError, nothing moved.
    mkdirSync(directory.to(1));
    expect(kindOf(() => store.createSnapshot({ kind: 'view', key: 'b', parent: '' }, directory))).toBe('internal');
    expect(readdirSync(directory.snapshots).sort()).toEqual(['1', 'new-1']);
    expect(store.walkInfo()).toEqual([]);
  });

  it('refuses to create on a parent that changed since checkCreate', async () => {
    const store = open();
    store.createSnapshot({ kind: 'active', key: 'a', parent: '' });
    await store.commitActive('base', 'a', {}, async () => ({ size: 0, inodes: 1 }));
    const parentId = store.checkCreate({ kind: 'active', key: 'b', parent: 'base' });
    store.remove('base');
    store.createSnapshot({ kind: 'active', key: 'c', parent: '' });
    await store.commitActive('base', 'c', {}, async () => ({ size: 0, inodes: 1 }));
    expect(kindOf(() => store.createSnapshot({ kind: 'active', key: 'b', parent: 'base', parentId }))).toBe(
      'failed-precondition',
    );
  });

  it('commits nothing when the active snapshot is removed or replaced while it is measured', async () => {
    const store = open();
    store.createSnapshot({ kind: 'active', key: 'a', parent: '' });
    const removeIt = async () => {
      store.remove('a');
      return { size: 0, inodes: 1 };
    };
    await expect(store.commitActive('c', 'a', {}, removeIt)).rejects.toThrow('snapshot "a": not found');

    store.createSnapshot({ kind: 'active', key: 'a', parent: '' });
    const replaceIt = async () => {
      store.remove('a');
      store.createSnapshot({ kind: 'active', key: 'a', parent: '' });
      return { size: 0, inodes: 1 };
    };
    await expect(store.commitActive('c', 'a', {}, replaceIt)).rejects.toThrow('snapshot "a" changed during commit');
    expect(store.walkInfo().map(({ id, info }) => [id, info.name, info.kind])).toEqual([[3, 'a', 'active']]);
  });
});

describe('bindSnapshotter', () => {
  const fake = () => ({ close: jest.fn(async () => undefined) }) as unknown as Snapshotter & { close: jest.Mock };

  it('binds the snapshotter by plugin id and adds its exports', async () => {
    const container = new Container();
    const meta = { platforms: [], exports: { other: 'x' }, capabilities: [] };
    const snapshotter = fake();
    expect(await bindSnapshotter({ id: 'mine', container, meta }, snapshotter, { root: '/r' })).toBe(snapshotter);
    expect(container.getNamed(Snapshotter, 'mine')).toBe(snapshotter);
    expect(meta.exports).toEqual({ other: 'x', root: '/r' });
  });

  it('closes the snapshotter when binding fails', async () => {
    const container = new Container();
    jest.spyOn(container, 'bind').mockImplementation(() => {
      throw new Error('no binding');
    });
    const snapshotter = fake();
    const meta = { platforms: [], exports: {}, capabilities: [] };
    const binding = bindSnapshotter({ id: 'mine', container, meta }, snapshotter, { root: '/r' });
    await expect(binding).rejects.toThrow('no binding');
    expect(snapshotter.close).toHaveBeenCalled();
    expect(meta.exports).toEqual({});
  });
});
