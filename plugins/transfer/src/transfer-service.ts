import type { Readable, Writable } from 'stream';
import {
  BlobProgress,
  ContentStore,
  ExportOptions,
  Image,
  ImageStore,
  ImportOptions,
  isAlreadyExists,
  LeaseManager,
  Logger,
  NamespacedContentStore,
  ProgressListener,
  PullOptions,
  PushOptions,
  RegistryOptions,
  TransferService,
} from '@berth/core';
import { exportArchive, importArchive } from '@berth/archive';
import { pullImage, pushImage, ResolverOptions, type BlobProgress as RemoteBlobProgress } from '@berth/remotes';

/**
 * How long the lease that protects a transfer's blobs lives if berthd dies
 * mid-transfer: long enough to resume, short enough that GC reclaims an
 * abandoned pull.
 */
const TRANSFER_LEASE_TTL_MS = 60 * 60 * 1000;

function resolverOptions(registry: RegistryOptions | undefined): ResolverOptions {
  return {
    plainHttp: registry?.plainHttp,
    hostsDir: registry?.hostsDir,
    credentials: registry?.credentials,
    skipVerify: registry?.skipVerify,
    progressTimeoutMs: registry?.progressTimeoutMs,
  };
}

/** Folds per-blob events into the whole picture listeners get. */
function progressAggregator(listener: ProgressListener | undefined): (event: RemoteBlobProgress) => void {
  const blobs = new Map<string, BlobProgress>();
  return (event) => {
    if (!listener) return;
    blobs.set(event.digest, { ...event });
    listener([...blobs.values()]);
  };
}

/**
 * Pull, push, import and export against the namespaced stores. Every transfer
 * writes under a short-lived lease so garbage collection cannot take blobs that
 * no image references yet.
 */
export class ImageTransferService implements TransferService {
  constructor(
    private readonly content: NamespacedContentStore,
    private readonly images: ImageStore,
    private readonly leases: LeaseManager,
    private readonly logger?: Logger,
  ) {}

  private async withLease<T>(namespace: string, work: (store: ContentStore) => Promise<T>): Promise<T> {
    const lease = await this.leases.create(namespace, {
      labels: { 'berth.io/transfer': 'true' },
      expiresAt: new Date(Date.now() + TRANSFER_LEASE_TTL_MS),
    });
    try {
      return await work(this.content.forNamespace(namespace, { lease: lease.id }));
    } finally {
      await this.leases.delete(namespace, lease.id).catch((err: unknown) =>
        this.logger?.warn({ err, lease: lease.id }, 'could not remove transfer lease'),
      );
    }
  }

  /** Creates the image record, or points an existing one at the new target. */
  private async record(namespace: string, name: string, target: Image['target'], labels: Record<string, string> = {}): Promise<Image> {
    try {
      return await this.images.create(namespace, { name, target, labels });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return this.images.update(namespace, { name, target, labels }, ['target', ...Object.keys(labels).map((k) => `labels.${k}`)]);
    }
  }

  async pull(namespace: string, ref: string, options: PullOptions = {}): Promise<Image> {
    return this.withLease(namespace, async (store) => {
      const result = await pullImage(ref, {
        ...resolverOptions(options.registry),
        logger: this.logger,
        store,
        platforms: options.platforms?.length ? options.platforms : undefined,
        allPlatforms: options.allPlatforms,
        onProgress: progressAggregator(options.onProgress),
        signal: options.signal,
      });
      return this.record(namespace, options.name ?? result.name, result.target, options.labels);
    });
  }

  async push(namespace: string, name: string, options: PushOptions = {}): Promise<void> {
    const image = await this.images.get(namespace, name);
    await pushImage(options.ref ?? name, image.target, this.content.forNamespace(namespace), {
      ...resolverOptions(options.registry),
      logger: this.logger,
      onProgress: progressAggregator(options.onProgress),
      signal: options.signal,
    });
  }

  async import(namespace: string, archive: Readable, options: ImportOptions = {}): Promise<Image[]> {
    return this.withLease(namespace, async (store) => {
      const imported = await importArchive(archive, { store, baseName: options.baseName, indexName: options.indexName });
      const out: Image[] = [];
      for (const image of imported) out.push(await this.record(namespace, image.name, image.target));
      return out;
    });
  }

  async export(namespace: string, names: string[], out: Writable, options: ExportOptions = {}): Promise<void> {
    const images = [];
    for (const name of names) images.push(await this.images.get(namespace, name));
    await exportArchive(out, {
      provider: this.content.forNamespace(namespace),
      images: images.map((i) => ({ name: i.name, target: i.target })),
      platforms: options.platforms?.length ? options.platforms : undefined,
      allPlatforms: options.allPlatforms,
    });
  }
}
