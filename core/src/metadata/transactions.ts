import type { Statement } from 'better-sqlite3';
import { UnavailableError } from '../errdefs';
import type { MetadataDb } from './db';

/** The SQLite extended result code of a better-sqlite3 error, e.g. `SQLITE_CONSTRAINT_PRIMARYKEY`. */
export function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Runs `work` in an IMMEDIATE transaction: the write lock is taken up front, so
 * a writer in another process waits on busy_timeout instead of failing midway.
 */
export function inWriteTransaction<T>(db: MetadataDb, work: () => T): T {
  ensureOpen(db);
  return db.transaction(work).immediate();
}

/** Runs `work` in one read snapshot, for reads spanning several statements. */
export function inReadTransaction<T>(db: MetadataDb, work: () => T): T {
  ensureOpen(db);
  return db.transaction(work).deferred();
}

function ensureOpen(db: MetadataDb): void {
  if (!db.open) throw new UnavailableError('metadata database is closed');
}

const insertNamespace = new WeakMap<MetadataDb, Statement<[string, number, number]>>();

/**
 * Creates namespace `name` if absent. As in containerd, writing a resource
 * into a namespace brings the namespace into being; the caller validated the name.
 */
export function ensureNamespace(db: MetadataDb, name: string, now: number): void {
  let statement = insertNamespace.get(db);
  if (!statement) {
    statement = db.prepare(
      'INSERT INTO namespaces (name, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING',
    );
    insertNamespace.set(db, statement);
  }
  statement.run(name, now, now);
}
