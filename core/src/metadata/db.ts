import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { FailedPreconditionError } from '../errdefs';

/** An open metadata database: a better-sqlite3 connection with berth's schema applied. */
export type MetadataDb = Database.Database;

export interface OpenMetadataDbOptions {
  /** How long a statement waits for another process's lock before SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

/**
 * One step of the schema. Steps run in order, each in its own IMMEDIATE
 * transaction together with the `user_version` bump, so a crash mid-migration
 * leaves the previous version intact.
 */
export interface Migration {
  /** Short summary, shown when a migration fails. */
  readonly description: string;
  /**
   * Set for a step that rebuilds a table (SQLite's create-copy-drop-rename).
   * With foreign keys on, DROP TABLE runs an implicit DELETE that fires
   * ON DELETE CASCADE and would wipe child rows, and the pragma cannot change
   * inside a transaction; so the runner turns them off around the step and
   * runs `foreign_key_check` before committing.
   */
  readonly rebuildsTables?: boolean;
  up(db: MetadataDb): void;
}

/*
 * Schema conventions, and the plan for what comes next.
 *
 * - Every resource row is keyed by (namespace, id) and references
 *   namespaces(name) with the default NO ACTION, so SQLite itself refuses to
 *   delete a namespace that still holds something; the usage checks only
 *   produce the friendlier message first.
 * - Labels live in one `<thing>_labels` table per kind, ON DELETE CASCADE
 *   from their owner, with `key <> ''` and `value <> ''` (an empty value
 *   means "no label", as in containerd's Update).
 * - GC references stay what they are in containerd: labels
 *   (`containerd.io/gc.ref.content[.<suffix>]`,
 *   `containerd.io/gc.ref.snapshot.<snapshotter>`, `containerd.io/gc.root`,
 *   `containerd.io/gc.expire`, `containerd.io/gc.flat`). The mark phase reads
 *   them straight from the label tables, so each label table gets an index on
 *   (key) for `key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/'`.
 * - Times are INTEGER unix milliseconds; STRICT tables everywhere.
 *
 * Append new steps to metadataMigrations; never edit or reorder a shipped one,
 * since its index + 1 is the version recorded in existing databases.
 *
 * Migration 2 (to add next), all STRICT:
 *   containers (namespace, id, image, runtime_name, runtime_options BLOB,
 *     spec BLOB, snapshotter, snapshot_key, sandbox_id, created_at, updated_at;
 *     PK (namespace, id)) + container_labels
 *     + container_extensions (namespace, container_id, name, value BLOB).
 *   images (namespace, name, target_media_type, target_digest, target_size,
 *     target_annotations TEXT json, created_at, updated_at; PK (namespace, name))
 *     + image_labels.
 *   content_blobs (namespace, digest, size, created_at, updated_at;
 *     PK (namespace, digest)): which namespaces may see a shared blob in the
 *     content store (containerd's "shared" policy adds a row when a writer
 *     names the digest) + content_blob_labels.
 *   ingests (namespace, ref, expected_digest, expires_at; PK (namespace, ref)).
 *   leases (namespace, id, created_at; PK (namespace, id)) + lease_labels.
 *   lease_resources (namespace, lease_id, type, resource_id;
 *     PK (namespace, lease_id, type, resource_id); FK to leases ON DELETE
 *     CASCADE): type is `content`, `ingests` or `snapshots/<snapshotter>`.
 *   snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, namespace, snapshotter,
 *     key, kind, parent_id REFERENCES snapshots(id) (NO ACTION, so Remove
 *     fails while children exist), created_at, updated_at;
 *     UNIQUE (namespace, snapshotter, key)) + snapshot_labels. The backend
 *     sees keys `<namespace>/<id>/<key>`, which is why id is a sequence.
 *   gc_state (singleton row: dirty counters per kind, last run), so deletes
 *     can schedule a collection and a restart knows one is owed.
 */
export const metadataMigrations: readonly Migration[] = [
  {
    description: 'namespaces and their labels',
    up(db) {
      db.exec(`
        CREATE TABLE namespaces (
          name       TEXT    NOT NULL PRIMARY KEY,
          created_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE namespace_labels (
          namespace TEXT NOT NULL REFERENCES namespaces (name) ON DELETE CASCADE,
          key       TEXT NOT NULL CHECK (key <> ''),
          value     TEXT NOT NULL CHECK (value <> ''),
          PRIMARY KEY (namespace, key)
        ) STRICT, WITHOUT ROWID;
      `);
    },
  },
];

/** The schema version this build of berth writes (`PRAGMA user_version`). */
export const METADATA_SCHEMA_VERSION = metadataMigrations.length;

const defaultBusyTimeoutMs = 5000;

/**
 * Opens (creating if needed) the metadata database at `path` and brings its
 * schema up to METADATA_SCHEMA_VERSION. A database written by a newer berth is
 * refused with FailedPreconditionError rather than touched. `:memory:` works
 * for tests, without WAL.
 */
export function openMetadataDb(path: string, options: OpenMetadataDbOptions = {}): MetadataDb {
  const inMemory = path === ':memory:';
  if (!inMemory) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? defaultBusyTimeoutMs))}`);
    // Before anything writes: even switching to WAL changes the file header.
    refuseNewerSchema(path, schemaVersion(db), metadataMigrations.length);
    const journalMode = db.pragma('journal_mode = WAL', { simple: true });
    if (!inMemory && journalMode !== 'wal') {
      throw new FailedPreconditionError(
        `metadata db ${path}: cannot use WAL journal mode (got ${String(journalMode)}); ` +
          'is it on a filesystem without shared-memory support?',
      );
    }
    // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power
    // loss. Metadata commits are rare next to content I/O, and berth acts on
    // them outside the db (a blob renamed into place, a shim started, a client
    // told "created"), so a commit must survive like bolt's fsync does.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrateSchema(db, path, metadataMigrations);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function schemaVersion(db: MetadataDb): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function refuseNewerSchema(path: string, version: number, supported: number): void {
  if (version > supported) {
    throw new FailedPreconditionError(
      `metadata db ${path} has schema version ${version}, but this berth supports at most ` +
        `${supported}: it was written by a newer berth; run that version ` +
        'or restore a copy from before the upgrade',
    );
  }
}

/**
 * Applies `list[user_version..]` in order. Exported for tests of the runner
 * itself; everything else goes through openMetadataDb.
 */
export function migrateSchema(db: MetadataDb, path: string, list: readonly Migration[]): void {
  for (;;) {
    // Reread the version under the write lock: another process opening the
    // same file may have migrated it since we last looked.
    const current = db.transaction(() => schemaVersion(db)).immediate();
    refuseNewerSchema(path, current, list.length);
    if (current === list.length) return;
    applyMigration(db, path, current, list[current]);
  }
}

function applyMigration(db: MetadataDb, path: string, from: number, migration: Migration): void {
  const step = db.transaction(() => {
    // Lost a race to another process: let the loop look again.
    if (schemaVersion(db) !== from) return;
    migration.up(db);
    if (migration.rebuildsTables) {
      const broken = db.pragma('foreign_key_check') as unknown[];
      if (broken.length > 0) {
        throw new FailedPreconditionError(
          `${broken.length} foreign key violation(s) after the rebuild`,
        );
      }
    }
    db.pragma(`user_version = ${from + 1}`);
  });
  if (migration.rebuildsTables) db.pragma('foreign_keys = OFF');
  try {
    step.immediate();
  } catch (err) {
    throw new FailedPreconditionError(
      `metadata db ${path}: migration ${from + 1} (${migration.description}) failed: ` +
        (err instanceof Error ? err.message : String(err)),
      { cause: err },
    );
  } finally {
    if (migration.rebuildsTables) db.pragma('foreign_keys = ON');
  }
}
