import type { Statement } from 'better-sqlite3';
import type { Readable } from 'node:stream';
import { containerdEvents, packAny } from '@berth/proto';
import { validateDigest } from '../content/digest';
import type {
  ContentInfo,
  ContentStore,
  ContentWriter,
  IngestStatus,
  NamespacedContentStore,
  ReadOptions,
  WriterOptions,
} from '../content/types';
import {
  AlreadyExistsError,
  InvalidArgumentError,
  isNotFound,
  NotFoundError,
  UnavailableError,
} from '../errdefs';
import type { EventPublisher } from '../events/types';
import { adaptObject, parseFilters } from '../filters';
import type { GarbageCollector } from '../leases/types';
import { NamespacedContentWriter, type SharedBlob, type WriterContext } from './content-writer';
import type { GcGuard } from './gc-guard';
import { validateIdentifier, validateLabels } from './identifiers';
import { applyLabelPaths, LabelTable } from './labels';
import { LeaseResourceTable } from './lease-resources';
import type { SqliteMetadataStore } from './metadata-store';
import { ensureNamespace, inReadTransaction, inWriteTransaction } from './transactions';
import type { Labels } from './types';

/** Topics of content events, as containerd publishes them. */
export const ContentTopics = {
  delete: '/content/delete',
} as const;

/**
 * How long an ingest no lease holds survives its last writer, as in
 * containerd: long enough to resume an interrupted pull, short enough that
 * abandoned ones do not pile up.
 */
export const DEFAULT_INGEST_EXPIRY_MS = 24 * 60 * 60 * 1000;

/**
 * containerd's `content_sharing_policy`. `shared`: a writer that names a
 * digest the raw store holds (for any namespace) links it without sending
 * the bytes. `isolated`: the bytes must be written in every namespace, so
 * knowing a digest grants nothing.
 */
export type ContentSharingPolicy = 'shared' | 'isolated';

export interface SqliteNamespacedContentStoreOptions {
  metadata: SqliteMetadataStore;
  /** The raw, namespace-less store that holds the bytes (e.g. LocalContentStore). */
  content: ContentStore;
  /** Where `/content/delete` goes; nothing is published without one. */
  events?: EventPublisher;
  /** Asked for a collection after a delete; without one, the next scheduled run removes the blob. */
  gc?: Pick<GarbageCollector, 'schedule'>;
  /** Default `shared`, as containerd. */
  contentSharingPolicy?: ContentSharingPolicy;
  ingestExpiryMs?: number;
  /** Unix milliseconds; for tests. */
  clock?: () => number;
}

/** The name of a namespace's ingest in the raw store: namespaces cannot contain '/', so none collide. */
export function backendIngestRef(namespace: string, ref: string): string {
  return `${namespace}/${ref}`;
}

interface RecordRow {
  digest: string;
  size: number;
  created_at: number;
  updated_at: number;
}

interface IngestRow {
  ref: string;
  shared_digest: string | null;
  shared_size: number | null;
  created_at: number;
  updated_at: number;
  expires_at: number | null;
}

/** The statements over content_blobs and ingests, prepared once per store. */
export class ContentTables {
  readonly labels: LabelTable;
  readonly leaseResources: LeaseResourceTable;
  private readonly sql: {
    record: Statement<[string, string], RecordRow>;
    records: Statement<[string], RecordRow>;
    insertRecord: Statement<[string, string, number, number, number]>;
    touchRecord: Statement<[number, string, string]>;
    deleteRecord: Statement<[string, string]>;
    ingest: Statement<[string, string], IngestRow>;
    ingests: Statement<[string], IngestRow>;
    putIngest: Statement<[string, string, string | null, number | null, number, number, number | null]>;
    unshareIngest: Statement<[number, string, string]>;
    deleteIngest: Statement<[string, string]>;
  };

  constructor(readonly db: SqliteMetadataStore['db']) {
    this.labels = new LabelTable(db, 'content_blob_labels', 'digest');
    this.leaseResources = new LeaseResourceTable(db);
    const recordColumns = 'digest, size, created_at, updated_at';
    const ingestColumns = 'ref, shared_digest, shared_size, created_at, updated_at, expires_at';
    this.sql = {
      record: db.prepare(`SELECT ${recordColumns} FROM content_blobs WHERE namespace = ? AND digest = ?`),
      records: db.prepare(`SELECT ${recordColumns} FROM content_blobs WHERE namespace = ? ORDER BY digest`),
      insertRecord: db.prepare(
        `INSERT INTO content_blobs (namespace, digest, size, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
      ),
      touchRecord: db.prepare('UPDATE content_blobs SET updated_at = ? WHERE namespace = ? AND digest = ?'),
      deleteRecord: db.prepare('DELETE FROM content_blobs WHERE namespace = ? AND digest = ?'),
      ingest: db.prepare(`SELECT ${ingestColumns} FROM ingests WHERE namespace = ? AND ref = ?`),
      ingests: db.prepare(`SELECT ${ingestColumns} FROM ingests WHERE namespace = ? ORDER BY ref`),
      // A resumed write keeps its start time.
      putIngest: db.prepare(
        `INSERT INTO ingests (namespace, ref, shared_digest, shared_size, created_at, updated_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (namespace, ref) DO UPDATE SET shared_digest = excluded.shared_digest,
           shared_size = excluded.shared_size, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
      ),
      unshareIngest: db.prepare(
        'UPDATE ingests SET shared_digest = NULL, shared_size = NULL, updated_at = ? WHERE namespace = ? AND ref = ?',
      ),
      deleteIngest: db.prepare('DELETE FROM ingests WHERE namespace = ? AND ref = ?'),
    };
  }

  record(namespace: string, digest: string): RecordRow | undefined {
    return this.sql.record.get(namespace, digest);
  }

  records(namespace: string): RecordRow[] {
    return this.sql.records.all(namespace);
  }

  /** False if the namespace already had the record. */
  insertRecord(namespace: string, digest: string, size: number, now: number): boolean {
    return this.sql.insertRecord.run(namespace, digest, size, now, now).changes > 0;
  }

  touchRecord(namespace: string, digest: string, now: number): void {
    this.sql.touchRecord.run(now, namespace, digest);
  }

  deleteRecord(namespace: string, digest: string): boolean {
    return this.sql.deleteRecord.run(namespace, digest).changes > 0;
  }

  ingest(namespace: string, ref: string): IngestRow | undefined {
    return this.sql.ingest.get(namespace, ref);
  }

  ingests(namespace: string): IngestRow[] {
    return this.sql.ingests.all(namespace);
  }

  putIngest(namespace: string, ref: string, shared: SharedBlob | undefined, now: number, expiresAt: number | null): void {
    this.sql.putIngest.run(namespace, ref, shared?.digest ?? null, shared?.size ?? null, now, now, expiresAt);
  }

  unshareIngest(namespace: string, ref: string, now: number): void {
    this.sql.unshareIngest.run(now, namespace, ref);
  }

  deleteIngest(namespace: string, ref: string): boolean {
    return this.sql.deleteIngest.run(namespace, ref).changes > 0;
  }
}

/**
 * Content per namespace over one raw ContentStore, with containerd's
 * "shared" policy: the raw store keeps one copy of each blob, and the
 * metadata db records which namespaces may see it, with their own labels.
 * A blob becomes visible in a namespace when a writer there commits it; if
 * the raw store has it already, that writer only links it (no bytes move).
 * Deleting removes the namespace's record; the garbage collector removes the
 * raw blob once no namespace records it.
 */
export class SqliteNamespacedContentStore implements NamespacedContentStore {
  private readonly tables: ContentTables;

  constructor(private readonly options: SqliteNamespacedContentStoreOptions) {
    this.tables = new ContentTables(options.metadata.db);
  }

  /** InvalidArgument for a bad namespace name. */
  forNamespace(namespace: string, options: { lease?: string } = {}): ContentStore {
    validateIdentifier('namespace', namespace);
    const { metadata, content, events, gc } = this.options;
    return new NamespacedContentView({
      namespace,
      lease: options.lease || undefined,
      tables: this.tables,
      raw: content,
      guard: metadata.gcGuard,
      events,
      gc,
      sharing: this.options.contentSharingPolicy ?? 'shared',
      ingestExpiryMs: this.options.ingestExpiryMs ?? DEFAULT_INGEST_EXPIRY_MS,
      clock: this.options.clock ?? Date.now,
    });
  }
}

interface ViewContext {
  namespace: string;
  lease: string | undefined;
  tables: ContentTables;
  raw: ContentStore;
  guard: GcGuard;
  events: EventPublisher | undefined;
  gc: Pick<GarbageCollector, 'schedule'> | undefined;
  sharing: ContentSharingPolicy;
  ingestExpiryMs: number;
  clock: () => number;
}

function contentNotFound(digest: string): NotFoundError {
  return new NotFoundError(`content digest ${digest}: not found`);
}

function ingestNotFound(ref: string): NotFoundError {
  return new NotFoundError(`ingest ref ${JSON.stringify(ref)}: not found`);
}

/** One namespace's ContentStore; what it writes joins `lease` when set. */
class NamespacedContentView implements ContentStore {
  constructor(private readonly ctx: ViewContext) {}

  private get db() {
    return this.ctx.tables.db;
  }

  async info(digest: string): Promise<ContentInfo> {
    validateDigest(digest);
    const { namespace, tables } = this.ctx;
    return inReadTransaction(this.db, () => {
      const row = tables.record(namespace, digest);
      if (!row) throw contentNotFound(digest);
      return toInfo(row, tables.labels.of(namespace, digest));
    });
  }

  async update(info: { digest: string; labels: Labels }, fieldpaths: string[] = []): Promise<ContentInfo> {
    const { namespace, tables, clock } = this.ctx;
    const { digest } = info;
    validateDigest(digest);
    return inWriteTransaction(this.db, () => {
      const row = tables.record(namespace, digest);
      if (!row) throw contentNotFound(digest);
      const paths = fieldpaths.length > 0 ? fieldpaths : ['labels'];
      const { labels, otherPaths } = applyLabelPaths(tables.labels.of(namespace, digest), info.labels ?? {}, paths);
      if (otherPaths.length > 0) {
        throw new InvalidArgumentError(`cannot update ${JSON.stringify(otherPaths[0])} field on content info ${digest}`);
      }
      validateLabels(labels);
      const now = clock();
      tables.labels.replace(namespace, digest, labels);
      tables.touchRecord(namespace, digest, now);
      return toInfo({ ...row, updated_at: now }, labels);
    });
  }

  async *walk(filters: string[] = []): AsyncIterable<ContentInfo> {
    const filter = parseFilters(filters);
    const { namespace, tables } = this.ctx;
    // Read everything first: a transaction must not stay open across yields.
    const infos = inReadTransaction(this.db, () => {
      const labels = tables.labels.inNamespace(namespace);
      return tables.records(namespace).map((row) => toInfo(row, labels.get(row.digest) ?? {}));
    });
    for (const info of infos) {
      if (filter.match(adaptObject({ digest: info.digest, size: String(info.size), labels: info.labels }))) yield info;
    }
  }

  async delete(digest: string): Promise<void> {
    validateDigest(digest);
    const { namespace, lease, tables, events, gc } = this.ctx;
    inWriteTransaction(this.db, () => {
      if (!tables.deleteRecord(namespace, digest)) throw contentNotFound(digest);
      if (lease) tables.leaseResources.remove(namespace, lease, { type: 'content', id: digest });
    });
    await events?.publish(namespace, ContentTopics.delete, packAny(containerdEvents.ContentDelete, { digest }));
    gc?.schedule();
  }

  async read(digest: string, options?: ReadOptions): Promise<Readable> {
    validateDigest(digest);
    if (!inReadTransaction(this.db, () => this.ctx.tables.record(this.ctx.namespace, digest))) {
      throw contentNotFound(digest);
    }
    return this.ctx.raw.read(digest, options);
  }

  async writer(options: WriterOptions): Promise<ContentWriter> {
    const { ref } = options;
    if (typeof ref !== 'string' || ref === '') throw new InvalidArgumentError('ref must not be empty');
    const expectedDigest = options.expected?.digest || '';
    const expectedSize = options.expected?.size || 0;
    if (expectedDigest) validateDigest(expectedDigest, 'expected digest');
    if (!Number.isSafeInteger(expectedSize) || expectedSize < 0) {
      throw new InvalidArgumentError(`expected size ${expectedSize}: must be a non-negative integer`);
    }
    const { namespace, lease, tables, guard } = this.ctx;
    const backendRef = backendIngestRef(namespace, ref);
    return guard.shared(async () => {
      if (expectedDigest && this.holdIfPresent(expectedDigest)) {
        throw new AlreadyExistsError(`content ${expectedDigest}: already exists`);
      }
      const release = guard.tryHoldIngest(backendRef);
      if (!release) throw new UnavailableError(`ref ${JSON.stringify(ref)} locked: another writer is using it`);
      try {
        if (lease && !inReadTransaction(this.db, () => tables.leaseResources.leaseExists(namespace, lease))) {
          throw new NotFoundError(`lease ${JSON.stringify(lease)}: not found`);
        }
        const present = expectedDigest ? await this.rawBlob(expectedDigest) : undefined;
        const shared =
          present && this.ctx.sharing === 'shared' && (expectedSize === 0 || expectedSize === present.size)
            ? present
            : undefined;
        // Naming a digest the raw store holds would make it refuse the writer; the bytes must flow here.
        const rawExpected = present ? { size: options.expected?.size } : options.expected;
        const raw = shared ? undefined : await this.ctx.raw.writer({ ref: backendRef, expected: rawExpected });
        try {
          const startedAt = this.recordIngest(ref, shared);
          return new NamespacedContentWriter(this.writerContext(ref, backendRef, release), { raw, shared, startedAt });
        } catch (err) {
          await raw?.close();
          throw err;
        }
      } catch (err) {
        release();
        throw err;
      }
    });
  }

  async status(ref: string): Promise<IngestStatus> {
    const row = inReadTransaction(this.db, () => this.ctx.tables.ingest(this.ctx.namespace, ref));
    if (!row) throw ingestNotFound(ref);
    const status = await this.statusOf(row);
    if (!status) throw ingestNotFound(ref);
    return status;
  }

  async listStatuses(filters: string[] = []): Promise<IngestStatus[]> {
    const filter = parseFilters(filters);
    const rows = inReadTransaction(this.db, () => this.ctx.tables.ingests(this.ctx.namespace));
    const statuses: IngestStatus[] = [];
    for (const row of rows) {
      const status = await this.statusOf(row);
      if (status && filter.match(adaptObject({ ref: status.ref }))) statuses.push(status);
    }
    return statuses;
  }

  async abort(ref: string): Promise<void> {
    const { namespace, lease, tables, guard, raw } = this.ctx;
    await guard.shared(async () => {
      inWriteTransaction(this.db, () => {
        if (!tables.deleteIngest(namespace, ref)) throw ingestNotFound(ref);
        if (lease) tables.leaseResources.remove(namespace, lease, { type: 'ingests', id: ref });
      });
      // A shared ingest never wrote to the raw store, so there may be nothing to abort there.
      await raw.abort(backendIngestRef(namespace, ref)).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    });
  }

  /**
   * True if the namespace has `digest` already; then, as containerd does, the
   * view's lease takes it too, so the caller's AlreadyExists still leaves it held.
   */
  private holdIfPresent(digest: string): boolean {
    const { namespace, lease, tables } = this.ctx;
    const present = () => tables.record(namespace, digest) !== undefined;
    if (!lease) return inReadTransaction(this.db, present);
    return inWriteTransaction(this.db, () => {
      if (!present()) return false;
      tables.leaseResources.add(namespace, lease, { type: 'content', id: digest });
      return true;
    });
  }

  /** The raw store's blob, if it has one. */
  private async rawBlob(digest: string): Promise<SharedBlob | undefined> {
    try {
      const info = await this.ctx.raw.info(digest);
      return { digest, size: info.size };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Creates or refreshes the ingest row; returns when the write started. */
  private recordIngest(ref: string, shared: SharedBlob | undefined): Date {
    const { namespace, lease, tables, clock, ingestExpiryMs } = this.ctx;
    return inWriteTransaction(this.db, () => {
      const now = clock();
      ensureNamespace(this.db, namespace, now);
      tables.putIngest(namespace, ref, shared, now, lease ? null : now + ingestExpiryMs);
      if (lease) tables.leaseResources.add(namespace, lease, { type: 'ingests', id: ref });
      return new Date((tables.ingest(namespace, ref) as IngestRow).created_at);
    });
  }

  private writerContext(ref: string, backendRef: string, release: () => void): WriterContext {
    const { namespace, lease, tables, raw, guard, clock } = this.ctx;
    return { namespace, lease, ref, backendRef, tables, raw, guard, clock, release };
  }

  private async statusOf(row: IngestRow): Promise<IngestStatus | undefined> {
    if (row.shared_digest !== null && row.shared_size !== null) {
      return {
        ref: row.ref,
        offset: row.shared_size,
        total: row.shared_size,
        expected: row.shared_digest,
        startedAt: new Date(row.created_at),
        updatedAt: new Date(row.updated_at),
      };
    }
    try {
      const status = await this.ctx.raw.status(backendIngestRef(this.ctx.namespace, row.ref));
      return { ...status, ref: row.ref };
    } catch (err) {
      // The row outlived its raw ingest (a crash between the two); nothing to resume.
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}

function toInfo(row: RecordRow, labels: Labels): ContentInfo {
  return {
    digest: row.digest,
    size: row.size,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    labels,
  };
}
