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
 *   produce the friendlier message first. (Ingests are the exception: an
 *   unfinished write goes with its namespace, as in containerd.)
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
 * Migration 2 holds content, ingests, leases and images; migration 3 the
 * snapshots, migration 4 the containers with their labels and extensions
 * (see their steps).
 * No gc_state table: the collector runs on a timer as well as after deletes,
 * so a collection owed before a restart happens at the first tick after it.
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
  {
    description: 'content, ingests, leases and images',
    up(db) {
      db.exec(`
        -- Which namespaces see a blob of the shared content store. Labels are
        -- per namespace; the blob itself goes when no row names its digest.
        CREATE TABLE content_blobs (
          namespace  TEXT    NOT NULL REFERENCES namespaces (name),
          digest     TEXT    NOT NULL CHECK (digest <> ''),
          size       INTEGER NOT NULL CHECK (size >= 0),
          created_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL,
          PRIMARY KEY (namespace, digest)
        ) STRICT, WITHOUT ROWID;
        -- The blob sweep asks "does any namespace still hold this digest?".
        CREATE INDEX content_blobs_by_digest ON content_blobs (digest);

        CREATE TABLE content_blob_labels (
          namespace TEXT NOT NULL,
          digest    TEXT NOT NULL,
          key       TEXT NOT NULL CHECK (key <> ''),
          value     TEXT NOT NULL CHECK (value <> ''),
          PRIMARY KEY (namespace, digest, key),
          FOREIGN KEY (namespace, digest) REFERENCES content_blobs (namespace, digest) ON DELETE CASCADE
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX content_blob_labels_gc ON content_blob_labels (key)
          WHERE key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/';

        -- Writes in progress. The backend ingest is named '<namespace>/<ref>'.
        -- CASCADE, unlike other resources: as in containerd an unfinished
        -- write does not keep a namespace alive, and the collector aborts
        -- backend ingests no row names.
        -- shared_digest/shared_size: the blob already exists in the backend
        -- and commit will only link it (containerd's "shared" writer); the
        -- row keeps that blob alive until then.
        -- expires_at: NULL while a lease holds the ingest.
        CREATE TABLE ingests (
          namespace     TEXT    NOT NULL REFERENCES namespaces (name) ON DELETE CASCADE,
          ref           TEXT    NOT NULL CHECK (ref <> ''),
          shared_digest TEXT,
          shared_size   INTEGER,
          created_at    INTEGER NOT NULL,
          updated_at    INTEGER NOT NULL,
          expires_at    INTEGER,
          PRIMARY KEY (namespace, ref),
          CHECK ((shared_digest IS NULL) = (shared_size IS NULL))
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE leases (
          namespace  TEXT    NOT NULL REFERENCES namespaces (name),
          id         TEXT    NOT NULL CHECK (id <> ''),
          created_at INTEGER NOT NULL,
          PRIMARY KEY (namespace, id)
        ) STRICT, WITHOUT ROWID;

        -- No gc index: the collector reads every lease's labels anyway
        -- (containerd.io/gc.expire, containerd.io/gc.flat), and leases are few.
        CREATE TABLE lease_labels (
          namespace TEXT NOT NULL,
          lease_id  TEXT NOT NULL,
          key       TEXT NOT NULL CHECK (key <> ''),
          value     TEXT NOT NULL CHECK (value <> ''),
          PRIMARY KEY (namespace, lease_id, key),
          FOREIGN KEY (namespace, lease_id) REFERENCES leases (namespace, id) ON DELETE CASCADE
        ) STRICT, WITHOUT ROWID;

        -- type: 'content' (id = digest), 'ingests' (id = ref) or
        -- 'snapshots/<snapshotter>' (id = key). No reference to the resource
        -- itself: a lease may hold what does not exist yet.
        CREATE TABLE lease_resources (
          namespace   TEXT NOT NULL,
          lease_id    TEXT NOT NULL,
          type        TEXT NOT NULL CHECK (type <> ''),
          resource_id TEXT NOT NULL CHECK (resource_id <> ''),
          PRIMARY KEY (namespace, lease_id, type, resource_id),
          FOREIGN KEY (namespace, lease_id) REFERENCES leases (namespace, id) ON DELETE CASCADE
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE images (
          namespace          TEXT    NOT NULL REFERENCES namespaces (name),
          name               TEXT    NOT NULL CHECK (name <> ''),
          target_media_type  TEXT    NOT NULL CHECK (target_media_type <> ''),
          target_digest      TEXT    NOT NULL CHECK (target_digest <> ''),
          target_size        INTEGER NOT NULL CHECK (target_size >= 0),
          target_annotations TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(target_annotations)),
          created_at         INTEGER NOT NULL,
          updated_at         INTEGER NOT NULL,
          PRIMARY KEY (namespace, name)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE image_labels (
          namespace  TEXT NOT NULL,
          image_name TEXT NOT NULL,
          key        TEXT NOT NULL CHECK (key <> ''),
          value      TEXT NOT NULL CHECK (value <> ''),
          PRIMARY KEY (namespace, image_name, key),
          FOREIGN KEY (namespace, image_name) REFERENCES images (namespace, name) ON DELETE CASCADE
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX image_labels_gc ON image_labels (key)
          WHERE key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/';
      `);
    },
  },
  {
    description: 'snapshots per namespace',
    up(db) {
      db.exec(`
        -- The snapshots each namespace sees, per snapshotter: key is the
        -- namespace's name for it (an active/view key or a committed name),
        -- backend_key what the raw snapshotter knows it as,
        -- '<namespace>/<seq>/<key>'. parent is the namespace-local name of a
        -- committed snapshot of the same snapshotter; the reference has the
        -- default NO ACTION, so a snapshot with children cannot be deleted.
        CREATE TABLE snapshots (
          namespace   TEXT    NOT NULL REFERENCES namespaces (name),
          snapshotter TEXT    NOT NULL CHECK (snapshotter <> ''),
          key         TEXT    NOT NULL CHECK (key <> ''),
          backend_key TEXT    NOT NULL CHECK (backend_key <> ''),
          parent      TEXT             CHECK (parent <> ''),
          kind        TEXT    NOT NULL CHECK (kind IN ('view', 'active', 'committed')),
          created_at  INTEGER NOT NULL,
          updated_at  INTEGER NOT NULL,
          PRIMARY KEY (namespace, snapshotter, key),
          -- Each snapshotter numbers its own backend keys, so they are unique per snapshotter only.
          UNIQUE (snapshotter, backend_key),
          FOREIGN KEY (namespace, snapshotter, parent) REFERENCES snapshots (namespace, snapshotter, key)
        ) STRICT, WITHOUT ROWID;
        -- Children of a snapshot (remove, and the foreign key's own check).
        CREATE INDEX snapshots_by_parent ON snapshots (namespace, snapshotter, parent);
        -- The collector's scan and the backend cleanup read one snapshotter's rows.
        CREATE INDEX snapshots_by_snapshotter ON snapshots (snapshotter);

        CREATE TABLE snapshot_labels (
          namespace    TEXT NOT NULL,
          snapshotter  TEXT NOT NULL,
          snapshot_key TEXT NOT NULL,
          key          TEXT NOT NULL CHECK (key <> ''),
          value        TEXT NOT NULL CHECK (value <> ''),
          PRIMARY KEY (namespace, snapshotter, snapshot_key, key),
          FOREIGN KEY (namespace, snapshotter, snapshot_key)
            REFERENCES snapshots (namespace, snapshotter, key) ON DELETE CASCADE
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX snapshot_labels_gc ON snapshot_labels (key)
          WHERE key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/';

        -- The <seq> of backend keys, per snapshotter. Taken before the
        -- backend call and never reused, so a key a crash left in the
        -- backend is never handed out again.
        CREATE TABLE snapshot_sequences (
          snapshotter TEXT    NOT NULL PRIMARY KEY CHECK (snapshotter <> ''),
          value       INTEGER NOT NULL CHECK (value > 0)
        ) STRICT, WITHOUT ROWID;
      `);
    },
  },
  {
    description: 'containers, their labels and extensions',
    up(db) {
      db.exec(`
        -- containerd's containers.Container. Each Any (runtime options, spec,
        -- extensions) is kept as its type URL and its bytes, exactly as the
        -- client sent them; the spec is JSON bytes we never rewrite.
        -- snapshotter/snapshot_key name the rootfs snapshot the container
        -- keeps alive (the collector treats every container as a root);
        -- '' when it has none. No reference to snapshots: as in containerd
        -- a container may name a snapshot that is gone or not made yet.
        CREATE TABLE containers (
          namespace             TEXT    NOT NULL REFERENCES namespaces (name),
          id                    TEXT    NOT NULL CHECK (id <> ''),
          image                 TEXT    NOT NULL DEFAULT '',
          runtime_name          TEXT    NOT NULL CHECK (runtime_name <> ''),
          runtime_options_type  TEXT,
          runtime_options       BLOB,
          spec_type             TEXT,
          spec                  BLOB,
          snapshotter           TEXT    NOT NULL DEFAULT '',
          snapshot_key          TEXT    NOT NULL DEFAULT '',
          sandbox_id            TEXT    NOT NULL DEFAULT '',
          created_at            INTEGER NOT NULL,
          updated_at            INTEGER NOT NULL,
          PRIMARY KEY (namespace, id),
          CHECK ((runtime_options_type IS NULL) = (runtime_options IS NULL)),
          CHECK ((spec_type IS NULL) = (spec IS NULL))
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE container_labels (
          namespace    TEXT NOT NULL,
          container_id TEXT NOT NULL,
          key          TEXT NOT NULL CHECK (key <> ''),
          value        TEXT NOT NULL CHECK (value <> ''),
          PRIMARY KEY (namespace, container_id, key),
          FOREIGN KEY (namespace, container_id) REFERENCES containers (namespace, id) ON DELETE CASCADE
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX container_labels_gc ON container_labels (key)
          WHERE key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/';

        CREATE TABLE container_extensions (
          namespace    TEXT NOT NULL,
          container_id TEXT NOT NULL,
          name         TEXT NOT NULL CHECK (name <> ''),
          type_url     TEXT NOT NULL,
          value        BLOB NOT NULL,
          PRIMARY KEY (namespace, container_id, name),
          FOREIGN KEY (namespace, container_id) REFERENCES containers (namespace, id) ON DELETE CASCADE
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
