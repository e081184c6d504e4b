import type { ContainerStore } from '../containers/types';
import type { TaskService } from '../runtime/types';
import type { Readable, Writable } from 'stream';
import type { ContentInfo, ContentStore, Descriptor, IngestStatus, NamespacedContentStore, ReadOptions } from '../content/types';
import { isAlreadyExists, NotImplementedError } from '../errdefs';
import type { Image, ImageStore } from '../images/types';
import type { CreateLeaseOptions, GarbageCollector, Lease, LeaseManager, LeaseResource } from '../leases/types';
import type { Labels } from '../metadata/types';
import type { Mount, SnapshotInfo, Snapshotter, SnapshotService, SnapshotUsage } from '../snapshots/types';
import type { ExportOptions, ImportOptions, PullOptions, PushOptions, TransferService } from '../transfer/types';
import type { ContentApi, ImagesApi, LeasesApi, SnapshotsApi } from './types';

/** Where the local facade finds the stores; any may be absent in a minimal embedding. */
export interface LocalStores {
  content?: NamespacedContentStore;
  images?: ImageStore;
  leases?: LeaseManager;
  gc?: GarbageCollector;
  transfer?: TransferService;
  snapshots?: SnapshotService;
  containers?: ContainerStore;
  tasks?: TaskService;
}

export function need<T>(value: T | undefined, what: string): T {
  if (!value) throw new NotImplementedError(`${what} is not available: no plugin provides it in this berth`);
  return value;
}

/** Applies labels one key at a time so empty values clear, like `ctr content label`. */
function labelPaths(labels: Labels): string[] {
  return Object.keys(labels).map((k) => `labels.${k}`);
}

export class LocalImages implements ImagesApi {
  constructor(
    private readonly stores: LocalStores,
    private readonly namespace: string,
  ) {}

  private get store(): ImageStore {
    return need(this.stores.images, 'the image store');
  }

  list(filters?: string[]): Promise<Image[]> {
    return this.store.list(this.namespace, filters);
  }

  get(name: string): Promise<Image> {
    return this.store.get(this.namespace, name);
  }

  create(image: { name: string; target: Descriptor; labels?: Labels }): Promise<Image> {
    return this.store.create(this.namespace, image);
  }

  update(image: { name: string; target?: Descriptor; labels?: Labels }, fieldpaths?: string[]): Promise<Image> {
    return this.store.update(this.namespace, image, fieldpaths);
  }

  async tag(source: string, target: string): Promise<Image> {
    const src = await this.get(source);
    return this.create({ name: target, target: src.target, labels: src.labels });
  }

  async delete(name: string, options: { sync?: boolean } = {}): Promise<void> {
    await this.store.delete(this.namespace, name);
    if (options.sync) await need(this.stores.gc, 'garbage collection').collect();
  }

  pull(ref: string, options?: PullOptions): Promise<Image> {
    return need(this.stores.transfer, 'pulling').pull(this.namespace, ref, options);
  }

  push(name: string, options?: PushOptions): Promise<void> {
    return need(this.stores.transfer, 'pushing').push(this.namespace, name, options);
  }

  import(archive: Readable, options?: ImportOptions): Promise<Image[]> {
    return need(this.stores.transfer, 'importing').import(this.namespace, archive, options);
  }

  export(names: string[], out: Writable, options?: ExportOptions): Promise<void> {
    return need(this.stores.transfer, 'exporting').export(this.namespace, names, out, options);
  }
}

export class LocalContent implements ContentApi {
  constructor(
    private readonly stores: LocalStores,
    private readonly namespace: string,
    private readonly lease?: string,
  ) {}

  private get store(): ContentStore {
    return need(this.stores.content, 'the content store').forNamespace(this.namespace, { lease: this.lease });
  }

  info(digest: string): Promise<ContentInfo> {
    return this.store.info(digest);
  }

  async list(filters?: string[]): Promise<ContentInfo[]> {
    const out: ContentInfo[] = [];
    for await (const info of this.store.walk(filters)) out.push(info);
    return out;
  }

  read(digest: string, options?: ReadOptions): Promise<Readable> {
    return this.store.read(digest, options);
  }

  label(digest: string, labels: Labels): Promise<ContentInfo> {
    return this.store.update({ digest, labels }, labelPaths(labels));
  }

  delete(digest: string): Promise<void> {
    return this.store.delete(digest);
  }

  async ingest(
    ref: string,
    data: Readable,
    options: { expected?: { size?: number; digest?: string }; labels?: Labels } = {},
  ): Promise<ContentInfo> {
    const store = this.store;
    const writer = await store.writer({ ref, expected: options.expected });
    try {
      // A fresh ingest of the whole stream: drop bytes an earlier attempt left.
      if (writer.offset > 0) await writer.truncate(0);
      for await (const chunk of data as AsyncIterable<Buffer>) await writer.write(chunk);
      const digest = writer.digest();
      try {
        await writer.commit(options.expected?.size ?? 0, options.expected?.digest ?? '', { labels: options.labels });
      } catch (err) {
        // Already there is success for a content-addressed write, as in containerd's WriteBlob.
        if (!isAlreadyExists(err)) throw err;
      }
      return store.info(options.expected?.digest || digest);
    } finally {
      await writer.close();
    }
  }

  active(filters?: string[]): Promise<IngestStatus[]> {
    return this.store.listStatuses(filters);
  }

  abort(ref: string): Promise<void> {
    return this.store.abort(ref);
  }
}

export class LocalLeases implements LeasesApi {
  constructor(
    private readonly stores: LocalStores,
    private readonly namespace: string,
  ) {}

  private get manager(): LeaseManager {
    return need(this.stores.leases, 'the lease manager');
  }

  create(options?: CreateLeaseOptions): Promise<Lease> {
    return this.manager.create(this.namespace, options);
  }

  list(filters?: string[]): Promise<Lease[]> {
    return this.manager.list(this.namespace, filters);
  }

  delete(id: string, options?: { sync?: boolean }): Promise<void> {
    return this.manager.delete(this.namespace, id, options);
  }

  addResource(id: string, resource: LeaseResource): Promise<void> {
    return this.manager.addResource(this.namespace, id, resource);
  }

  deleteResource(id: string, resource: LeaseResource): Promise<void> {
    return this.manager.deleteResource(this.namespace, id, resource);
  }

  listResources(id: string): Promise<LeaseResource[]> {
    return this.manager.listResources(this.namespace, id);
  }
}

export class LocalSnapshots implements SnapshotsApi {
  constructor(
    private readonly stores: LocalStores,
    private readonly namespace: string,
    readonly snapshotter: string,
    private readonly lease?: string,
  ) {}

  /** Resolved per call, so an unknown snapshotter fails the call (NotFound) rather than the facade. */
  private get scoped(): Snapshotter {
    return need(this.stores.snapshots, 'the snapshot service').forNamespace(this.namespace, this.snapshotter || undefined, {
      lease: this.lease,
    });
  }

  prepare(key: string, parent = '', options: { labels?: Labels } = {}): Promise<Mount[]> {
    return this.scoped.prepare(key, parent, options);
  }

  view(key: string, parent = '', options: { labels?: Labels } = {}): Promise<Mount[]> {
    return this.scoped.view(key, parent, options);
  }

  mounts(key: string): Promise<Mount[]> {
    return this.scoped.mounts(key);
  }

  commit(name: string, key: string, options: { labels?: Labels } = {}): Promise<void> {
    return this.scoped.commit(name, key, options);
  }

  remove(key: string): Promise<void> {
    return this.scoped.remove(key);
  }

  stat(key: string): Promise<SnapshotInfo> {
    return this.scoped.stat(key);
  }

  update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo> {
    return this.scoped.update(info, fieldpaths);
  }

  async list(filters?: string[]): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for await (const info of this.scoped.walk(filters)) out.push(info);
    return out;
  }

  usage(key: string): Promise<SnapshotUsage> {
    return this.scoped.usage(key);
  }
}
