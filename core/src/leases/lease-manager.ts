import type { Statement } from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { isValidDigest } from '../content/digest';
import { AlreadyExistsError, InvalidArgumentError, NotImplementedError } from '../errdefs';
import { adaptObject, parseFilters } from '../filters';
import { validateIdentifier, validateLabels } from '../metadata/identifiers';
import { LabelTable } from '../metadata/labels';
import { leaseNotFound, LeaseResourceTable } from '../metadata/lease-resources';
import type { SqliteMetadataStore } from '../metadata/metadata-store';
import { ensureNamespace, inReadTransaction, inWriteTransaction, sqliteCode } from '../metadata/transactions';
import type { Labels } from '../metadata/types';
import { formatRfc3339 } from './expiry';
import {
  GcLabels,
  type CreateLeaseOptions,
  type GarbageCollector,
  type Lease,
  type LeaseManager,
  type LeaseResource,
} from './types';

/** Longest lease id accepted, in bytes. */
export const MAX_LEASE_ID_LENGTH = 256;

// Printable ASCII without space and '/'. Not containerd's identifier rule:
// the Go client's WithRandomID makes ids like `123-ab_-` (base64url) that it
// would refuse, and containerd itself takes any non-empty id.
const leaseIdPattern = /^[\x21-\x2e\x30-\x7e]+$/;

/** Throws InvalidArgumentError for an id no lease may have. */
export function validateLeaseId(id: string): void {
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('lease id must not be empty');
  if (Buffer.byteLength(id, 'utf8') > MAX_LEASE_ID_LENGTH) {
    throw new InvalidArgumentError(`lease id: longer than ${MAX_LEASE_ID_LENGTH} characters`);
  }
  if (!leaseIdPattern.test(id)) {
    throw new InvalidArgumentError(`lease id ${JSON.stringify(id)}: only printable ASCII without spaces or '/' is allowed`);
  }
}

/**
 * Checks a resource the way containerd's lease manager does: `content` needs
 * a digest id, `ingests` any ref, `snapshots/<snapshotter>` a key; other
 * types are NotImplemented.
 */
export function validateLeaseResource(resource: LeaseResource): void {
  const { type, id } = resource;
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('lease resource id must not be empty');
  const [kind, ...rest] = typeof type === 'string' ? type.split('/') : [''];
  switch (kind) {
    case 'content':
    case 'ingests':
      if (rest.length > 0) throw new InvalidArgumentError(`invalid resource type ${JSON.stringify(type)}`);
      if (kind === 'content' && !isValidDigest(id)) {
        throw new InvalidArgumentError(`invalid content resource id ${JSON.stringify(id)}: not a digest`);
      }
      return;
    case 'snapshots':
      if (rest.length !== 1 || rest[0] === '') {
        throw new InvalidArgumentError(`invalid snapshot resource type ${JSON.stringify(type)}`);
      }
      return;
    default:
      throw new NotImplementedError(`resource type ${JSON.stringify(type)} not supported yet`);
  }
}

export interface SqliteLeaseManagerOptions {
  metadata: SqliteMetadataStore;
  /** Runs for `delete(…, { sync: true })` and is scheduled after other deletes. */
  gc?: GarbageCollector;
  /** Unix milliseconds; for tests. */
  clock?: () => number;
}

interface LeaseRow {
  id: string;
  created_at: number;
}

/** Leases in the metadata db (containerd's leases.Manager). */
export class SqliteLeaseManager implements LeaseManager {
  private readonly labels: LabelTable;
  private readonly resources: LeaseResourceTable;
  private readonly clock: () => number;
  private readonly sql: {
    insert: Statement<[string, string, number]>;
    remove: Statement<[string, string]>;
    list: Statement<[string], LeaseRow>;
  };

  constructor(private readonly options: SqliteLeaseManagerOptions) {
    const { db } = options.metadata;
    this.labels = new LabelTable(db, 'lease_labels', 'lease_id');
    this.resources = new LeaseResourceTable(db);
    this.clock = options.clock ?? Date.now;
    this.sql = {
      insert: db.prepare('INSERT INTO leases (namespace, id, created_at) VALUES (?, ?, ?)'),
      remove: db.prepare('DELETE FROM leases WHERE namespace = ? AND id = ?'),
      list: db.prepare('SELECT id, created_at FROM leases WHERE namespace = ? ORDER BY id'),
    };
  }

  private get db() {
    return this.options.metadata.db;
  }

  async create(namespace: string, options: CreateLeaseOptions = {}): Promise<Lease> {
    validateIdentifier('namespace', namespace);
    const id = options.id || generateLeaseId();
    validateLeaseId(id);
    const labels = leaseLabels(options);
    validateLabels(labels);
    return inWriteTransaction(this.db, () => {
      const now = this.clock();
      ensureNamespace(this.db, namespace, now);
      try {
        this.sql.insert.run(namespace, id, now);
      } catch (err) {
        if (sqliteCode(err) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new AlreadyExistsError(`lease ${JSON.stringify(id)}: already exists`, { cause: err });
        }
        throw err;
      }
      this.labels.replace(namespace, id, labels);
      return { id, createdAt: new Date(now), labels: this.labels.of(namespace, id) };
    });
  }

  async delete(namespace: string, id: string, options: { sync?: boolean } = {}): Promise<void> {
    inWriteTransaction(this.db, () => {
      if (this.sql.remove.run(namespace, id).changes === 0) throw leaseNotFound(id);
    });
    await this.collectGarbage(options.sync ?? false);
  }

  async list(namespace: string, filters: string[] = []): Promise<Lease[]> {
    const filter = parseFilters(filters);
    const leases = inReadTransaction(this.db, () => {
      const labels = this.labels.inNamespace(namespace);
      return this.sql.list.all(namespace).map((row) => ({
        id: row.id,
        createdAt: new Date(row.created_at),
        labels: labels.get(row.id) ?? {},
      }));
    });
    return leases.filter((lease) => filter.match(adaptObject({ id: lease.id, labels: lease.labels })));
  }

  async addResource(namespace: string, leaseId: string, resource: LeaseResource): Promise<void> {
    validateLeaseResource(resource);
    inWriteTransaction(this.db, () => this.resources.add(namespace, leaseId, resource));
  }

  /** Scheduling a collection: what the lease held may now be unreferenced. */
  async deleteResource(namespace: string, leaseId: string, resource: LeaseResource): Promise<void> {
    validateLeaseResource(resource);
    inWriteTransaction(this.db, () => {
      this.mustExist(namespace, leaseId);
      this.resources.remove(namespace, leaseId, resource);
    });
    await this.collectGarbage(false);
  }

  async listResources(namespace: string, leaseId: string): Promise<LeaseResource[]> {
    return inReadTransaction(this.db, () => {
      this.mustExist(namespace, leaseId);
      return this.resources.of(namespace, leaseId);
    });
  }

  private mustExist(namespace: string, leaseId: string): void {
    if (!this.resources.leaseExists(namespace, leaseId)) throw leaseNotFound(leaseId);
  }

  private async collectGarbage(sync: boolean): Promise<void> {
    const { gc } = this.options;
    if (!gc) return;
    if (sync) await gc.collect();
    else gc.schedule();
  }
}

function leaseLabels(options: CreateLeaseOptions): Labels {
  const labels: Labels = { ...options.labels };
  if (options.expiresAt !== undefined) {
    if (!(options.expiresAt instanceof Date) || Number.isNaN(options.expiresAt.getTime())) {
      throw new InvalidArgumentError('lease expiresAt must be a valid Date');
    }
    labels[GcLabels.expire] = formatRfc3339(options.expiresAt);
  }
  return labels;
}

/** Unique enough for a lease: creation time plus randomness, like the Go client's. */
function generateLeaseId(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}
