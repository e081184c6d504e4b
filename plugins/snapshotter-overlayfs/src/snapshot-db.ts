import Database from 'better-sqlite3';
import { FailedPreconditionError, type Labels, type SnapshotKind } from '@berth/core';

/** One snapshot as stored. Keys of active snapshots and views and names of committed ones share `key`. */
export interface SnapshotRow {
  id: number;
  key: string;
  kind: SnapshotKind;
  /** Null for a snapshot on the empty directory. */
  parentId: number | null;
  /** The parent's key, '' for none. */
  parentKey: string;
  createdAt: Date;
  updatedAt: Date;
  /** Recorded at commit; zero for active snapshots and views. */
  size: number;
  inodes: number;
}

export interface NewSnapshot {
  key: string;
  kind: SnapshotKind;
  parentId: number | null;
  labels: Labels;
  now: Date;
}

interface RawRow {
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

/**
 * Schema steps, applied in order; each runs in its own IMMEDIATE transaction
 * with the `user_version` bump. Append only: a shipped step's index + 1 is the
 * version recorded in existing databases.
 */
const migrations: readonly { description: string; sql: string }[] = [
  {
    description: 'snapshots and their labels',
    sql: `
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
    `,
  },
];

const selectRow = `
  SELECT s.id, s.key, s.kind, s.parent_id, p.key AS parent_key, s.created_at, s.updated_at, s.size, s.inodes
  FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

/**
 * The overlay snapshotter's own metadata (`<root>/metadata.db`), like
 * containerd's bolt file beside `snapshots/`. Synchronous on purpose: a
 * transaction that also renames a directory must not yield to other callers
 * between the two.
 */
export class SnapshotDb {
  private readonly statements;

  private constructor(private readonly db: Database.Database) {
    this.statements = {
      byKey: db.prepare<[string], RawRow>(`${selectRow} WHERE s.key = ?`),
      all: db.prepare<[], RawRow>(`${selectRow} ORDER BY s.id`),
      allLabels: db.prepare<[], { snapshot_id: number; key: string; value: string }>(
        'SELECT snapshot_id, key, value FROM snapshot_labels ORDER BY snapshot_id, key',
      ),
      labels: db.prepare<[number], { key: string; value: string }>(
        'SELECT key, value FROM snapshot_labels WHERE snapshot_id = ? ORDER BY key',
      ),
      ancestors: db.prepare<[number], { id: number }>(`
        WITH RECURSIVE chain (id, parent_id, depth) AS (
          SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
          UNION ALL
          SELECT s.id, s.parent_id, chain.depth + 1 FROM snapshots s JOIN chain ON s.id = chain.parent_id
        )
        SELECT id FROM chain WHERE depth > 0 ORDER BY depth`),
      hasChildren: db.prepare<[number], { one: number }>('SELECT 1 AS one FROM snapshots WHERE parent_id = ? LIMIT 1'),
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
      ids: db.prepare<[], { id: number }>('SELECT id FROM snapshots'),
    };
  }

  /** Opens or creates the database and brings its schema up to date. */
  static open(path: string): SnapshotDb {
    const db = new Database(path);
    try {
      db.pragma('busy_timeout = 5000');
      refuseNewerSchema(path, schemaVersion(db));
      db.pragma('journal_mode = WAL');
      // FULL: a committed snapshot is acted on outside the db (its directory
      // renamed into place, mounts handed out), so the commit must survive power loss.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrate(db, path);
    } catch (err) {
      db.close();
      throw err;
    }
    return new SnapshotDb(db);
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  /** Runs `fn` in an IMMEDIATE transaction: committed when it returns, rolled back when it throws. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  get(key: string): SnapshotRow | undefined {
    const raw = this.statements.byKey.get(key);
    return raw && toRow(raw);
  }

  labels(id: number): Labels {
    // Object.fromEntries, not assignment, so a `__proto__` key stays a label.
    return Object.fromEntries(this.statements.labels.all(id).map((l) => [l.key, l.value]));
  }

  /** Every snapshot with its labels, in creation order. */
  all(): { row: SnapshotRow; labels: Labels }[] {
    const labels = new Map<number, [string, string][]>();
    for (const l of this.statements.allLabels.all()) {
      let list = labels.get(l.snapshot_id);
      if (!list) labels.set(l.snapshot_id, (list = []));
      list.push([l.key, l.value]);
    }
    return this.statements.all.all().map((raw) => ({
      row: toRow(raw),
      labels: Object.fromEntries(labels.get(raw.id) ?? []),
    }));
  }

  /** Ids of the snapshot's parents, nearest first. */
  ancestors(id: number): number[] {
    return this.statements.ancestors.all(id).map((r) => r.id);
  }

  hasChildren(id: number): boolean {
    return this.statements.hasChildren.get(id) !== undefined;
  }

  ids(): Set<number> {
    return new Set(this.statements.ids.all().map((r) => r.id));
  }

  /** Inserts a snapshot and returns its id. Call inside transaction(). */
  insert(snapshot: NewSnapshot): number {
    const now = snapshot.now.getTime();
    const result = this.statements.insert.run(snapshot.key, snapshot.kind, snapshot.parentId, now, now);
    const id = Number(result.lastInsertRowid);
    this.putLabels(id, snapshot.labels);
    return id;
  }

  /** Turns active `id` into committed `name`, with fresh times and only the given labels, as containerd does. */
  commit(id: number, name: string, usage: { size: number; inodes: number }, labels: Labels, now: Date): void {
    const ms = now.getTime();
    this.statements.commit.run(name, usage.size, usage.inodes, ms, ms, id);
    this.statements.clearLabels.run(id);
    this.putLabels(id, labels);
  }

  replaceLabels(id: number, labels: Labels, now: Date): void {
    this.statements.clearLabels.run(id);
    this.putLabels(id, labels);
    this.statements.touch.run(now.getTime(), id);
  }

  delete(id: number): void {
    this.statements.delete.run(id);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private putLabels(id: number, labels: Labels): void {
    // An empty value means "no label", as in containerd.
    for (const [key, value] of Object.entries(labels)) if (value !== '') this.statements.putLabel.run(id, key, value);
  }
}

function toRow(raw: RawRow): SnapshotRow {
  return {
    id: raw.id,
    key: raw.key,
    kind: raw.kind,
    parentId: raw.parent_id,
    parentKey: raw.parent_key ?? '',
    createdAt: new Date(raw.created_at),
    updatedAt: new Date(raw.updated_at),
    size: raw.size,
    inodes: raw.inodes,
  };
}

function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function refuseNewerSchema(path: string, version: number): void {
  if (version > migrations.length) {
    throw new FailedPreconditionError(
      `snapshot metadata ${path} has schema version ${version}, but this berth supports at most ` +
        `${migrations.length}: it was written by a newer berth`,
    );
  }
}

function migrate(db: Database.Database, path: string): void {
  for (;;) {
    const step = db
      .transaction(() => {
        const current = schemaVersion(db);
        refuseNewerSchema(path, current);
        if (current === migrations.length) return false;
        db.exec(migrations[current].sql);
        db.pragma(`user_version = ${current + 1}`);
        return true;
      })
      .immediate();
    if (!step) return;
  }
}
