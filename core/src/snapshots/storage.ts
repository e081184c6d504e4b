import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
} from '../errdefs';
import { migrateSchema, type Migration } from '../metadata/db';
import { validateLabels } from '../metadata/identifiers';
import type { Labels } from '../metadata/types';
import { updatedLabels } from './labels';
import type { SnapshotInfo, SnapshotKind, SnapshotUsage } from './types';

/**
 * A snapshot as a raw snapshotter handles it (containerd's storage.Snapshot):
 * `id` names its directory and never changes, not even at commit.
 */
export interface StoredSnapshot {
  id: number;
  kind: SnapshotKind;
  /** Its key, or its name once committed: one space for both. */
  key: string;
  /** Ids of its parents, nearest first; empty for a snapshot on nothing. */
  parentIds: number[];
}

/** containerd's storage.GetInfo: a snapshot's id, public info and recorded usage. */
export interface StoredInfo {
  id: number;
  info: SnapshotInfo;
  /** Recorded at commit; zero for active snapshots and views, which the snapshotter measures itself. */
  usage: SnapshotUsage;
}

/** What prepare() and view() ask for. */
export interface NewSnapshot {
  kind: 'active' | 'view';
  key: string;
  /** A committed snapshot's name, '' for none. */
  parent: string;
  labels?: Labels;
  /**
   * The parent's id as checkCreate() returned it while the snapshotter built
   * the directory: FailedPrecondition if `parent` names another snapshot by
   * the time the row is written.
   */
  parentId?: number | null;
}

/** A directory built for a new snapshot, to be published under the snapshot's id. */
export interface SnapshotDirectory {
  /** Where it was built: a temp name in the same directory as `to(id)`, so the rename is atomic. */
  from: string;
  /** Where the directory of snapshot `id` lives. */
  to(id: number): string;
}

export interface SnapshotMetaStoreOptions {
  /** Names the owner in errors ("<name> is closed"); default `snapshot metadata <path>`. */
  name?: string;
}

/**
 * Schema steps, run by core's migration runner: each in its own IMMEDIATE
 * transaction with the `user_version` bump. Append only: a shipped step's
 * index + 1 is the version recorded in existing databases.
 */
const migrations: readonly Migration[] = [
  {
    description: 'snapshots and their labels',
    up(db) {
      db.exec(`
        -- key: the active/view key or the committed name; one space for both.
        -- AUTOINCREMENT, not plain rowid: an id names a directory, and a removed
        -- snapshot's directory may wait for cleanup(), so ids are never reused.
        -- parent_id is NO ACTION: SQLite itself refuses to remove a parent.
        CREATE TABLE snapshots (
          id         INTEGER PRIMARY KEY AUTOINCREMENT,
          key        TEXT    NOT NULL UNIQUE CHECK (key <> ''),
          kind       TEXT    NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
          parent_id  INTEGER REFERENCES snapshots (id),
          created_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL,
          size       INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
          inodes     INTEGER NOT NULL DEFAULT 0 CHECK (inodes >= 0)
        ) STRICT;
        CREATE INDEX snapshots_by_parent ON snapshots (parent_id);

        CREATE TABLE snapshot_labels (
          snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
          key         TEXT    NOT NULL CHECK (key <> ''),
          value       TEXT    NOT NULL CHECK (value <> ''),
          PRIMARY KEY (snapshot_id, key)
        ) STRICT, WITHOUT ROWID;
      `);
    },
  },
  {
    // The native snapshotter's own copy of step 1 named these usage_size and
    // usage_inodes; its databases get the shared names. A no-op elsewhere.
    description: 'usage columns named size and inodes',
    up(db) {
      const columns = new Set((db.pragma('table_info(snapshots)') as { name: string }[]).map((c) => c.name));
      if (columns.has('usage_size')) db.exec('ALTER TABLE snapshots RENAME COLUMN usage_size TO size');
      if (columns.has('usage_inodes')) db.exec('ALTER TABLE snapshots RENAME COLUMN usage_inodes TO inodes');
    },
  },
];

interface Row {
  id: number;
  key: string;
  kind: SnapshotKind;
  parent_id: number | null;
  parent_key: string | null;
  created_at: number;
  updated_at: number;
  size: number;
  inodes: number;
}

const selectRow = `
  SELECT s.id, s.key, s.kind, s.parent_id, p.key AS parent_key, s.created_at, s.updated_at, s.size, s.inodes
  FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

/**
 * The metadata of a raw snapshotter, after containerd's `snapshots/storage`
 * (what its native and overlay snapshotters share): keys and committed names
 * in one space, numeric ids that name directories (a committed id is never
 * handed out again), kinds, parents, labels and recorded usage, in a
 * better-sqlite3 database (WAL, synchronous FULL, versioned schema) beside the
 * snapshotter's `snapshots/` directory.
 *
 * Each method checks what containerd's storage checks and throws its errors
 * (NotFound, AlreadyExists, FailedPrecondition, InvalidArgument). Every method
 * but commitActive() is synchronous, and each write runs in its own IMMEDIATE
 * transaction or as part of the caller's `transaction()`, so a snapshotter can
 * act on its directories (a rename) inside the same transaction without other
 * callers getting in between. After close(), every method is FailedPrecondition.
 */
export class SnapshotMetaStore {
  private readonly statements;

  private constructor(
    private readonly db: Database.Database,
    private readonly name: string,
  ) {
    this.statements = {
      byKey: db.prepare<[string], Row>(`${selectRow} WHERE s.key = ?`),
      all: db.prepare<[], Row>(`${selectRow} ORDER BY s.id`),
      tree: db.prepare<[], Pick<Row, 'id' | 'key' | 'kind' | 'parent_id'>>(
        'SELECT id, key, kind, parent_id FROM snapshots',
      ),
      ancestors: db.prepare<[number], { id: number }>(`
        WITH RECURSIVE chain (id, parent_id, depth) AS (
          SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
          UNION ALL
          SELECT s.id, s.parent_id, chain.depth + 1 FROM snapshots s JOIN chain ON s.id = chain.parent_id
        )
        SELECT id FROM chain WHERE depth > 0 ORDER BY depth`),
      hasChildren: db.prepare<[number], { one: number }>('SELECT 1 AS one FROM snapshots WHERE parent_id = ? LIMIT 1'),
      labels: db.prepare<[number], { key: string; value: string }>(
        'SELECT key, value FROM snapshot_labels WHERE snapshot_id = ? ORDER BY key',
      ),
      allLabels: db.prepare<[], { snapshot_id: number; key: string; value: string }>(
        'SELECT snapshot_id, key, value FROM snapshot_labels ORDER BY snapshot_id, key',
      ),
      insert: db.prepare<[string, string, number | null, number, number]>(
        'INSERT INTO snapshots (key, kind, parent_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)',
      ),
      commit: db.prepare<[string, number, number, number, number, number]>(
        `UPDATE snapshots SET key = ?, kind = 'committed', size = ?, inodes = ?, created_at = ?, updated_at = ?
         WHERE id = ?`,
      ),
      touch: db.prepare<[number, number]>('UPDATE snapshots SET updated_at = ? WHERE id = ?'),
      clearLabels: db.prepare<[number]>('DELETE FROM snapshot_labels WHERE snapshot_id = ?'),
      putLabel: db.prepare<[number, string, string]>(
        'INSERT INTO snapshot_labels (snapshot_id, key, value) VALUES (?, ?, ?)',
      ),
      delete: db.prepare<[number]>('DELETE FROM snapshots WHERE id = ?'),
    };
  }

  /** Opens (creating if needed) the database at `path` and brings its schema up to date. */
  static open(path: string, options: SnapshotMetaStoreOptions = {}): SnapshotMetaStore {
    const db = new Database(path);
    try {
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = ON');
      // First, before anything writes: refuses a database of a newer berth untouched.
      migrateSchema(db, path, migrations);
      db.pragma('journal_mode = WAL');
      // FULL, not NORMAL: a commit is acted on outside the db (a directory
      // renamed into place, mounts handed out), so it must survive power loss.
      db.pragma('synchronous = FULL');
      return new SnapshotMetaStore(db, options.name ?? `snapshot metadata ${path}`);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Runs `fn` in an IMMEDIATE transaction (a savepoint inside another): all of it commits, or none. */
  transaction<T>(fn: () => T): T {
    this.assertOpen();
    return this.db.transaction(fn).immediate();
  }

  /** containerd's GetInfo. NotFound if `key` names no snapshot. */
  getInfo(key: string): StoredInfo {
    const row = this.row(key);
    return toStoredInfo(row, this.labels(row.id));
  }

  /**
   * containerd's UpdateInfo: sets the labels of `info.name` by `fieldpaths`
   * (see updatedLabels) and its updated time. NotFound, or InvalidArgument for
   * a bad fieldpath or label.
   */
  updateInfo(info: { name: string; labels: Labels }, fieldpaths?: readonly string[]): StoredInfo {
    return this.transaction(() => {
      const row = this.row(info.name);
      const labels = updatedLabels(this.labels(row.id), info.labels ?? {}, fieldpaths);
      validateLabels(labels);
      this.replaceLabels(row.id, labels);
      this.statements.touch.run(Date.now(), row.id);
      return this.getInfo(info.name);
    });
  }

  /** Every snapshot with its info, in creation order (containerd's WalkInfo, read all at once). */
  walkInfo(): StoredInfo[] {
    this.assertOpen();
    const labels = new Map<number, [string, string][]>();
    for (const l of this.statements.allLabels.all()) {
      let list = labels.get(l.snapshot_id);
      if (!list) labels.set(l.snapshot_id, (list = []));
      list.push([l.key, l.value]);
    }
    return this.statements.all.all().map((row) => toStoredInfo(row, Object.fromEntries(labels.get(row.id) ?? [])));
  }

  /**
   * containerd's GetSnapshot: the active snapshot or view `key`, with what its
   * mounts need. NotFound; FailedPrecondition for a committed one.
   */
  getSnapshot(key: string): StoredSnapshot {
    const row = this.row(key);
    if (row.kind === 'committed') {
      throw new FailedPreconditionError(
        `snapshot ${JSON.stringify(key)} is committed: only active snapshots and views have mounts`,
      );
    }
    return this.stored(row);
  }

  /** containerd's IDMap: every snapshot by id. */
  idMap(): Map<number, StoredSnapshot> {
    this.assertOpen();
    const rows = new Map(this.statements.tree.all().map((row) => [row.id, row]));
    const snapshots = new Map<number, StoredSnapshot>();
    for (const row of rows.values()) {
      const parentIds: number[] = [];
      for (let at = row.parent_id; at !== null; at = rows.get(at)?.parent_id ?? null) parentIds.push(at);
      snapshots.set(row.id, { id: row.id, kind: row.kind, key: row.key, parentIds });
    }
    return snapshots;
  }

  /**
   * What createSnapshot() checks, without writing, for a snapshotter to fail
   * fast before it builds a directory: InvalidArgument for an empty key or a
   * bad label, AlreadyExists for a taken key, NotFound for a missing parent,
   * InvalidArgument for a parent that is not committed. Returns the parent's
   * id, null for none.
   */
  checkCreate(snapshot: NewSnapshot): number | null {
    if (typeof snapshot.key !== 'string' || snapshot.key === '') {
      throw new InvalidArgumentError('snapshot key must not be empty');
    }
    validateLabels(snapshot.labels ?? {});
    this.refuseTaken(snapshot.key);
    return snapshot.parent === '' ? null : this.committedParent(snapshot.parent).id;
  }

  /**
   * containerd's CreateSnapshot, and the publishing of its directory: in one
   * transaction, checks as checkCreate() does, inserts the row and renames
   * `directory.from` to `directory.to(id)` (then fsyncs their directory, so
   * the rename is on disk before the row). A crash leaves the old state or the
   * new one: before the commit, an id directory without a row, which the
   * snapshotter's cleanup deletes. When the transaction fails after the
   * rename, the directory is moved back to `from` for the caller to delete.
   * InternalError if `to(id)` already exists.
   */
  createSnapshot(snapshot: NewSnapshot, directory?: SnapshotDirectory): StoredSnapshot {
    let published: string | undefined;
    try {
      return this.transaction(() => {
        const parentId = this.checkCreate(snapshot);
        if (snapshot.parentId !== undefined && snapshot.parentId !== parentId) {
          throw new FailedPreconditionError(
            `parent ${JSON.stringify(snapshot.parent)} changed while preparing ${JSON.stringify(snapshot.key)}`,
          );
        }
        const now = Date.now();
        const id = Number(this.statements.insert.run(snapshot.key, snapshot.kind, parentId, now, now).lastInsertRowid);
        this.putLabels(id, snapshot.labels ?? {});
        if (directory) {
          const target = directory.to(id);
          if (existsSync(target)) throw new InternalError(`snapshot directory ${target} exists before its snapshot`);
          renameSync(directory.from, target);
          published = target;
          syncDir(dirname(target));
        }
        return this.stored(this.row(snapshot.key));
      });
    } catch (err) {
      if (published) unpublish(published, directory!.from);
      throw err;
    }
  }

  /**
   * containerd's CommitActive: turns active `key` into committed `name`,
   * keeping its id (and so its directory), with `labels` only and fresh
   * times. `measure(id)` is awaited between the checks and the write, outside
   * any transaction, since measuring a large tree takes a while; the write
   * checks again. InvalidArgument for an empty name or a bad label; NotFound;
   * FailedPrecondition if `key` is not active, or was replaced meanwhile;
   * AlreadyExists if `name` is taken. Returns the id.
   */
  async commitActive(
    name: string,
    key: string,
    labels: Labels,
    measure: (id: number) => Promise<SnapshotUsage>,
  ): Promise<number> {
    if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('snapshot name must not be empty');
    validateLabels(labels);
    const active = this.activeRow(key);
    this.refuseTaken(name);
    const usage = await measure(active.id);
    this.transaction(() => {
      const row = this.activeRow(key);
      if (row.id !== active.id) {
        throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} changed during commit`);
      }
      this.refuseTaken(name);
      const now = Date.now();
      this.statements.commit.run(name, usage.size, usage.inodes, now, now, row.id);
      this.replaceLabels(row.id, labels);
    });
    return active.id;
  }

  /**
   * containerd's Remove: deletes the row of `key` (its labels go with it) and
   * returns it; the directory is the caller's. NotFound; FailedPrecondition
   * while it has children.
   */
  remove(key: string): StoredSnapshot {
    return this.transaction(() => {
      const row = this.row(key);
      if (this.statements.hasChildren.get(row.id)) {
        throw new FailedPreconditionError(`cannot remove snapshot ${JSON.stringify(key)}: it has children`);
      }
      const removed = this.stored(row);
      this.statements.delete.run(row.id);
      return removed;
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private row(key: string): Row {
    this.assertOpen();
    const row = this.statements.byKey.get(key);
    if (!row) throw new NotFoundError(`snapshot ${JSON.stringify(key)}: not found`);
    return row;
  }

  private activeRow(key: string): Row {
    const row = this.row(key);
    if (row.kind !== 'active') {
      throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is not active (it is ${row.kind})`);
    }
    return row;
  }

  private committedParent(name: string): Row {
    this.assertOpen();
    const row = this.statements.byKey.get(name);
    if (!row) throw new NotFoundError(`parent snapshot ${JSON.stringify(name)}: not found`);
    if (row.kind !== 'committed') {
      throw new InvalidArgumentError(`parent ${JSON.stringify(name)} is not a committed snapshot (it is ${row.kind})`);
    }
    return row;
  }

  private refuseTaken(key: string): void {
    this.assertOpen();
    if (this.statements.byKey.get(key)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)}: already exists`);
  }

  private stored(row: Row): StoredSnapshot {
    const parentIds = this.statements.ancestors.all(row.id).map((r) => r.id);
    return { id: row.id, kind: row.kind, key: row.key, parentIds };
  }

  private labels(id: number): Labels {
    // Object.fromEntries, not assignment, so a `__proto__` key stays a label.
    return Object.fromEntries(this.statements.labels.all(id).map((l) => [l.key, l.value]));
  }

  private replaceLabels(id: number, labels: Labels): void {
    this.statements.clearLabels.run(id);
    this.putLabels(id, labels);
  }

  private putLabels(id: number, labels: Labels): void {
    // An empty value means "no label", as in containerd.
    for (const [key, value] of Object.entries(labels)) if (value !== '') this.statements.putLabel.run(id, key, value);
  }

  private assertOpen(): void {
    if (!this.db.open) throw new FailedPreconditionError(`${this.name} is closed`);
  }
}

function toStoredInfo(row: Row, labels: Labels): StoredInfo {
  return {
    id: row.id,
    info: {
      kind: row.kind,
      name: row.key,
      parent: row.parent_key ?? '',
      labels,
      createdAt: new Date(row.created_at),
      updatedAt: new Date(row.updated_at),
    },
    usage: { size: row.size, inodes: row.inodes },
  };
}

/** Takes a directory published by a transaction that then failed back to its temp name. */
function unpublish(published: string, temp: string): void {
  try {
    renameSync(published, temp);
  } catch {
    try {
      rmSync(published, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // It has no row, so the snapshotter's cleanup deletes it.
    }
  }
}

/** fsync of a directory: what makes a rename inside it survive a crash. */
function syncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
