import type { Labels } from '../metadata/types';

/**
 * A resource the collector tracks, named as lease resources name it: type
 * `content` (id = digest), `ingests` (id = ref) or `snapshots/<snapshotter>`
 * (id = key).
 */
export interface GcResource {
  type: string;
  namespace: string;
  id: string;
}

/** One object of a sweeper's type as the collector sees it. */
export interface GcObject {
  namespace: string;
  id: string;
  /** `containerd.io/gc.root` makes it a root; `containerd.io/gc.ref.*` name what it keeps alive. */
  labels: Labels;
  /** Always a root, whatever its labels (e.g. a container). */
  root?: boolean;
  /** References its labels do not carry, e.g. a snapshot's parent. */
  references?: GcResource[];
}

/**
 * The hook for resources stored outside the content tables, such as the
 * snapshots of one snapshotter. The collector marks them like everything
 * else (from leases, `gc.ref.*` labels and their own `gc.root` labels) and
 * hands the sweeper those nothing reaches.
 *
 * `scan` and `sweep` run inside the collector's write transaction on the
 * metadata db, so they are synchronous and nothing can gain a reference
 * between the mark and the sweep. Backend work (deleting a snapshot's
 * directory) belongs in `cleanup`, after the commit, and should take
 * `SqliteMetadataStore.gcGuard` exclusively.
 */
export interface GcSweeper {
  /** The resource type it owns, e.g. `snapshots/overlayfs`. */
  readonly type: string;
  /** Every object of the type. */
  scan(): Iterable<GcObject>;
  /** Removes the records of unreachable objects; returns how many went. */
  sweep(unreachable: readonly GcObject[]): number;
  /** After the transaction committed: removes backend data no record names any more. */
  cleanup?(): Promise<void>;
}
