import type { Readable, Writable } from 'stream';
import type { ContentInfo, Descriptor, IngestStatus, ReadOptions } from '../content/types';
import type { AnyMessage, EventEnvelope } from '../events/types';
import type { Image } from '../images/types';
import type { CreateLeaseOptions, Lease, LeaseResource } from '../leases/types';
import type { ExportOptions, ImportOptions, PullOptions, PushOptions } from '../transfer/types';
import type { Labels, Namespace } from '../metadata/types';
import type { PluginMeta, PluginStatus } from '../plugin/types';
import type { Mount, SnapshotInfo, SnapshotUsage } from '../snapshots/types';
import type { Container, NewContainer } from '../containers/types';
import type { DeletedProcess, ExitStatus, ProcessIO, ProcessInfo, ProcessState } from '../runtime/types';

/** What the daemon (or the embedded core) reports about itself. */
export interface VersionInfo {
  version: string;
  revision: string;
}

/** One plugin as introspection reports it. */
export interface PluginInfo extends PluginMeta {
  type: string;
  id: string;
  requires: string[];
  status: Exclude<PluginStatus, 'disabled'> | 'disabled';
  /** Why the plugin was skipped or failed. */
  error?: string;
}

export interface NamespacesApi {
  list(): Promise<Namespace[]>;
  /** NotFound if absent. */
  get(name: string): Promise<Namespace>;
  create(name: string, labels?: Labels): Promise<Namespace>;
  /** Sets labels; an empty value removes that label. */
  label(name: string, labels: Labels): Promise<Namespace>;
  /** FailedPrecondition while the namespace still holds resources. */
  delete(name: string): Promise<void>;
}

export interface EventsApi {
  /** Publishes in the facade's namespace. */
  publish(topic: string, event: AnyMessage): Promise<void>;
  /** Events matching any filter (containerd syntax); ends when `signal` aborts. */
  subscribe(filters?: string[], signal?: AbortSignal): AsyncIterable<EventEnvelope>;
}

export interface IntrospectionApi {
  plugins(filters?: string[]): Promise<PluginInfo[]>;
  /** The server's identity, stable across restarts. */
  server(): Promise<{ uuid: string }>;
}

export interface ImagesApi {
  list(filters?: string[]): Promise<Image[]>;
  /** NotFound if absent. */
  get(name: string): Promise<Image>;
  create(image: { name: string; target: Descriptor; labels?: Labels }): Promise<Image>;
  /** `fieldpaths` as containerd (`labels`, `labels.<k>`, `target`); none updates both. */
  update(image: { name: string; target?: Descriptor; labels?: Labels }, fieldpaths?: string[]): Promise<Image>;
  /** A new name for the target of `source`. AlreadyExists if `target` exists. */
  tag(source: string, target: string): Promise<Image>;
  /** `sync` waits for garbage collection to reclaim what the image held. */
  delete(name: string, options?: { sync?: boolean }): Promise<void>;
  /** Pulls into the content store and records the image (progress via `onProgress`). */
  pull(ref: string, options?: PullOptions): Promise<Image>;
  push(name: string, options?: PushOptions): Promise<void>;
  /** Imports an OCI layout or docker-save tar; returns the images recorded. */
  import(archive: Readable, options?: ImportOptions): Promise<Image[]>;
  /** Writes an OCI layout tar of `names` to `out`. */
  export(names: string[], out: Writable, options?: ExportOptions): Promise<void>;
}

export interface ContentApi {
  info(digest: string): Promise<ContentInfo>;
  list(filters?: string[]): Promise<ContentInfo[]>;
  read(digest: string, options?: ReadOptions): Promise<Readable>;
  /** Sets labels; an empty value removes that label. */
  label(digest: string, labels: Labels): Promise<ContentInfo>;
  delete(digest: string): Promise<void>;
  /** Writes `data` under ingest `ref` and commits it, verifying `expected` when given. */
  ingest(
    ref: string,
    data: Readable,
    options?: { expected?: { size?: number; digest?: string }; labels?: Labels },
  ): Promise<ContentInfo>;
  /** Ingests in progress. */
  active(filters?: string[]): Promise<IngestStatus[]>;
  abort(ref: string): Promise<void>;
}

export interface LeasesApi {
  create(options?: CreateLeaseOptions): Promise<Lease>;
  list(filters?: string[]): Promise<Lease[]>;
  delete(id: string, options?: { sync?: boolean }): Promise<void>;
  addResource(id: string, resource: LeaseResource): Promise<void>;
  deleteResource(id: string, resource: LeaseResource): Promise<void>;
  listResources(id: string): Promise<LeaseResource[]>;
}

/**
 * The snapshots of one snapshotter in the facade's namespace (containerd's
 * Snapshots service, ctr's `snapshots` commands). What prepare, view and
 * commit create joins the facade's lease, if it has one.
 */
export interface SnapshotsApi {
  /** The snapshotter these calls use; '' means the daemon's default. */
  readonly snapshotter: string;
  /** A new active (writable) snapshot on committed `parent` ('' for none); returns its mounts. */
  prepare(key: string, parent?: string, options?: { labels?: Labels }): Promise<Mount[]>;
  /** A new read-only view of `parent`; returns its mounts. */
  view(key: string, parent?: string, options?: { labels?: Labels }): Promise<Mount[]>;
  /** Mounts of an active snapshot or view. */
  mounts(key: string): Promise<Mount[]>;
  /** Turns active `key` into committed `name`. */
  commit(name: string, key: string, options?: { labels?: Labels }): Promise<void>;
  /** FailedPrecondition while it has children. */
  remove(key: string): Promise<void>;
  /** NotFound if absent. */
  stat(key: string): Promise<SnapshotInfo>;
  /** `fieldpaths` as containerd (`labels`, `labels.<k>`); none replaces all labels. */
  update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo>;
  /** Snapshots matching any filter (`kind`, `name`, `parent`, `labels.<k>`). */
  list(filters?: string[]): Promise<SnapshotInfo[]>;
  /** Disk usage of the snapshot's own layer. */
  usage(key: string): Promise<SnapshotUsage>;
}

/**
 * The one typed API over berth, in-process (`createBerth`) or remote
 * (`connect`). Calls act in `namespace` (default `default`).
 */
export interface ContainersApi {
  create(container: NewContainer): Promise<Container>;
  get(id: string): Promise<Container>;
  list(filters?: string[]): Promise<Container[]>;
  update(container: Pick<Container, 'id'> & Partial<Container>, fieldpaths?: string[]): Promise<Container>;
  /** Sets labels (an empty value removes one). */
  label(id: string, labels: Labels): Promise<Container>;
  delete(id: string): Promise<void>;
}

export interface CreateTaskRequestOptions {
  io?: ProcessIO;
  /** Mounts for the rootfs; when omitted, the container's snapshot (snapshotter + snapshotKey) is mounted. */
  rootfs?: Mount[];
  /** Per-task runtime options (e.g. `containerd.runc.v1.Options`). */
  options?: AnyMessage;
  /** An absolute path to the shim binary, overriding the container's runtime name. */
  runtimePath?: string;
}

export interface TaskMetric {
  id: string;
  timestamp: Date;
  /** e.g. `io.containerd.cgroups.v1.Metrics`. */
  data?: AnyMessage;
}

/** Tasks by container id; `execId` picks an exec instead of the init process. */
export interface TasksApi {
  create(containerId: string, options?: CreateTaskRequestOptions): Promise<{ pid: number }>;
  start(containerId: string, execId?: string): Promise<number>;
  get(containerId: string, execId?: string): Promise<ProcessState>;
  list(filters?: string[]): Promise<ProcessState[]>;
  kill(containerId: string, signal: number, options?: { execId?: string; all?: boolean }): Promise<void>;
  wait(containerId: string, execId?: string): Promise<ExitStatus>;
  /** Adds an exec; start it with start(containerId, execId). */
  exec(containerId: string, execId: string, spec: Record<string, unknown>, io: ProcessIO): Promise<void>;
  delete(containerId: string): Promise<DeletedProcess>;
  deleteProcess(containerId: string, execId: string): Promise<DeletedProcess>;
  pause(containerId: string): Promise<void>;
  resume(containerId: string): Promise<void>;
  pids(containerId: string): Promise<ProcessInfo[]>;
  metrics(filters?: string[]): Promise<TaskMetric[]>;
  resizePty(containerId: string, width: number, height: number, execId?: string): Promise<void>;
  closeIO(containerId: string, execId?: string): Promise<void>;
  update(containerId: string, resources?: AnyMessage, annotations?: Record<string, string>): Promise<void>;
}

export interface Berth {
  readonly namespace: string;
  readonly namespaces: NamespacesApi;
  readonly events: EventsApi;
  readonly introspection: IntrospectionApi;
  readonly images: ImagesApi;
  readonly content: ContentApi;
  readonly leases: LeasesApi;
  /** Snapshots in `snapshotter` (default: the daemon's default snapshotter). */
  snapshots(snapshotter?: string): SnapshotsApi;
  readonly containers: ContainersApi;
  readonly tasks: TasksApi;
  version(): Promise<VersionInfo>;
  /** The same facade acting in another namespace (shares the connection). */
  withNamespace(namespace: string): Berth;
  /** The same facade with new content written under lease `id` (kept from GC). */
  withLease(id: string): Berth;
  /** The lease new content joins, if any. */
  readonly lease?: string;
  close(): Promise<void>;
}
