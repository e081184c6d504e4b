import Database from 'better-sqlite3';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  type Labels,
  type SnapshotInfo,
  type SnapshotKind,
  type SnapshotUsage,
} from '@berth/core';

/** One snapshot as stored: `id` names its directory, `key` is its key or committed name. */
export interface SnapshotRow {
  id: number;
  key: string;
  kind: SnapshotKind;
  parentId: number | null;
  createdAt: number;
  updatedAt: number;
  usageSize: number;
  usageInodes: number;
}

interface RawRow {
  id: number;
  key: string;
  kind: string;
  parent_id: number | null;
  created_at: number;
  updated_at: number;
  usage_size: number;
  usage_inodes: number;
}

/**
 * Schema steps; `PRAGMA user_version` records how many ran. Append only: a
 * shipped step is never edited, since existing databases recorded it.
 */
const migrations: readonly ((db: Database.Database) => void)[] = [
  (db) =>
    db.exec(`
      -- key: the active/view key or the committed name; one space for both.
      -- parent_id has NO ACTION, so SQLite itself refuses to delete a parent
      -- that still has children. AUTOINCREMENT: an id, and so a directory
      -- name, is never handed out twice.
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
    `),
];

/** containerd's limit on one label, key and value together. */
const MAX_LABEL_BYTES = 4096;

/**
 * The native snapshotter's own metadata: a better-sqlite3 database (WAL,
 * synchronous FULL). Every method is synchronous, so a caller can run several
 * inside one `transaction()` together with the directory rename that makes a
 * snapshot real.
 */
export class SnapshotDb {
  private readonly db: Database.Database;
  private closed = false;

  constructor(path: string) {
    this.db = new Database(path);
    try {
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('journal_mode = WAL');
      // A commit is acted on outside the db (a directory renamed, a client told
      // "prepared"), so it must survive power loss: FULL, not NORMAL.
      this.db.pragma('synchronous = FULL');
      this.db.pragma('foreign_keys = ON');
      this.migrate(path);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  private migrate(path: string): void {
    const version = (): number => this.db.pragma('user_version', { simple: true }) as number;
    this.db
      .transaction(() => {
        const from = version();
        if (from > migrations.length) {
          throw new FailedPreconditionError(
            `snapshot metadata ${path} has schema version ${from}, newer than this berth's ${migrations.length}`,
          );
        }
        for (let step = from; step < migrations.length; step++) migrations[step](this.db);
        this.db.pragma(`user_version = ${migrations.length}`);
      })
      .immediate();
  }

  /** Runs `fn` in an IMMEDIATE transaction: all of it commits, or none. */
  transaction<T>(fn: () => T): T {
    this.assertOpen();
    return this.db.transaction(fn).immediate();
  }

  get(key: string): SnapshotRow | undefined {
    this.assertOpen();
    const raw = this.db.prepare('SELECT * FROM snapshots WHERE key = ?').get(key) as RawRow | undefined;
    return raw && toRow(raw);
  }

  /** The row of `key`; NotFound naming the snapshot otherwise. */
  mustGet(key: string): SnapshotRow {
    const row = this.get(key);
    if (!row) throw new NotFoundError(`snapshot ${JSON.stringify(key)}: not found`);
    return row;
  }

  byId(id: number): SnapshotRow | undefined {
    this.assertOpen();
    const raw = this.db.prepare('SELECT * FROM snapshots WHERE id = ?').get(id) as RawRow | undefined;
    return raw && toRow(raw);
  }

  all(): SnapshotRow[] {
    this.assertOpen();
    return (this.db.prepare('SELECT * FROM snapshots ORDER BY id').all() as RawRow[]).map(toRow);
  }

  hasChildren(id: number): boolean {
    this.assertOpen();
    return this.db.prepare('SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1').get(id) !== undefined;
  }

  /** The committed snapshot `name`, as a parent: NotFound, or InvalidArgument if not committed (as containerd). */
  parent(name: string): SnapshotRow {
    const row = this.get(name);
    if (!row) throw new NotFoundError(`parent snapshot ${JSON.stringify(name)}: not found`);
    if (row.kind !== 'committed') {
      throw new InvalidArgumentError(`parent ${JSON.stringify(name)} is not a committed snapshot (it is ${row.kind})`);
    }
    return row;
  }

  insert(key: string, kind: SnapshotKind, parentId: number | null, labels: Labels, now: number): SnapshotRow {
    if (this.get(key)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)}: already exists`);
    const id = Number(
      this.db
        .prepare('INSERT INTO snapshots (key, kind, parent_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
        .run(key, kind, parentId, now, now).lastInsertRowid,
    );
    this.setLabels(id, labels);
    return this.byId(id)!;
  }

  /** Turns active `row` into committed `name`, keeping its id and so its directory. */
  commit(row: SnapshotRow, name: string, usage: SnapshotUsage, labels: Labels, now: number): void {
    if (this.get(name)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(name)}: already exists`);
    this.db
      .prepare(
        `UPDATE snapshots SET key = ?, kind = 'committed', created_at = ?, updated_at = ?,
           usage_size = ?, usage_inodes = ? WHERE id = ?`,
      )
      .run(name, now, now, usage.size, usage.inodes, row.id);
    this.setLabels(row.id, labels);
  }

  delete(id: number): void {
    this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
  }

  labels(id: number): Labels {
    this.assertOpen();
    const rows = this.db.prepare('SELECT key, value FROM snapshot_labels WHERE snapshot_id = ?').all(id) as {
      key: string;
      value: string;
    }[];
    return Object.fromEntries(rows.map((r) => [r.key, r.value]));
  }

  /** Replaces every label of `id`; empty values are dropped (containerd: "no label"). */
  setLabels(id: number, labels: Labels): void {
    for (const [key, value] of Object.entries(labels)) validateLabel(key, value);
    this.db.prepare('DELETE FROM snapshot_labels WHERE snapshot_id = ?').run(id);
    const insert = this.db.prepare('INSERT INTO snapshot_labels (snapshot_id, key, value) VALUES (?, ?, ?)');
    for (const [key, value] of Object.entries(labels)) if (value !== '') insert.run(id, key, value);
  }

  touch(id: number, now: number): void {
    this.db.prepare('UPDATE snapshots SET updated_at = ? WHERE id = ?').run(now, id);
  }

  /** Public view of a row: parent by name, labels, dates. */
  info(row: SnapshotRow): SnapshotInfo {
    const parent = row.parentId === null ? undefined : this.byId(row.parentId);
    return {
      kind: row.kind,
      name: row.key,
      parent: parent?.key ?? '',
      labels: this.labels(row.id),
      createdAt: new Date(row.createdAt),
      updatedAt: new Date(row.updatedAt),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new FailedPreconditionError('native snapshotter is closed');
  }
}

function validateLabel(key: string, value: string): void {
  if (key === '') throw new InvalidArgumentError('label key must not be empty');
  if (Buffer.byteLength(key) + Buffer.byteLength(value) > MAX_LABEL_BYTES) {
    throw new InvalidArgumentError(`label ${JSON.stringify(key)}: key and value exceed ${MAX_LABEL_BYTES} bytes`);
  }
}

function toRow(raw: RawRow): SnapshotRow {
  return {
    id: raw.id,
    key: raw.key,
    kind: raw.kind as SnapshotKind,
    parentId: raw.parent_id,
    createdAt: raw.created_at,
    updatedAt: raw.updated_at,
    usageSize: raw.usage_size,
    usageInodes: raw.usage_inodes,
  };
}
