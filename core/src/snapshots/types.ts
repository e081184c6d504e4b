import type { Labels } from '../metadata/types';

/** A mount as containerd describes it: what `mount(8)` would be given. */
export interface Mount {
  /** `bind`, `overlay`, ... */
  type: string;
  source: string;
  /** Optional sub-path target inside the mount point (containerd 1.7+); usually empty. */
  target?: string;
  options: string[];
}

/**
 * Kinds of snapshot. Active snapshots are writable and have a `key`; committed
 * ones are read-only, have a `name`, and are the only valid parents; views are
 * read-only actives.
 */
export type SnapshotKind = 'view' | 'active' | 'committed';

export interface SnapshotInfo {
  kind: SnapshotKind;
  /** Key (active/view) or name (committed). Keys and names share one space. */
  name: string;
  /** Name of the committed parent, '' for none. */
  parent: string;
  labels: Labels;
  createdAt: Date;
  updatedAt: Date;
}

export interface SnapshotUsage {
  /** Inodes used. */
  inodes: number;
  /** Bytes used on disk. */
  size: number;
}

export interface SnapshotOptions {
  labels?: Labels;
}

/**
 * containerd's Snapshotter. Lifecycle of a layer import:
 *
 *   mounts = await s.prepare('extract-1', parentName)   // active, writable
 *   ...mount, apply the layer, unmount...
 *   await s.commit('layer-chainid', 'extract-1')         // now committed, a parent
 *
 * and of a container rootfs: `prepare('ctr-rootfs', topLayerName)`, mount the
 * returned mounts, run, then `remove('ctr-rootfs')`.
 */
export interface Snapshotter {
  /** NotFound if absent. */
  stat(key: string): Promise<SnapshotInfo>;
  /** Updates labels (`labels`, `labels.<k>` fieldpaths; none = replace). NotFound if absent. */
  update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo>;
  /** Disk usage; for an active snapshot computed now, for committed recorded at commit. */
  usage(key: string): Promise<SnapshotUsage>;
  /** Mounts of an active snapshot or view. NotFound if absent; FailedPrecondition for committed. */
  mounts(key: string): Promise<Mount[]>;
  /**
   * New active snapshot `key` on `parent` (committed, or '' for none). AlreadyExists if
   * key is taken (by a key or a committed name); NotFound if `parent` does not exist;
   * InvalidArgument if it is not committed (as containerd's storage answers).
   */
  prepare(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]>;
  /** New read-only view `key` on `parent`; errors as for prepare. Views cannot be committed. */
  view(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]>;
  /**
   * Turns active `key` into committed `name` (same parent; `key` is gone after).
   * NotFound if `key` is absent; FailedPrecondition if it is not active; AlreadyExists
   * if `name` is taken. `options.labels` become the labels: nothing is inherited, and
   * created/updated times restart.
   */
  commit(name: string, key: string, options?: SnapshotOptions): Promise<void>;
  /** NotFound if absent; FailedPrecondition if it has children. */
  remove(key: string): Promise<void>;
  /** Every snapshot matching any filter (fields `kind`, `name`, `parent`, `labels.<k>`). */
  walk(filters?: string[]): AsyncIterable<SnapshotInfo>;
  close(): Promise<void>;
}

/** Optional ability: reclaim disk space of removed snapshots (called after GC). */
export interface SnapshotCleaner {
  cleanup(): Promise<void>;
}

export function isSnapshotCleaner(s: unknown): s is SnapshotCleaner {
  return typeof (s as Partial<SnapshotCleaner>)?.cleanup === 'function';
}

/** Token under which each snapshotter plugin binds itself, named by id. */
export const Snapshotter = Symbol.for('io.berth.Snapshotter');

/**
 * Snapshots seen through namespaces, over every loaded snapshotter: keys are
 * per namespace (two namespaces may both use key `k`), as containerd's
 * metadata layer keeps them (`<ns>/<id>/<key>` in the backend). Snapshots a
 * view creates are added to `lease` when one is given.
 */
export interface SnapshotService {
  /** Ids of the loaded snapshotters (`overlayfs`, `native`, proxies...). */
  names(): string[];
  /** The snapshotter used when none is named (config; default `overlayfs`). */
  readonly defaultName: string;
  /** NotFound naming the snapshotter when it is not loaded. */
  forNamespace(namespace: string, snapshotter?: string, options?: { lease?: string }): Snapshotter;
}
export const SnapshotService = Symbol.for('io.berth.SnapshotService');
