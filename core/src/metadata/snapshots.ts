import type { Statement } from 'better-sqlite3';
import { containerdEvents, packAny } from '@berth/proto';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  isAlreadyExists,
  isNotFound,
  NotFoundError,
} from '../errdefs';
import type { EventPublisher } from '../events/types';
import { formatField, formatValue } from '../filters';
import type { GcObject, GcSweeper } from '../gc/types';
import type { GarbageCollector } from '../leases/types';
import { silentLogger, type Logger } from '../log';
import { updatedLabels } from '../snapshots/labels';
import {
  isSnapshotCleaner,
  type Mount,
  type SnapshotCleaner,
  type SnapshotInfo,
  type SnapshotKind,
  type SnapshotOptions,
  type Snapshotter,
  type SnapshotService,
  type SnapshotUsage,
} from '../snapshots/types';
import { snapshotFilter } from '../snapshots/walk-filter';
import type { MetadataDb } from './db';
import type { GcGuard } from './gc-guard';
import { validateIdentifier, validateLabels } from './identifiers';
import { withoutEmptyValues } from './labels';
import { leaseNotFound, LeaseResourceTable } from './lease-resources';
import type { SqliteMetadataStore } from './metadata-store';
import { ensureNamespace, inReadTransaction, inWriteTransaction, sqliteCode } from './transactions';
import type { Labels } from './types';

/** Topics of snapshot events, as containerd publishes them. */
export const SnapshotTopics = {
  prepare: '/snapshot/prepare',
  commit: '/snapshot/commit',
  remove: '/snapshot/remove',
} as const;

/**
 * `containerd.io/snapshot.ref`: the chainID a snapshot is being prepared
 * for. When the namespace (or a remote backend) has it already, prepare
 * answers AlreadyExists and the caller skips the layer.
 */
export const SNAPSHOT_REF_LABEL = 'containerd.io/snapshot.ref';
/** Labels with this prefix reach the backend; the metadata db keeps all of them. */
export const INHERITED_SNAPSHOT_LABEL_PREFIX = 'containerd.io/snapshot/';

/** The labels containerd's metadata layer forwards to a backend snapshotter. */
export function inheritedSnapshotLabels(labels: Labels): Labels {
  return Object.fromEntries(
    Object.entries(labels).filter(([key]) => key.startsWith(INHERITED_SNAPSHOT_LABEL_PREFIX) || key === SNAPSHOT_REF_LABEL),
  );
}

/** What the backend snapshotter knows a namespace's snapshot as: `<namespace>/<seq>/<key>`. */
export function backendSnapshotKey(namespace: string, seq: number, key: string): string {
  return `${namespace}/${seq}/${key}`;
}

/** The lease resource type of a snapshotter's snapshots. */
export function snapshotResourceType(snapshotter: string): string {
  return `snapshots/${snapshotter}`;
}

/** The collector's hook: `registerSweeper` is MetadataGarbageCollector's. */
export type SnapshotGarbageCollector = Pick<GarbageCollector, 'schedule'> & {
  registerSweeper?(sweeper: GcSweeper): () => void;
};

export interface SqliteSnapshotServiceOptions {
  metadata: SqliteMetadataStore;
  /** The raw, namespace-less snapshotters, by name (their plugin ids). */
  snapshotters: ReadonlyMap<string, Snapshotter>;
  /** Used when no snapshotter is named. Default `overlayfs`. */
  defaultSnapshotter?: string;
  /** Where `/snapshot/prepare|commit|remove` go; nothing is published without one. */
  events?: EventPublisher;
  /**
   * Registers one sweeper per snapshotter and is asked for a collection
   * after a remove, which deletes the backend snapshot. Without one, remove
   * deletes it at once and nothing is garbage collected.
   */
  gc?: SnapshotGarbageCollector;
  logger?: Logger;
  /** Unix milliseconds; for tests. */
  clock?: () => number;
}

export const DEFAULT_SNAPSHOTTER = 'overlayfs';

interface SnapshotRow {
  namespace: string;
  key: string;
  backend_key: string;
  parent: string | null;
  kind: SnapshotKind;
  created_at: number;
  updated_at: number;
}

interface LabelRow {
  namespace: string;
  owner: string;
  key: string;
  value: string;
}

/** The statements over snapshots, snapshot_labels and snapshot_sequences. */
class SnapshotTables {
  readonly leaseResources: LeaseResourceTable;
  private readonly sql: {
    row: Statement<[string, string, string], SnapshotRow>;
    rows: Statement<[string, string], SnapshotRow>;
    rowsOf: Statement<[string], SnapshotRow>;
    backendKeys: Statement<[string], string>;
    insert: Statement<[string, string, string, string, string | null, SnapshotKind, number, number]>;
    remove: Statement<[string, string, string]>;
    hasChildren: Statement<[string, string, string], number>;
    touch: Statement<[number, string, string, string]>;
    nextSequence: Statement<[string], number>;
    labels: Statement<[string, string, string], LabelRow>;
    labelsIn: Statement<[string, string], LabelRow>;
    gcLabelsOf: Statement<[string], LabelRow>;
    clearLabels: Statement<[string, string, string]>;
    putLabel: Statement<[string, string, string, string, string]>;
  };

  constructor(readonly db: MetadataDb) {
    this.leaseResources = new LeaseResourceTable(db);
    const columns = 'namespace, key, backend_key, parent, kind, created_at, updated_at';
    this.sql = {
      row: db.prepare(`SELECT ${columns} FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?`),
      rows: db.prepare(`SELECT ${columns} FROM snapshots WHERE namespace = ? AND snapshotter = ? ORDER BY key`),
      rowsOf: db.prepare(`SELECT ${columns} FROM snapshots WHERE snapshotter = ?`),
      backendKeys: db.prepare<[string], string>('SELECT backend_key FROM snapshots WHERE snapshotter = ?').pluck(),
      insert: db.prepare(
        `INSERT INTO snapshots (namespace, snapshotter, key, backend_key, parent, kind, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      remove: db.prepare('DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?'),
      hasChildren: db
        .prepare<[string, string, string], number>(
          'SELECT EXISTS (SELECT 1 FROM snapshots WHERE namespace = ? AND snapshotter = ? AND parent = ?)',
        )
        .pluck(),
      touch: db.prepare('UPDATE snapshots SET updated_at = ? WHERE namespace = ? AND snapshotter = ? AND key = ?'),
      nextSequence: db
        .prepare<[string], number>(
          `INSERT INTO snapshot_sequences (snapshotter, value) VALUES (?, 1)
           ON CONFLICT (snapshotter) DO UPDATE SET value = value + 1 RETURNING value`,
        )
        .pluck(),
      labels: db.prepare(
        `SELECT namespace, snapshot_key AS owner, key, value FROM snapshot_labels
         WHERE namespace = ? AND snapshotter = ? AND snapshot_key = ? ORDER BY key`,
      ),
      labelsIn: db.prepare(
        `SELECT namespace, snapshot_key AS owner, key, value FROM snapshot_labels
         WHERE namespace = ? AND snapshotter = ? ORDER BY snapshot_key, key`,
      ),
      // The same range as the partial gc index, so it is used.
      gcLabelsOf: db.prepare(
        `SELECT namespace, snapshot_key AS owner, key, value FROM snapshot_labels
         WHERE key >= 'containerd.io/gc.' AND key < 'containerd.io/gc/' AND snapshotter = ?`,
      ),
      clearLabels: db.prepare('DELETE FROM snapshot_labels WHERE namespace = ? AND snapshotter = ? AND snapshot_key = ?'),
      putLabel: db.prepare(
        'INSERT INTO snapshot_labels (namespace, snapshotter, snapshot_key, key, value) VALUES (?, ?, ?, ?, ?)',
      ),
    };
  }

  row(namespace: string, snapshotter: string, key: string): SnapshotRow | undefined {
    return this.sql.row.get(namespace, snapshotter, key);
  }

  rows(namespace: string, snapshotter: string): SnapshotRow[] {
    return this.sql.rows.all(namespace, snapshotter);
  }

  /** Every namespace's snapshots of one snapshotter. */
  rowsOf(snapshotter: string): SnapshotRow[] {
    return this.sql.rowsOf.all(snapshotter);
  }

  backendKeys(snapshotter: string): Set<string> {
    return new Set(this.sql.backendKeys.all(snapshotter));
  }

  insert(snapshotter: string, row: SnapshotRow): void {
    this.sql.insert.run(
      row.namespace,
      snapshotter,
      row.key,
      row.backend_key,
      row.parent,
      row.kind,
      row.created_at,
      row.updated_at,
    );
  }

  remove(namespace: string, snapshotter: string, key: string): boolean {
    return this.sql.remove.run(namespace, snapshotter, key).changes > 0;
  }

  hasChildren(namespace: string, snapshotter: string, key: string): boolean {
    return this.sql.hasChildren.get(namespace, snapshotter, key) === 1;
  }

  touch(namespace: string, snapshotter: string, key: string, now: number): void {
    this.sql.touch.run(now, namespace, snapshotter, key);
  }

  nextSequence(snapshotter: string): number {
    return this.sql.nextSequence.get(snapshotter) as number;
  }

  labels(namespace: string, snapshotter: string, key: string): Labels {
    // Object.fromEntries, not assignment, so a `__proto__` key stays a label.
    return Object.fromEntries(this.sql.labels.all(namespace, snapshotter, key).map((row) => [row.key, row.value]));
  }

  /** Labels of a namespace's snapshots that have any, by key. */
  labelsIn(namespace: string, snapshotter: string): Map<string, Labels> {
    return groupLabels(this.sql.labelsIn.all(namespace, snapshotter), (row) => row.owner);
  }

  /** The `containerd.io/gc.*` labels of one snapshotter's snapshots, by ownerKey(namespace, key). */
  gcLabelsOf(snapshotter: string): Map<string, Labels> {
    return groupLabels(this.sql.gcLabelsOf.all(snapshotter), (row) => ownerKey(row.namespace, row.owner));
  }

  replaceLabels(namespace: string, snapshotter: string, key: string, labels: Labels): void {
    this.sql.clearLabels.run(namespace, snapshotter, key);
    for (const [label, value] of Object.entries(labels)) {
      if (value !== '') this.sql.putLabel.run(namespace, snapshotter, key, label, value);
    }
  }
}

function groupLabels(rows: LabelRow[], keyOf: (row: LabelRow) => string): Map<string, Labels> {
  const entries = new Map<string, [string, string][]>();
  for (const row of rows) {
    const key = keyOf(row);
    let list = entries.get(key);
    if (!list) entries.set(key, (list = []));
    list.push([row.key, row.value]);
  }
  return new Map([...entries].map(([key, list]) => [key, Object.fromEntries(list)]));
}

// NUL cannot appear in a namespace, snapshotter name or key, so these are unambiguous.
function ownerKey(namespace: string, key: string): string {
  return `${namespace}\u0000${key}`;
}

function busyKey(snapshotter: string, namespace: string, key: string): string {
  return `${snapshotter}\u0000${namespace}\u0000${key}`;
}

/**
 * containerd's metadata snapshotter over every loaded snapshotter: each
 * namespace has its own keys, kept in the metadata db with their labels,
 * parents and times, and the backend sees `<namespace>/<seq>/<key>` with
 * only the labels meant for it (`containerd.io/snapshot/*`,
 * `containerd.io/snapshot.ref`).
 *
 * Crash safety: a snapshot is created in the backend first and becomes
 * visible when the row naming it commits; removal deletes the row and
 * leaves the backend snapshot to the collector, whose sweeper deletes
 * backend snapshots no row names (then calls the backend's cleanup()). So a
 * crash at any point leaves, at worst, backend leftovers the next
 * collection removes. Backend calls run under the GcGuard `shared`, the
 * backend sweep `exclusive`, so the sweep never sees a snapshot between its
 * backend creation and its row.
 *
 *   const service = new SqliteSnapshotService({ metadata, snapshotters, gc, events });
 *   const sn = service.forNamespace('default', 'overlayfs', { lease: 'pull-1' });
 *   const mounts = await sn.prepare('extract-1 sha256:…', parentChainId);
 */
export class SqliteSnapshotService implements SnapshotService {
  readonly defaultName: string;
  private readonly tables: SnapshotTables;
  private readonly logger: Logger;
  private readonly guard: GcGuard;
  private readonly db: MetadataDb;
  private readonly context: ServiceContext;
  /** Keys a prepare/view/commit is working on: reserved names, and GC roots until it is done. */
  private readonly busy = new Set<string>();
  private readonly unregister: (() => void)[] = [];

  constructor(private readonly options: SqliteSnapshotServiceOptions) {
    this.defaultName = options.defaultSnapshotter || DEFAULT_SNAPSHOTTER;
    this.db = options.metadata.db;
    this.guard = options.metadata.gcGuard;
    this.tables = new SnapshotTables(this.db);
    this.logger = options.logger ?? silentLogger();
    this.context = {
      db: this.db,
      guard: this.guard,
      tables: this.tables,
      logger: this.logger,
      clock: options.clock ?? Date.now,
      events: options.events,
      gc: options.gc,
      reserve: (snapshotter, namespace, key, busyError) => this.reserve(snapshotter, namespace, key, busyError),
      isBusy: (snapshotter, namespace, key) => this.busy.has(busyKey(snapshotter, namespace, key)),
      cleanupBackend: (snapshotter) => this.cleanupBackend(snapshotter),
    };
    const { gc } = options;
    if (gc?.registerSweeper) {
      try {
        for (const name of options.snapshotters.keys()) this.unregister.push(gc.registerSweeper(this.sweeperFor(name)));
      } catch (err) {
        this.close();
        throw err;
      }
    }
  }

  names(): string[] {
    return [...this.options.snapshotters.keys()];
  }

  /**
   * The snapshots of `namespace` in `snapshotter` (default: defaultName);
   * what the view creates joins `lease` when given. InvalidArgument for a
   * bad namespace; NotFound when the snapshotter is not loaded.
   */
  forNamespace(namespace: string, snapshotter?: string, options: { lease?: string } = {}): NamespacedSnapshotter {
    validateIdentifier('namespace', namespace);
    const name = snapshotter || this.defaultName;
    const backend = this.backend(name);
    return new NamespacedSnapshotter(this.context, {
      namespace,
      snapshotter: name,
      lease: options.lease || undefined,
      backend,
    });
  }

  /** Unregisters the sweepers. The backends belong to their plugins and stay open. */
  close(): void {
    for (const unregister of this.unregister.splice(0)) unregister();
  }

  /**
   * Deletes the backend snapshots of `snapshotter` no namespace's row names
   * (children first), then runs the backend's own cleanup(). The collector
   * calls it after each collection; Snapshots.Cleanup calls it on demand.
   */
  async cleanupBackend(snapshotter: string): Promise<void> {
    const backend = this.backend(snapshotter);
    await this.guard.exclusive(async () => {
      const known = inReadTransaction(this.db, () => this.tables.backendKeys(snapshotter));
      const infos: SnapshotInfo[] = [];
      for await (const info of backend.walk()) infos.push(info);
      const parents = new Map(infos.map((info) => [info.name, info.parent]));
      const stale = infos.filter((info) => !known.has(info.name));
      const depth = depthsOf(parents);
      stale.sort((a, b) => depth(b.name) - depth(a.name));
      for (const info of stale) {
        try {
          await backend.remove(info.name);
          this.logger.debug({ snapshotter, key: info.name }, 'removed snapshot');
        } catch (err) {
          if (!isNotFound(err)) this.logger.warn({ err, snapshotter, key: info.name }, 'failed to remove snapshot');
        }
      }
    });
    if (isSnapshotCleaner(backend)) await backend.cleanup();
  }

  private reserve(snapshotter: string, namespace: string, key: string, busyError?: () => Error): () => void {
    const id = busyKey(snapshotter, namespace, key);
    if (this.busy.has(id)) {
      throw busyError?.() ?? new AlreadyExistsError(`snapshot ${JSON.stringify(key)}: already exists`);
    }
    this.busy.add(id);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.busy.delete(id);
    };
  }

  private backend(name: string): Snapshotter {
    const backend = this.options.snapshotters.get(name);
    if (!backend) throw new NotFoundError(`snapshotter ${JSON.stringify(name)}: not loaded`);
    return backend;
  }

  /**
   * The collector's view of one snapshotter's snapshots: labels carry roots
   * and references, a parent is a reference, and snapshots a call is still
   * working on are roots. Sweeping deletes rows, children first; cleanup()
   * then deletes what the backend holds that no row names.
   */
  private sweeperFor(snapshotter: string): GcSweeper {
    const type = snapshotResourceType(snapshotter);
    return {
      type,
      scan: () => {
        const labels = this.tables.gcLabelsOf(snapshotter);
        return this.tables.rowsOf(snapshotter).map((row): GcObject => {
          const object: GcObject = {
            namespace: row.namespace,
            id: row.key,
            labels: labels.get(ownerKey(row.namespace, row.key)) ?? {},
          };
          if (this.busy.has(busyKey(snapshotter, row.namespace, row.key))) object.root = true;
          if (row.parent !== null) object.references = [{ type, namespace: row.namespace, id: row.parent }];
          return object;
        });
      },
      sweep: (unreachable) => {
        const parents = new Map(
          unreachable.map((o) => [ownerKey(o.namespace, o.id), o.references?.[0] ? ownerKey(o.namespace, o.references[0].id) : '']),
        );
        const depth = depthsOf(parents);
        const ordered = [...unreachable].sort(
          (a, b) => depth(ownerKey(b.namespace, b.id)) - depth(ownerKey(a.namespace, a.id)),
        );
        let removed = 0;
        for (const object of ordered) if (this.tables.remove(object.namespace, snapshotter, object.id)) removed++;
        return removed;
      },
      cleanup: () => this.cleanupBackend(snapshotter),
    };
  }
}

/** Depth of each name in a parent map (0 when its parent is not in the map). */
function depthsOf(parents: ReadonlyMap<string, string>): (name: string) => number {
  const memo = new Map<string, number>();
  const depth = (name: string): number => {
    const known = memo.get(name);
    if (known !== undefined) return known;
    // Iterative, so a long chain cannot overflow the stack; a cycle (corrupt backend) stops.
    const chain: string[] = [];
    const seen = new Set<string>();
    let at: string | undefined = name;
    let base = 0;
    while (at !== undefined && parents.has(at) && !seen.has(at)) {
      const cached = memo.get(at);
      if (cached !== undefined) {
        base = cached + 1;
        break;
      }
      seen.add(at);
      chain.push(at);
      const parent = parents.get(at) as string;
      at = parent !== '' && parents.has(parent) ? parent : undefined;
    }
    for (let i = chain.length - 1; i >= 0; i--) memo.set(chain[i], base + (chain.length - 1 - i));
    return memo.get(name) ?? 0;
  };
  return depth;
}

/** What the service shares with its namespace views. */
interface ServiceContext {
  db: MetadataDb;
  guard: GcGuard;
  tables: SnapshotTables;
  logger: Logger;
  clock: () => number;
  events: EventPublisher | undefined;
  gc: SnapshotGarbageCollector | undefined;
  /**
   * Marks `key` as being worked on until the returned release is called;
   * AlreadyExists (or `busyError()`) when another call has it.
   */
  reserve(snapshotter: string, namespace: string, key: string, busyError?: () => Error): () => void;
  isBusy(snapshotter: string, namespace: string, key: string): boolean;
  cleanupBackend(snapshotter: string): Promise<void>;
}

interface ViewScope {
  namespace: string;
  snapshotter: string;
  lease: string | undefined;
  backend: Snapshotter;
}

function snapshotNotFound(key: string): NotFoundError {
  return new NotFoundError(`snapshot ${JSON.stringify(key)}: not found`);
}

function requireKey(what: string, value: string): void {
  if (typeof value !== 'string' || value === '') throw new InvalidArgumentError(`snapshot ${what} must not be empty`);
}

function toLocalInfo(row: SnapshotRow, labels: Labels): SnapshotInfo {
  return {
    kind: row.kind,
    name: row.key,
    parent: row.parent ?? '',
    labels,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

/** containerd's overlayInfo: the backend's info under the namespace's name, parent, times and labels. */
function overlayInfo(backend: SnapshotInfo, local: SnapshotInfo): SnapshotInfo {
  return { ...local, labels: { ...backend.labels, ...local.labels } };
}

/** Sentinel for "answer AlreadyExists after the transaction", so the lease it added stays. */
interface Exists {
  exists: string;
}

/**
 * One namespace's snapshots in one snapshotter. Cheap to make: a gRPC call
 * builds one per request.
 */
export class NamespacedSnapshotter implements Snapshotter, SnapshotCleaner {
  private readonly resourceType: string;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly scope: ViewScope,
  ) {
    this.resourceType = snapshotResourceType(scope.snapshotter);
  }

  get namespace(): string {
    return this.scope.namespace;
  }

  get snapshotter(): string {
    return this.scope.snapshotter;
  }

  private get db(): MetadataDb {
    return this.ctx.db;
  }

  async stat(key: string): Promise<SnapshotInfo> {
    const { local, backendKey } = this.local(key);
    return overlayInfo(await this.scope.backend.stat(backendKey), local);
  }

  async update(info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    requireKey('name', info.name);
    const { namespace, snapshotter, backend } = this.scope;
    const { tables, clock } = this.ctx;
    const requested = info.labels ?? {};
    const { local, backendKey } = this.local(info.name);
    // Checks the fieldpaths (InvalidArgument) before anything changes.
    const next = updatedLabels(local.labels, requested, fieldpaths);
    validateLabels(next);
    const backendInfo = await backend.update({ name: backendKey, labels: inheritedSnapshotLabels(next) }, fieldpaths);
    const updated = inWriteTransaction(this.db, () => {
      const row = tables.row(namespace, snapshotter, info.name);
      if (!row || row.backend_key !== backendKey) throw snapshotNotFound(info.name);
      // Applied to the labels as they are now, so a concurrent update is not lost.
      const labels = updatedLabels(tables.labels(namespace, snapshotter, info.name), requested, fieldpaths);
      const now = clock();
      tables.replaceLabels(namespace, snapshotter, info.name, labels);
      tables.touch(namespace, snapshotter, info.name, now);
      return toLocalInfo({ ...row, updated_at: now }, labels);
    });
    return overlayInfo(backendInfo, updated);
  }

  async usage(key: string): Promise<SnapshotUsage> {
    return this.scope.backend.usage(this.local(key).backendKey);
  }

  async mounts(key: string): Promise<Mount[]> {
    return this.scope.backend.mounts(this.local(key).backendKey);
  }

  async prepare(key: string, parent: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    const mounts = await this.create('active', key, parent, options);
    await this.publish(SnapshotTopics.prepare, packAny(containerdEvents.SnapshotPrepare, { key, parent }));
    return mounts;
  }

  async view(key: string, parent: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('view', key, parent, options);
  }

  async commit(name: string, key: string, options: SnapshotOptions = {}): Promise<void> {
    requireKey('name', name);
    requireKey('key', key);
    const labels = withoutEmptyValues(options.labels ?? {});
    validateLabels(labels);
    const { namespace, snapshotter, lease, backend } = this.scope;
    const { tables, clock, logger } = this.ctx;
    const releaseName = this.ctx.reserve(snapshotter, namespace, name);
    let releaseKey: (() => void) | undefined;
    try {
      releaseKey = this.ctx.reserve(
        snapshotter,
        namespace,
        key,
        () => new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is busy: another call is using it`),
      );
      await this.ctx.guard.shared(async () => {
        const plan = inWriteTransaction(this.db, (): Exists | { bname: string; bkey: string; parent: string | null } => {
          this.requireLease();
          if (tables.row(namespace, snapshotter, name)) {
            this.addToLease(name);
            return { exists: `snapshot ${JSON.stringify(name)}: already exists` };
          }
          const row = tables.row(namespace, snapshotter, key);
          if (!row) throw snapshotNotFound(key);
          if (row.kind !== 'active') {
            throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is not active: only active snapshots can be committed`);
          }
          const seq = tables.nextSequence(snapshotter);
          return { bname: backendSnapshotKey(namespace, seq, name), bkey: row.backend_key, parent: row.parent };
        });
        if ('exists' in plan) throw new AlreadyExistsError(plan.exists);
        await backend.commit(plan.bname, plan.bkey, { labels: inheritedSnapshotLabels(labels) });
        try {
          inWriteTransaction(this.db, () => {
            const row = tables.row(namespace, snapshotter, key);
            if (!row || row.backend_key !== plan.bkey) throw snapshotNotFound(key);
            const now = clock();
            tables.remove(namespace, snapshotter, key);
            tables.insert(snapshotter, {
              namespace,
              key: name,
              backend_key: plan.bname,
              parent: plan.parent,
              kind: 'committed',
              created_at: now,
              updated_at: now,
            });
            tables.replaceLabels(namespace, snapshotter, name, labels);
            if (lease) {
              tables.leaseResources.add(namespace, lease, { type: this.resourceType, id: name });
              tables.leaseResources.remove(namespace, lease, { type: this.resourceType, id: key });
            }
          });
        } catch (err) {
          // The backend has it under bname now; with no row naming it, the next collection removes it.
          logger.error(
            { err, snapshotter, namespace, key, name, backendKey: plan.bname },
            'uncommittable snapshot: the metadata transaction failed after the backend committed',
          );
          throw asAlreadyExists(err, name);
        }
      });
    } finally {
      releaseKey?.();
      releaseName();
    }
    await this.publish(SnapshotTopics.commit, packAny(containerdEvents.SnapshotCommit, { key, name }));
  }

  async remove(key: string): Promise<void> {
    requireKey('key', key);
    const { namespace, snapshotter, lease, backend } = this.scope;
    const { tables, gc, logger } = this.ctx;
    if (this.ctx.isBusy(snapshotter, namespace, key)) {
      throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is busy: another call is using it`);
    }
    const backendKey = inWriteTransaction(this.db, () => {
      const row = tables.row(namespace, snapshotter, key);
      if (!row) throw snapshotNotFound(key);
      if (tables.hasChildren(namespace, snapshotter, key)) {
        throw new FailedPreconditionError(`cannot remove snapshot ${JSON.stringify(key)}: it has children`);
      }
      tables.remove(namespace, snapshotter, key);
      if (lease) tables.leaseResources.remove(namespace, lease, { type: this.resourceType, id: key });
      return row.backend_key;
    });
    if (gc) {
      // As containerd: the backend snapshot goes with the next collection's backend sweep.
      gc.schedule();
    } else {
      await this.ctx.guard
        .shared(() => backend.remove(backendKey))
        .catch((err: unknown) => logger.warn({ err, snapshotter, key: backendKey }, 'failed to remove snapshot'));
    }
    await this.publish(SnapshotTopics.remove, packAny(containerdEvents.SnapshotRemove, { key }));
  }

  async *walk(filters: string[] = []): AsyncIterable<SnapshotInfo> {
    const matches = snapshotFilter(filters);
    const { namespace, snapshotter, backend } = this.scope;
    const { tables } = this.ctx;
    // Read everything first: a transaction must not stay open across yields.
    const pairs = inReadTransaction(this.db, () => {
      const labels = tables.labelsIn(namespace, snapshotter);
      return tables
        .rows(namespace, snapshotter)
        .map((row) => ({ backendKey: row.backend_key, local: toLocalInfo(row, labels.get(row.key) ?? {}) }));
    });
    for (const { backendKey, local } of pairs) {
      let backendInfo: SnapshotInfo;
      try {
        backendInfo = await backend.stat(backendKey);
      } catch (err) {
        // Removed since the read, or lost from the backend: not there to list.
        if (isNotFound(err)) continue;
        throw err;
      }
      const info = overlayInfo(backendInfo, local);
      if (matches(info)) yield info;
    }
  }

  /** Removes backend snapshots no namespace names (all namespaces: the backend is shared), then the backend's cleanup. */
  async cleanup(): Promise<void> {
    await this.ctx.cleanupBackend(this.scope.snapshotter);
  }

  /** Nothing to close: the backend belongs to its plugin. */
  async close(): Promise<void> {}

  private async create(kind: 'active' | 'view', key: string, parent: string, options: SnapshotOptions): Promise<Mount[]> {
    requireKey('key', key);
    if (typeof parent !== 'string') throw new InvalidArgumentError('snapshot parent must be a string');
    const labels = withoutEmptyValues(options.labels ?? {});
    validateLabels(labels);
    const target = labels[SNAPSHOT_REF_LABEL] ?? '';
    const { namespace, snapshotter, lease, backend } = this.scope;
    const { tables, clock } = this.ctx;
    const release = this.ctx.reserve(snapshotter, namespace, key);
    try {
      return await this.ctx.guard.shared(async () => {
        const plan = inWriteTransaction(this.db, (): Exists | { bkey: string; bparent: string } => {
          this.requireLease();
          // The target chain is there already: the caller skips this layer, and its lease keeps it.
          if (target && tables.row(namespace, snapshotter, target)) {
            this.addToLease(target);
            return { exists: `target snapshot ${JSON.stringify(target)}: already exists` };
          }
          if (tables.row(namespace, snapshotter, key)) {
            this.addToLease(key);
            return { exists: `snapshot ${JSON.stringify(key)}: already exists` };
          }
          const bparent = parent === '' ? '' : this.committedParent(parent).backend_key;
          ensureNamespace(this.db, namespace, clock());
          return { bkey: backendSnapshotKey(namespace, tables.nextSequence(snapshotter), key), bparent };
        });
        if ('exists' in plan) throw new AlreadyExistsError(plan.exists);
        const backendOptions = { labels: inheritedSnapshotLabels(labels) };
        let mounts: Mount[];
        try {
          mounts =
            kind === 'active'
              ? await backend.prepare(plan.bkey, plan.bparent, backendOptions)
              : await backend.view(plan.bkey, plan.bparent, backendOptions);
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
          // A remote snapshotter that has the target chain answers AlreadyExists.
          if (target) throw await this.adoptTarget(target, parent, plan.bparent, labels);
          throw new InternalError(`unexpected error from snapshotter ${JSON.stringify(snapshotter)}: ${errorMessage(err)}`, {
            cause: err,
          });
        }
        try {
          inWriteTransaction(this.db, () => {
            if (parent !== '' && this.committedParent(parent).backend_key !== plan.bparent) {
              throw new NotFoundError(`parent snapshot ${JSON.stringify(parent)}: not found`);
            }
            const now = clock();
            asAlreadyExistsSync(key, () =>
              tables.insert(snapshotter, {
                namespace,
                key,
                backend_key: plan.bkey,
                parent: parent === '' ? null : parent,
                kind,
                created_at: now,
                updated_at: now,
              }),
            );
            tables.replaceLabels(namespace, snapshotter, key, labels);
            this.addToLease(key);
          });
        } catch (err) {
          await backend.remove(plan.bkey).catch((removeErr: unknown) =>
            this.ctx.logger.warn({ err: removeErr, snapshotter, key: plan.bkey }, 'failed to remove unreferenced snapshot'),
          );
          throw err;
        }
        return mounts;
      });
    } finally {
      release();
    }
  }

  /**
   * containerd's remote-snapshotter path: the backend has a committed
   * snapshot labelled with `target` on the same parent, so the namespace
   * records it under `target` and the caller is told it exists.
   */
  private async adoptTarget(target: string, parent: string, bparent: string, labels: Labels): Promise<Error> {
    const { namespace, snapshotter, backend } = this.scope;
    const { tables } = this.ctx;
    const filter = `${formatField(`labels.${SNAPSHOT_REF_LABEL}`)}==${formatValue(target)},parent==${formatValue(bparent)}`;
    let found: SnapshotInfo | undefined;
    for await (const info of backend.walk([filter])) {
      // Checked again in case the backend did not filter.
      if (!found && info.kind === 'committed' && info.labels[SNAPSHOT_REF_LABEL] === target && info.parent === bparent) {
        found = info;
      }
    }
    if (!found) return new NotFoundError(`target snapshot ${JSON.stringify(target)} in backend: not found`);
    const adopted = found;
    const release = this.ctx.reserve(snapshotter, namespace, target);
    try {
      inWriteTransaction(this.db, () => {
        if (!tables.row(namespace, snapshotter, target)) {
          if (parent !== '' && this.committedParent(parent).backend_key !== bparent) {
            throw new InvalidArgumentError(`mismatched parent ${JSON.stringify(parent)} from target ${JSON.stringify(target)}`);
          }
          tables.insert(snapshotter, {
            namespace,
            key: target,
            backend_key: adopted.name,
            parent: parent === '' ? null : parent,
            kind: 'committed',
            created_at: adopted.createdAt.getTime(),
            updated_at: adopted.updatedAt.getTime(),
          });
          tables.replaceLabels(namespace, snapshotter, target, { ...adopted.labels, ...labels });
        }
        this.addToLease(target);
      });
    } finally {
      release();
    }
    return new AlreadyExistsError(`target snapshot ${JSON.stringify(target)} from snapshotter: already exists`);
  }

  /** The namespace's view of `key` and its backend key; NotFound if absent. */
  private local(key: string): { local: SnapshotInfo; backendKey: string } {
    if (typeof key !== 'string' || key === '') throw snapshotNotFound(key);
    const { namespace, snapshotter } = this.scope;
    const { tables } = this.ctx;
    return inReadTransaction(this.db, () => {
      const row = tables.row(namespace, snapshotter, key);
      if (!row) throw snapshotNotFound(key);
      return { local: toLocalInfo(row, tables.labels(namespace, snapshotter, key)), backendKey: row.backend_key };
    });
  }

  /** Inside a transaction: NotFound if absent, InvalidArgument if not committed (as the backends answer). */
  private committedParent(parent: string): SnapshotRow {
    const row = this.ctx.tables.row(this.scope.namespace, this.scope.snapshotter, parent);
    if (!row) throw new NotFoundError(`parent snapshot ${JSON.stringify(parent)}: not found`);
    if (row.kind !== 'committed') {
      throw new InvalidArgumentError(`parent snapshot ${JSON.stringify(parent)} is not committed`);
    }
    return row;
  }

  private requireLease(): void {
    const { namespace, lease } = this.scope;
    if (lease && !this.ctx.tables.leaseResources.leaseExists(namespace, lease)) throw leaseNotFound(lease);
  }

  private addToLease(key: string): void {
    const { namespace, lease } = this.scope;
    if (lease) this.ctx.tables.leaseResources.add(namespace, lease, { type: this.resourceType, id: key });
  }

  private async publish(topic: string, event: ReturnType<typeof packAny>): Promise<void> {
    await this.ctx.events?.publish(this.scope.namespace, topic, event);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isUniqueViolation(err: unknown): boolean {
  const code = sqliteCode(err);
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

function asAlreadyExistsSync(key: string, write: () => void): void {
  try {
    write();
  } catch (err) {
    throw asAlreadyExists(err, key);
  }
}

function asAlreadyExists(err: unknown, key: string): unknown {
  return isUniqueViolation(err)
    ? new AlreadyExistsError(`snapshot ${JSON.stringify(key)}: already exists`, { cause: err })
    : err;
}
