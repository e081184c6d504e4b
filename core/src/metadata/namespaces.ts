import type { Statement } from 'better-sqlite3';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  NotFoundError,
  UnavailableError,
} from '../errdefs';
import type { MetadataDb } from './db';
import { validateIdentifier, validateLabel, validateLabels } from './identifiers';
import type { Labels, Namespace, NamespaceStore, NamespaceUsageCheck } from './types';

interface LabelRow {
  namespace: string;
  key: string;
  value: string;
}

function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function notFound(name: string): NotFoundError {
  return new NotFoundError(`namespace ${JSON.stringify(name)}: not found`);
}

/**
 * Namespaces in the metadata db. The work is synchronous (better-sqlite3);
 * methods are async to fit NamespaceStore and turn throws into rejections.
 */
export class SqliteNamespaceStore implements NamespaceStore {
  private readonly usageChecks: NamespaceUsageCheck[] = [];
  private readonly sql: {
    insert: Statement<[string, number, number]>;
    exists: Statement<[string], { found: number }>;
    touch: Statement<[number, string]>;
    remove: Statement<[string]>;
    names: Statement<[], { name: string }>;
    labelsOf: Statement<[string], LabelRow>;
    allLabels: Statement<[], LabelRow>;
    putLabel: Statement<[string, string, string]>;
    removeLabel: Statement<[string, string]>;
    clearLabels: Statement<[string]>;
  };

  constructor(private readonly db: MetadataDb) {
    this.sql = {
      insert: db.prepare('INSERT INTO namespaces (name, created_at, updated_at) VALUES (?, ?, ?)'),
      exists: db.prepare('SELECT 1 AS found FROM namespaces WHERE name = ?'),
      touch: db.prepare('UPDATE namespaces SET updated_at = ? WHERE name = ?'),
      remove: db.prepare('DELETE FROM namespaces WHERE name = ?'),
      names: db.prepare('SELECT name FROM namespaces ORDER BY name'),
      labelsOf: db.prepare(
        'SELECT namespace, key, value FROM namespace_labels WHERE namespace = ? ORDER BY key',
      ),
      allLabels: db.prepare('SELECT namespace, key, value FROM namespace_labels ORDER BY namespace, key'),
      putLabel: db.prepare(
        `INSERT INTO namespace_labels (namespace, key, value) VALUES (?, ?, ?)
         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value`,
      ),
      removeLabel: db.prepare('DELETE FROM namespace_labels WHERE namespace = ? AND key = ?'),
      clearLabels: db.prepare('DELETE FROM namespace_labels WHERE namespace = ?'),
    };
  }

  /**
   * Registers a check run inside the delete transaction, so nothing can be
   * added to the namespace between the check and the delete.
   */
  addUsageCheck(check: NamespaceUsageCheck): void {
    this.usageChecks.push(check);
  }

  async create(name: string, labels: Labels = {}): Promise<void> {
    validateIdentifier('namespace', name);
    validateLabels(labels);
    this.write(() => {
      const now = Date.now();
      try {
        this.sql.insert.run(name, now, now);
      } catch (err) {
        if (sqliteCode(err) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new AlreadyExistsError(`namespace ${JSON.stringify(name)}: already exists`, { cause: err });
        }
        throw err;
      }
      this.putLabels(name, labels);
    });
  }

  async labels(name: string): Promise<Labels> {
    return this.read(() => {
      this.mustExist(name);
      return Object.fromEntries(this.sql.labelsOf.all(name).map((row) => [row.key, row.value]));
    });
  }

  async list(): Promise<Namespace[]> {
    return this.read(() => {
      // Object.fromEntries, not assignment, so a `__proto__` key stays a label.
      const labelsByName = new Map<string, [string, string][]>();
      for (const row of this.sql.allLabels.all()) {
        let entries = labelsByName.get(row.namespace);
        if (!entries) labelsByName.set(row.namespace, (entries = []));
        entries.push([row.key, row.value]);
      }
      return this.sql.names.all().map(({ name }) => ({
        name,
        labels: Object.fromEntries(labelsByName.get(name) ?? []),
      }));
    });
  }

  async setLabel(name: string, key: string, value: string): Promise<void> {
    validateLabel(key, value);
    this.write(() => {
      this.mustExist(name);
      if (value === '') this.sql.removeLabel.run(name, key);
      else this.sql.putLabel.run(name, key, value);
      this.sql.touch.run(Date.now(), name);
    });
  }

  async setLabels(name: string, labels: Labels): Promise<void> {
    validateLabels(labels);
    this.write(() => {
      this.mustExist(name);
      this.sql.clearLabels.run(name);
      this.putLabels(name, labels);
      this.sql.touch.run(Date.now(), name);
    });
  }

  async delete(name: string): Promise<void> {
    this.write(() => {
      this.mustExist(name);
      const inUse = this.usageChecks
        .map((check) => check(name))
        .filter((what): what is string => typeof what === 'string' && what !== '');
      if (inUse.length > 0) throw this.notEmpty(name, inUse.join(', '));
      try {
        this.sql.remove.run(name);
      } catch (err) {
        // A table referencing the namespace whose store registered no usage
        // check: SQLite still refuses, and the caller still gets the right kind.
        if (sqliteCode(err) === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw this.notEmpty(name, 'resources', err);
        throw err;
      }
    });
  }

  /** Stores labels, skipping empty values, which mean "no label" as in setLabel. */
  private putLabels(name: string, labels: Labels): void {
    for (const [key, value] of Object.entries(labels)) {
      if (value !== '') this.sql.putLabel.run(name, key, value);
    }
  }

  private mustExist(name: string): void {
    if (!this.sql.exists.get(name)) throw notFound(name);
  }

  private notEmpty(name: string, what: string, cause?: unknown): FailedPreconditionError {
    return new FailedPreconditionError(
      `namespace ${JSON.stringify(name)} must be empty, but it still has ${what}`,
      cause === undefined ? undefined : { cause },
    );
  }

  private write(work: () => void): void {
    this.ensureOpen();
    // IMMEDIATE takes the write lock up front, so a concurrent writer in
    // another process waits on busy_timeout instead of failing mid-transaction.
    this.db.transaction(work).immediate();
  }

  private read<T>(work: () => T): T {
    this.ensureOpen();
    // One snapshot for multi-statement reads such as list().
    return this.db.transaction(work).deferred();
  }

  private ensureOpen(): void {
    if (!this.db.open) throw new UnavailableError('metadata database is closed');
  }
}
