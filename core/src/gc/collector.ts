import type { Statement } from 'better-sqlite3';
import type { ContentStore } from '../content/types';
import { InvalidArgumentError, isNotFound, UnavailableError } from '../errdefs';
import { leaseExpiry } from '../leases/expiry';
import { GcLabels, type GarbageCollector, type GcStats } from '../leases/types';
import { silentLogger, type Logger } from '../log';
import { backendIngestRef } from '../metadata/content';
import type { MetadataDb } from '../metadata/db';
import type { SqliteMetadataStore } from '../metadata/metadata-store';
import { inReadTransaction, inWriteTransaction } from '../metadata/transactions';
import type { Labels } from '../metadata/types';
import { isGcRoot, labelReferences, ResourceSet } from './references';
import type { GcObject, GcResource, GcSweeper } from './types';

/** Default wait between a `schedule()` and the collection, so a burst of deletes costs one run. */
export const DEFAULT_GC_SCHEDULE_DELAY_MS = 50;
/** Default period of background collections. */
export const DEFAULT_GC_INTERVAL_MS = 5 * 60 * 1000;

export interface MetadataGarbageCollectorOptions {
  metadata: SqliteMetadataStore;
  /** The raw content store whose unreferenced blobs and ingests are deleted. */
  content: ContentStore;
  scheduleDelayMs?: number;
  /** 0 turns background collections off. */
  intervalMs?: number;
  logger?: Logger;
  /** Unix milliseconds; for tests. */
  clock?: () => number;
}

/** What the metadata phase decided; the backend phase acts on it after the commit. */
interface MetadataSweep {
  contentRemoved: number;
  ingestsRemoved: number;
  leasesExpired: number;
  snapshotsRemoved: number;
  sweepers: GcSweeper[];
}

/**
 * containerd's metadata garbage collector: mark and sweep over the metadata db.
 *
 * Roots: images (their target and `gc.ref.*` labels), containers (their
 * snapshot and `gc.ref.*` labels), leases that have not
 * expired (everything they hold), objects labelled `containerd.io/gc.root`,
 * ingests that have not expired or have a live writer, and whatever
 * sweepers declare. References follow `containerd.io/gc.ref.content[.<x>]`
 * and `containerd.io/gc.ref.snapshot.<snapshotter>` labels transitively,
 * within a namespace; a lease labelled `containerd.io/gc.flat` keeps what it
 * holds but not what that references.
 *
 * One collection: mark and remove records in a single write transaction
 * (expired leases, unreachable content records and ingests, sweepers'
 * objects), then, with the GcGuard held exclusively, delete raw blobs no
 * namespace records and raw ingests no namespace names.
 */
export class MetadataGarbageCollector implements GarbageCollector {
  private readonly db: MetadataDb;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly scheduleDelayMs: number;
  private readonly sweepers = new Map<string, GcSweeper>();
  private scheduled: NodeJS.Timeout | undefined;
  private readonly interval: NodeJS.Timeout | undefined;
  private running: Promise<GcStats> | undefined;
  private queued: Promise<GcStats> | undefined;
  private closed = false;

  constructor(private readonly options: MetadataGarbageCollectorOptions) {
    this.db = options.metadata.db;
    this.logger = options.logger ?? silentLogger();
    this.clock = options.clock ?? Date.now;
    this.scheduleDelayMs = nonNegative('scheduleDelayMs', options.scheduleDelayMs ?? DEFAULT_GC_SCHEDULE_DELAY_MS);
    const intervalMs = nonNegative('intervalMs', options.intervalMs ?? DEFAULT_GC_INTERVAL_MS);
    if (intervalMs > 0) {
      // unref: a pending collection must not keep an embedding process alive.
      this.interval = setInterval(() => this.collectInBackground('interval'), intervalMs).unref();
    }
  }

  /**
   * Hands objects of `sweeper.type` to `sweeper`. Returns a function that
   * unregisters it. InvalidArgument for a type taken already or built in.
   */
  registerSweeper(sweeper: GcSweeper): () => void {
    if (sweeper.type === 'content' || sweeper.type === 'ingests' || this.sweepers.has(sweeper.type)) {
      throw new InvalidArgumentError(`a garbage collection sweeper for ${JSON.stringify(sweeper.type)} exists already`);
    }
    this.sweepers.set(sweeper.type, sweeper);
    return () => {
      if (this.sweepers.get(sweeper.type) === sweeper) this.sweepers.delete(sweeper.type);
    };
  }

  /**
   * Runs a collection. If one is under way it may have marked before the
   * caller's change, so the caller gets the next one, shared with everyone
   * else who asks meanwhile.
   */
  collect(): Promise<GcStats> {
    if (this.closed) return Promise.reject(new UnavailableError('garbage collector is closed'));
    if (!this.running) return this.start();
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        if (this.closed) throw new UnavailableError('garbage collector is closed');
        return this.running ?? this.start();
      });
    return this.queued;
  }

  /** Collects after the schedule delay; calls meanwhile share that run. */
  schedule(): void {
    if (this.closed || this.scheduled) return;
    this.scheduled = setTimeout(() => {
      this.scheduled = undefined;
      this.collectInBackground('scheduled');
    }, this.scheduleDelayMs).unref();
  }

  /** Stops the timers and waits for a running collection. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.scheduled) clearTimeout(this.scheduled);
    this.scheduled = undefined;
    if (this.interval) clearInterval(this.interval);
    await Promise.allSettled([this.running, this.queued]);
  }

  private start(): Promise<GcStats> {
    const run = this.collectOnce().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }

  private collectInBackground(why: string): void {
    if (this.closed) return;
    this.collect().then(
      (stats) => this.logger.debug({ ...stats, why }, 'garbage collected'),
      (err: unknown) => this.logger.warn({ err, why }, 'garbage collection failed'),
    );
  }

  private async collectOnce(): Promise<GcStats> {
    const started = performance.now();
    const sweep = inWriteTransaction(this.db, () => this.markAndSweep(this.clock()));
    const blobsRemoved = await this.removeUnreferencedBlobs();
    await this.abortUnreferencedIngests();
    for (const sweeper of sweep.sweepers) {
      await sweeper.cleanup?.().catch((err: unknown) => {
        this.logger.warn({ err, type: sweeper.type }, 'garbage collection sweeper cleanup failed');
      });
    }
    return {
      contentRemoved: sweep.contentRemoved,
      blobsRemoved,
      ingestsRemoved: sweep.ingestsRemoved,
      snapshotsRemoved: sweep.snapshotsRemoved,
      leasesExpired: sweep.leasesExpired,
      durationMs: performance.now() - started,
    };
  }

  /** The metadata phase; runs inside one write transaction. */
  private markAndSweep(now: number): MetadataSweep {
    const { gcGuard } = this.options.metadata;
    const graph = new MetadataGraph(this.db, now, [...this.sweepers.values()], (ref) => gcGuard.isIngestHeld(ref));
    const reachable = graph.mark();
    const unreachable = <T extends { namespace: string; id: string }>(type: string, all: T[]) =>
      all.filter((item) => !reachable.has({ type, namespace: item.namespace, id: item.id }));

    const leasesExpired = graph.removeLeases(graph.expiredLeases);
    const contentRemoved = graph.removeContent(unreachable('content', graph.contentRecords));
    const ingestsRemoved = graph.removeIngests(unreachable('ingests', graph.ingests));
    let snapshotsRemoved = 0;
    for (const [sweeper, objects] of graph.sweeperObjects) {
      const gone = unreachable(sweeper.type, objects);
      const removed = gone.length > 0 ? sweeper.sweep(gone) : 0;
      if (sweeper.type.startsWith('snapshots/')) snapshotsRemoved += removed;
    }
    return { contentRemoved, ingestsRemoved, leasesExpired, snapshotsRemoved, sweepers: [...graph.sweeperObjects.keys()] };
  }

  /**
   * Deletes raw blobs no namespace records and no shared ingest is about to
   * link. The raw store is walked without the guard (it may be large); each
   * candidate is checked again under it, where no commit is half done.
   */
  private async removeUnreferencedBlobs(): Promise<number> {
    const { content, metadata } = this.options;
    const referenced = this.db.prepare(
      `SELECT EXISTS (SELECT 1 FROM content_blobs WHERE digest = @digest)
           OR EXISTS (SELECT 1 FROM ingests WHERE shared_digest = @digest)`,
    ).pluck();
    const isReferenced = (digest: string) => inReadTransaction(this.db, () => referenced.get({ digest }) === 1);
    const candidates: string[] = [];
    for await (const info of content.walk()) if (!isReferenced(info.digest)) candidates.push(info.digest);
    if (candidates.length === 0) return 0;
    return metadata.gcGuard.exclusive(async () => {
      let removed = 0;
      for (const digest of candidates) {
        if (isReferenced(digest)) continue;
        try {
          await content.delete(digest);
          removed++;
        } catch (err) {
          if (!isNotFound(err)) this.logger.warn({ err, digest }, 'garbage collection could not delete a blob');
        }
      }
      return removed;
    });
  }

  /**
   * Aborts raw ingests no namespace's ingest row names (the collector removed
   * the row, the namespace went, or a crash left them), unless a writer is live.
   */
  private async abortUnreferencedIngests(): Promise<void> {
    const { content, metadata } = this.options;
    const rowCount = this.db.prepare('SELECT count(*) FROM ingests WHERE namespace = ? AND ref = ?').pluck();
    const isReferenced = (backendRef: string) => {
      if (metadata.gcGuard.isIngestHeld(backendRef)) return true;
      const slash = backendRef.indexOf('/');
      if (slash < 0) return false;
      const [namespace, ref] = [backendRef.slice(0, slash), backendRef.slice(slash + 1)];
      return backendIngestRef(namespace, ref) === backendRef && inReadTransaction(this.db, () => rowCount.get(namespace, ref) !== 0);
    };
    const candidates = (await content.listStatuses()).map((s) => s.ref).filter((ref) => !isReferenced(ref));
    if (candidates.length === 0) return;
    await metadata.gcGuard.exclusive(async () => {
      for (const ref of candidates) {
        if (isReferenced(ref)) continue;
        await content.abort(ref).catch((err: unknown) => {
          if (!isNotFound(err)) this.logger.warn({ err, ref }, 'garbage collection could not abort an ingest');
        });
      }
    });
  }
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError(`${name} must be a non-negative number, got ${value}`);
  return value;
}

interface Owned {
  namespace: string;
  id: string;
}

interface LeaseRow extends Owned {
  flat: boolean;
}

interface IngestRow extends Owned {
  expires_at: number | null;
}

/** Everything the mark phase reads, loaded inside the collector's transaction. */
class MetadataGraph {
  readonly contentRecords: Owned[];
  readonly ingests: IngestRow[];
  readonly liveLeases: LeaseRow[] = [];
  readonly expiredLeases: Owned[] = [];
  readonly sweeperObjects = new Map<GcSweeper, GcObject[]>();
  private readonly contentLabels: Map<string, Labels>;
  /** Sweepers' objects by type, then by owner key. */
  private readonly objectIndex = new Map<string, Map<string, GcObject>>();

  constructor(
    private readonly db: MetadataDb,
    private readonly now: number,
    sweepers: GcSweeper[],
    /** Whether a writer in this process is using the backend ingest. */
    private readonly isHeld: (backendRef: string) => boolean,
  ) {
    this.contentRecords = db.prepare('SELECT namespace, digest AS id FROM content_blobs').all() as Owned[];
    this.contentLabels = gcLabelsOf(db, 'content_blob_labels', 'digest');
    this.ingests = db.prepare('SELECT namespace, ref AS id, expires_at FROM ingests').all() as IngestRow[];
    const leaseLabels = labelsOf(
      db.prepare(
        `SELECT namespace, lease_id AS owner, key, value FROM lease_labels WHERE key IN ('${GcLabels.expire}', '${GcLabels.flat}')`,
      ),
    );
    for (const lease of db.prepare('SELECT namespace, id FROM leases').all() as Owned[]) {
      const labels = leaseLabels.get(ownerKey(lease.namespace, lease.id)) ?? {};
      const expiry = leaseExpiry(labels);
      if (expiry !== undefined && expiry <= now) this.expiredLeases.push(lease);
      else this.liveLeases.push({ ...lease, flat: Object.prototype.hasOwnProperty.call(labels, GcLabels.flat) });
    }
    for (const sweeper of sweepers) {
      const objects = [...sweeper.scan()];
      this.sweeperObjects.set(sweeper, objects);
      this.objectIndex.set(sweeper.type, new Map(objects.map((o) => [ownerKey(o.namespace, o.id), o])));
    }
  }

  mark(): ResourceSet {
    const reachable = new ResourceSet();
    const queue: GcResource[] = [];
    const reach = (resource: GcResource) => {
      if (reachable.add(resource)) queue.push(resource);
    };
    this.forEachRoot(reach);
    while (queue.length > 0) for (const next of this.referencesOf(queue.pop() as GcResource)) reach(next);
    // Last, so that reaching them does not follow their references; an object
    // also reached from elsewhere was followed above.
    for (const resource of this.heldBy(this.liveLeases.filter((lease) => lease.flat))) reachable.add(resource);
    return reachable;
  }

  removeLeases(leases: Owned[]): number {
    const remove = this.db.prepare('DELETE FROM leases WHERE namespace = ? AND id = ?');
    for (const lease of leases) remove.run(lease.namespace, lease.id);
    return leases.length;
  }

  removeContent(records: Owned[]): number {
    const remove = this.db.prepare('DELETE FROM content_blobs WHERE namespace = ? AND digest = ?');
    for (const record of records) remove.run(record.namespace, record.id);
    return records.length;
  }

  removeIngests(ingests: Owned[]): number {
    const remove = this.db.prepare('DELETE FROM ingests WHERE namespace = ? AND ref = ?');
    for (const ingest of ingests) remove.run(ingest.namespace, ingest.id);
    return ingests.length;
  }

  private forEachRoot(reach: (resource: GcResource) => void): void {
    const images = this.db.prepare('SELECT namespace, name AS id, target_digest FROM images').all() as (Owned & {
      target_digest: string;
    })[];
    const imageLabels = gcLabelsOf(this.db, 'image_labels', 'image_name');
    for (const image of images) {
      reach({ type: 'content', namespace: image.namespace, id: image.target_digest });
      const labels = imageLabels.get(ownerKey(image.namespace, image.id)) ?? {};
      for (const ref of labelReferences(image.namespace, labels)) reach(ref);
    }
    const containers = this.db
      .prepare('SELECT namespace, id, snapshotter, snapshot_key FROM containers')
      .all() as (Owned & { snapshotter: string; snapshot_key: string })[];
    const containerLabels = gcLabelsOf(this.db, 'container_labels', 'container_id');
    for (const container of containers) {
      if (container.snapshotter !== '' && container.snapshot_key !== '') {
        reach({ type: `snapshots/${container.snapshotter}`, namespace: container.namespace, id: container.snapshot_key });
      }
      const labels = containerLabels.get(ownerKey(container.namespace, container.id)) ?? {};
      for (const ref of labelReferences(container.namespace, labels)) reach(ref);
    }
    for (const resource of this.heldBy(this.liveLeases.filter((lease) => !lease.flat))) reach(resource);
    for (const record of this.contentRecords) {
      if (isGcRoot(this.contentLabels.get(ownerKey(record.namespace, record.id)) ?? {})) {
        reach({ type: 'content', namespace: record.namespace, id: record.id });
      }
    }
    for (const ingest of this.ingests) {
      const backendRef = backendIngestRef(ingest.namespace, ingest.id);
      if ((ingest.expires_at !== null && ingest.expires_at > this.now) || this.isHeld(backendRef)) {
        reach({ type: 'ingests', namespace: ingest.namespace, id: ingest.id });
      }
    }
    for (const [sweeper, objects] of this.sweeperObjects) {
      for (const object of objects) {
        if (object.root || isGcRoot(object.labels)) reach({ type: sweeper.type, namespace: object.namespace, id: object.id });
      }
    }
  }

  private referencesOf(resource: GcResource): GcResource[] {
    if (resource.type === 'content') {
      return labelReferences(resource.namespace, this.contentLabels.get(ownerKey(resource.namespace, resource.id)) ?? {});
    }
    const object = this.objectIndex.get(resource.type)?.get(ownerKey(resource.namespace, resource.id));
    return object ? [...labelReferences(object.namespace, object.labels), ...(object.references ?? [])] : [];
  }

  private heldBy(leases: Owned[]): GcResource[] {
    const select = this.db.prepare('SELECT type, resource_id AS id FROM lease_resources WHERE namespace = ? AND lease_id = ?');
    return leases.flatMap((lease) =>
      (select.all(lease.namespace, lease.id) as { type: string; id: string }[]).map((row) => ({
        type: row.type,
        namespace: lease.namespace,
        id: row.id,
      })),
    );
  }
}

function ownerKey(namespace: string, owner: string): string {
  return `${namespace}\u0000${owner}`;
}

/** The `containerd.io/gc.*` labels of a label table, by owner. */
function gcLabelsOf(db: MetadataDb, table: string, ownerColumn: string): Map<string, Labels> {
  // The same range as the tables' partial gc indexes, so they are used.
  return labelsOf(
    db.prepare(
      `SELECT namespace, ${ownerColumn} AS owner, key, value FROM ${table}
       WHERE key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/'`,
    ),
  );
}

interface OwnedLabelRow {
  namespace: string;
  owner: string;
  key: string;
  value: string;
}

function labelsOf(statement: Statement<[], OwnedLabelRow>): Map<string, Labels> {
  const entries = new Map<string, [string, string][]>();
  for (const row of statement.all()) {
    const key = ownerKey(row.namespace, row.owner);
    let list = entries.get(key);
    if (!list) entries.set(key, (list = []));
    list.push([row.key, row.value]);
  }
  return new Map([...entries].map(([key, list]) => [key, Object.fromEntries(list)]));
}
