import type { Labels } from '../metadata/types';

/** A lease keeps resources alive while a client works with them. */
export interface Lease {
  id: string;
  createdAt: Date;
  labels: Labels;
}

/** A resource held by a lease: `content` (digest), `ingests` (ref), `snapshots/<snapshotter>` (key). */
export interface LeaseResource {
  id: string;
  type: string;
}

export interface CreateLeaseOptions {
  /** Generated when absent. */
  id?: string;
  labels?: Labels;
  /** Sets the `containerd.io/gc.expire` label (RFC 3339). */
  expiresAt?: Date;
}

/** containerd's leases.Manager, per namespace. */
export interface LeaseManager {
  /** AlreadyExists if the id is taken. */
  create(namespace: string, options?: CreateLeaseOptions): Promise<Lease>;
  /** NotFound if absent. `sync` runs garbage collection before returning. */
  delete(namespace: string, id: string, options?: { sync?: boolean }): Promise<void>;
  /** Leases matching any filter (fields `id`, `labels.<k>`). */
  list(namespace: string, filters?: string[]): Promise<Lease[]>;
  addResource(namespace: string, leaseId: string, resource: LeaseResource): Promise<void>;
  deleteResource(namespace: string, leaseId: string, resource: LeaseResource): Promise<void>;
  listResources(namespace: string, leaseId: string): Promise<LeaseResource[]>;
}
export const LeaseManager = Symbol.for('io.berth.LeaseManager');

/** Labels with containerd's garbage-collection meaning. */
export const GcLabels = {
  root: 'containerd.io/gc.root',
  /** Prefix: `containerd.io/gc.ref.content[.<suffix>]` = digest. */
  refContent: 'containerd.io/gc.ref.content',
  /** Prefix: `containerd.io/gc.ref.snapshot.<snapshotter>` = key. */
  refSnapshot: 'containerd.io/gc.ref.snapshot',
  expire: 'containerd.io/gc.expire',
  flat: 'containerd.io/gc.flat',
} as const;

/** What one collection removed. */
export interface GcStats {
  /** Content records removed from namespaces. */
  contentRemoved: number;
  /** Blobs deleted from the raw content store (no namespace held them any more). */
  blobsRemoved: number;
  /** Ingests removed: expired, or held only by a lease that went. */
  ingestsRemoved: number;
  snapshotsRemoved: number;
  leasesExpired: number;
  durationMs: number;
}

/** Mark-and-sweep over everything the metadata store references. */
export interface GarbageCollector {
  /** Runs one collection now. */
  collect(): Promise<GcStats>;
  /** Asks for a collection soon (coalesced), e.g. after a delete. */
  schedule(): void;
}
export const GarbageCollector = Symbol.for('io.berth.GarbageCollector');
