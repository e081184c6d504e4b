import type { Statement } from 'better-sqlite3';
import { NotFoundError } from '../errdefs';
import type { LeaseResource } from '../leases/types';
import type { MetadataDb } from './db';
import { sqliteCode } from './transactions';

export function leaseNotFound(leaseId: string): NotFoundError {
  return new NotFoundError(`lease ${JSON.stringify(leaseId)}: not found`);
}

/** Rows of `lease_resources`, shared by the lease manager and the stores that add to leases. */
export class LeaseResourceTable {
  private readonly sql: {
    exists: Statement<[string, string], { found: number }>;
    add: Statement<[string, string, string, string]>;
    remove: Statement<[string, string, string, string]>;
    of: Statement<[string, string], LeaseResource>;
  };

  constructor(db: MetadataDb) {
    this.sql = {
      exists: db.prepare('SELECT 1 AS found FROM leases WHERE namespace = ? AND id = ?'),
      add: db.prepare(
        `INSERT INTO lease_resources (namespace, lease_id, type, resource_id) VALUES (?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
      ),
      remove: db.prepare(
        'DELETE FROM lease_resources WHERE namespace = ? AND lease_id = ? AND type = ? AND resource_id = ?',
      ),
      of: db.prepare(
        'SELECT resource_id AS id, type FROM lease_resources WHERE namespace = ? AND lease_id = ? ORDER BY type, resource_id',
      ),
    };
  }

  leaseExists(namespace: string, leaseId: string): boolean {
    return this.sql.exists.get(namespace, leaseId) !== undefined;
  }

  /** Idempotent; NotFound if the lease does not exist. */
  add(namespace: string, leaseId: string, resource: LeaseResource): void {
    try {
      this.sql.add.run(namespace, leaseId, resource.type, resource.id);
    } catch (err) {
      if (sqliteCode(err) === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw leaseNotFound(leaseId);
      throw err;
    }
  }

  /** Idempotent: removing what the lease does not hold is not an error. */
  remove(namespace: string, leaseId: string, resource: LeaseResource): void {
    this.sql.remove.run(namespace, leaseId, resource.type, resource.id);
  }

  of(namespace: string, leaseId: string): LeaseResource[] {
    return this.sql.of.all(namespace, leaseId).map((row) => ({ id: row.id, type: row.type }));
  }
}
