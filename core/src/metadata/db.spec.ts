import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isFailedPrecondition } from '../errdefs';
import {
  METADATA_SCHEMA_VERSION,
  metadataMigrations,
  migrateSchema,
  openMetadataDb,
  type MetadataDb,
  type Migration,
} from './db';
import { useTempDir } from './test-fixtures/temp-dir';

describe('openMetadataDb', () => {
  const tempDir = useTempDir();
  const open: MetadataDb[] = [];
  afterEach(() => {
    for (const db of open.splice(0)) if (db.open) db.close();
  });
  function openDb(path: string): MetadataDb {
    const db = openMetadataDb(path);
    open.push(db);
    return db;
  }
  function raw(path: string): MetadataDb {
    const db = new Database(path);
    open.push(db);
    return db;
  }

  it('creates the file and missing parent dirs', () => {
    const path = join(tempDir(), 'a', 'b', 'meta.db');
    openDb(path);
    expect(existsSync(path)).toBe(true);
  });

  it('turns on WAL, persistently', () => {
    const path = join(tempDir(), 'meta.db');
    const db = openDb(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.prepare("INSERT INTO namespaces VALUES ('a', 0, 0)").run();
    expect(existsSync(`${path}-wal`)).toBe(true);
    // A connection that sets nothing itself still sees WAL: it is in the file.
    expect(raw(path).pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('sets synchronous=FULL, foreign keys and a busy timeout', () => {
    const db = openDb(join(tempDir(), 'meta.db'));
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
  });

  it('records the schema version and creates the tables', () => {
    const path = join(tempDir(), 'meta.db');
    openDb(path).close();
    const db = raw(path);
    expect(db.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION);
    expect(METADATA_SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
    const tables = db
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
      .pluck()
      .all();
    expect(tables).toEqual(expect.arrayContaining(['namespaces', 'namespace_labels']));
  });

  it('reopens an up-to-date db without changing it', () => {
    const path = join(tempDir(), 'meta.db');
    openDb(path).prepare("INSERT INTO namespaces VALUES ('kept', 1, 1)").run();
    const again = openDb(path);
    expect(again.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION);
    expect(again.prepare('SELECT name FROM namespaces').pluck().all()).toEqual(['kept']);
  });

  it('refuses a db from a newer berth and leaves it untouched', () => {
    const path = join(tempDir(), 'meta.db');
    const future = raw(path);
    future.pragma(`user_version = ${METADATA_SCHEMA_VERSION + 1}`);
    future.close();

    let caught: unknown;
    try {
      openMetadataDb(path);
    } catch (err) {
      caught = err;
    }
    expect(isFailedPrecondition(caught)).toBe(true);
    expect((caught as Error).message).toBe(
      `metadata db ${path} has schema version ${METADATA_SCHEMA_VERSION + 1}, but this berth ` +
        `supports at most ${METADATA_SCHEMA_VERSION}: it was written by a newer berth; run that ` +
        'version or restore a copy from before the upgrade',
    );

    const after = raw(path);
    expect(after.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION + 1);
    expect(after.pragma('journal_mode', { simple: true })).toBe('delete');
  });

  it('works in memory for tests', () => {
    const db = openDb(':memory:');
    expect(db.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION);
  });

  it('enforces foreign keys on labels', () => {
    const db = openDb(join(tempDir(), 'meta.db'));
    expect(() => db.prepare("INSERT INTO namespace_labels VALUES ('ghost', 'k', 'v')").run()).toThrow(
      /FOREIGN KEY/,
    );
  });
});

describe('migrateSchema', () => {
  const tempDir = useTempDir();

  function seeded(): { db: MetadataDb; path: string } {
    const path = join(tempDir(), 'meta.db');
    const db = openMetadataDb(path);
    db.prepare("INSERT INTO namespaces VALUES ('ns', 1, 1)").run();
    db.prepare("INSERT INTO namespace_labels VALUES ('ns', 'k', 'v')").run();
    return { db, path };
  }

  it('rolls a failing step back entirely and keeps the old version', () => {
    const { db, path } = seeded();
    const broken: Migration = {
      description: 'half done',
      up(d) {
        d.exec('CREATE TABLE half_done (x INTEGER) STRICT');
        throw new Error('boom');
      },
    };
    try {
      expect(() => migrateSchema(db, path, [...metadataMigrations, broken])).toThrow(
        `metadata db ${path}: migration ${METADATA_SCHEMA_VERSION + 1} (half done) failed: boom`,
      );
      expect(db.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION);
      expect(db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'").pluck().get()).toBe(0);
    } finally {
      db.close();
    }
  });

  it('applies new steps in order, once', () => {
    const { db, path } = seeded();
    const applied: string[] = [];
    const step = (name: string): Migration => ({
      description: name,
      up: (d) => {
        applied.push(name);
        d.exec(`CREATE TABLE ${name} (x INTEGER) STRICT`);
      },
    });
    const list = [...metadataMigrations, step('second'), step('third')];
    try {
      migrateSchema(db, path, list);
      migrateSchema(db, path, list);
      expect(applied).toEqual(['second', 'third']);
      expect(db.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION + 2);
    } finally {
      db.close();
    }
  });

  it('rebuilds a parent table without cascading deletes into child rows', () => {
    const { db, path } = seeded();
    const rebuild: Migration = {
      description: 'rebuild namespaces',
      rebuildsTables: true,
      up(d) {
        d.exec(`
          CREATE TABLE namespaces_new (
            name TEXT NOT NULL PRIMARY KEY, created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL, note TEXT
          ) STRICT, WITHOUT ROWID;
          INSERT INTO namespaces_new (name, created_at, updated_at)
            SELECT name, created_at, updated_at FROM namespaces;
          DROP TABLE namespaces;
          ALTER TABLE namespaces_new RENAME TO namespaces;
        `);
      },
    };
    try {
      migrateSchema(db, path, [...metadataMigrations, rebuild]);
      expect(db.prepare('SELECT key, value FROM namespace_labels').all()).toEqual([{ key: 'k', value: 'v' }]);
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    } finally {
      db.close();
    }
  });
});

describe('migration 2: content, ingests, leases and images', () => {
  const tempDir = useTempDir();

  it('upgrades a version 1 database and keeps its namespaces', () => {
    const path = join(tempDir(), 'meta.db');
    const v1 = new Database(path);
    v1.pragma('journal_mode = WAL');
    v1.pragma('foreign_keys = ON');
    migrateSchema(v1, path, metadataMigrations.slice(0, 1));
    v1.prepare("INSERT INTO namespaces VALUES ('default', 1, 2)").run();
    v1.prepare("INSERT INTO namespace_labels VALUES ('default', 'containerd.io/defaults/snapshotter', 'overlayfs')").run();
    expect(v1.pragma('user_version', { simple: true })).toBe(1);
    v1.close();

    const db = openMetadataDb(path);
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION);
      expect(db.prepare('SELECT name, created_at, updated_at FROM namespaces').all()).toEqual([
        { name: 'default', created_at: 1, updated_at: 2 },
      ]);
      expect(db.prepare('SELECT key, value FROM namespace_labels').all()).toEqual([
        { key: 'containerd.io/defaults/snapshotter', value: 'overlayfs' },
      ]);
      const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();
      expect(tables).toEqual(
        expect.arrayContaining([
          'content_blobs',
          'content_blob_labels',
          'ingests',
          'leases',
          'lease_labels',
          'lease_resources',
          'images',
          'image_labels',
        ]),
      );
      expect(db.pragma('foreign_key_check')).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('reads gc labels through the partial indexes', () => {
    const db = openMetadataDb(':memory:');
    try {
      for (const [table, owner] of [
        ['content_blob_labels', 'digest'],
        ['image_labels', 'image_name'],
      ]) {
        const plan = db
          .prepare(
            `EXPLAIN QUERY PLAN SELECT namespace, ${owner}, key, value FROM ${table}
             WHERE key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/'`,
          )
          .all() as { detail: string }[];
        expect(plan.map((row) => row.detail).join('\n')).toMatch(/USING INDEX \w+_gc/);
      }
    } finally {
      db.close();
    }
  });

  it('keeps child rows consistent: labels and lease resources go with their owner', () => {
    const db = openMetadataDb(':memory:');
    try {
      db.exec(`
        INSERT INTO namespaces VALUES ('ns', 0, 0);
        INSERT INTO leases VALUES ('ns', 'l', 0);
        INSERT INTO lease_labels VALUES ('ns', 'l', 'k', 'v');
        INSERT INTO lease_resources VALUES ('ns', 'l', 'content', 'sha256:x');
        INSERT INTO images (namespace, name, target_media_type, target_digest, target_size, created_at, updated_at)
          VALUES ('ns', 'i', 'm', 'sha256:x', 1, 0, 0);
        INSERT INTO image_labels VALUES ('ns', 'i', 'k', 'v');
        DELETE FROM leases;
        DELETE FROM images;
      `);
      for (const table of ['lease_labels', 'lease_resources', 'image_labels']) {
        expect(db.prepare(`SELECT count(*) FROM ${table}`).pluck().get()).toBe(0);
      }
      expect(() => db.prepare("INSERT INTO lease_resources VALUES ('ns', 'ghost', 'content', 'x')").run()).toThrow(
        /FOREIGN KEY/,
      );
      expect(() =>
        db.prepare("INSERT INTO ingests (namespace, ref, shared_digest, created_at, updated_at) VALUES ('ns', 'r', 'sha256:x', 0, 0)").run(),
      ).toThrow(/CHECK/);
    } finally {
      db.close();
    }
  });
});

describe('migration 3: snapshots', () => {
  const tempDir = useTempDir();

  it('upgrades a version 2 database, keeping what it holds', () => {
    const path = join(tempDir(), 'meta.db');
    const v2 = new Database(path);
    v2.pragma('journal_mode = WAL');
    v2.pragma('foreign_keys = ON');
    migrateSchema(v2, path, metadataMigrations.slice(0, 2));
    v2.exec(`
      INSERT INTO namespaces VALUES ('default', 1, 2);
      INSERT INTO leases VALUES ('default', 'pull', 3);
      INSERT INTO lease_resources VALUES ('default', 'pull', 'snapshots/overlayfs', 'sha256:aa');
    `);
    v2.close();

    const db = openMetadataDb(path);
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION);
      expect(db.prepare('SELECT resource_id FROM lease_resources').pluck().all()).toEqual(['sha256:aa']);
      const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();
      expect(tables).toEqual(expect.arrayContaining(['snapshots', 'snapshot_labels', 'snapshot_sequences']));
      expect(db.pragma('foreign_key_check')).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('keeps parents, backend keys and labels consistent', () => {
    const db = openMetadataDb(':memory:');
    const insert = db.prepare('INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, 0, 0)');
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
        return undefined;
      } catch (err) {
        return (err as { code?: string }).code;
      }
    };
    try {
      db.exec("INSERT INTO namespaces VALUES ('a', 0, 0), ('b', 0, 0)");
      insert.run('a', 'overlayfs', 'base', 'a/1/base', null, 'committed');
      insert.run('a', 'overlayfs', 'child', 'a/2/child', 'base', 'active');
      // The same key in another namespace or snapshotter is another snapshot.
      insert.run('b', 'overlayfs', 'base', 'b/3/base', null, 'committed');
      insert.run('a', 'native', 'base', 'a/1/base-native', null, 'committed');
      expect(code(() => insert.run('a', 'overlayfs', 'base', 'a/9/base', null, 'committed'))).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
      expect(code(() => insert.run('a', 'overlayfs', 'other', 'a/1/base', null, 'committed'))).toBe('SQLITE_CONSTRAINT_UNIQUE');
      // Parents are namespace- and snapshotter-local; a parent with children stays.
      expect(code(() => insert.run('b', 'native', 'x', 'b/4/x', 'base', 'active'))).toBe('SQLITE_CONSTRAINT_FOREIGNKEY');
      expect(code(() => db.prepare("DELETE FROM snapshots WHERE namespace = 'a' AND snapshotter = 'overlayfs' AND key = 'base'").run())).toBe(
        'SQLITE_CONSTRAINT_FOREIGNKEY',
      );
      expect(code(() => insert.run('a', 'overlayfs', 'bad', 'a/5/bad', null, 'frozen'))).toBe('SQLITE_CONSTRAINT_CHECK');
      // Labels go with their snapshot; a namespace with snapshots cannot go.
      db.prepare("INSERT INTO snapshot_labels VALUES ('a', 'overlayfs', 'child', 'k', 'v')").run();
      db.prepare("DELETE FROM snapshots WHERE key = 'child'").run();
      expect(db.prepare('SELECT count(*) FROM snapshot_labels').pluck().get()).toBe(0);
      expect(code(() => db.prepare("DELETE FROM namespaces WHERE name = 'b'").run())).toBe('SQLITE_CONSTRAINT_FOREIGNKEY');
    } finally {
      db.close();
    }
  });

  it('reads snapshot gc labels through the partial index', () => {
    const db = openMetadataDb(':memory:');
    try {
      const plan = db
        .prepare(
          `EXPLAIN QUERY PLAN SELECT namespace, snapshot_key, key, value FROM snapshot_labels
           WHERE key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/' AND snapshotter = ?`,
        )
        .all('overlayfs') as { detail: string }[];
      expect(plan.map((row) => row.detail).join('\n')).toMatch(/USING INDEX snapshot_labels_gc/);
    } finally {
      db.close();
    }
  });
});
