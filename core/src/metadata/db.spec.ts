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
