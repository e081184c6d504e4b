import type { Readable, Writable } from 'stream';
import {
  Applier,
  ContentStore,
  Descriptor,
  FailedPreconditionError,
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
  SnapshotService,
  TransferService,
  hostPlatform,
  isIndexType,
  isManifestType,
} from '@berth/core';
import { exportArchive, importArchive } from '@berth/archive';
import { pullImage, pushImage, ResolverOptions, selectManifests, type BlobProgress as RemoteBlobProgress } from '@berth/remotes';
import { BlobArrivals, PullProgress } from './pull-progress';
import { TRANSFER_LEASE_LABEL } from './recovery';
import type { ApplyPool } from './apply-pool';
import type { LayerStager } from './staged-apply';
import { Unpacker, type UnpackTarget } from './unpacker';

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
  const progress = new PullProgress(listener);
  return (event) => progress.blob(event);
}

/** The platform manifests of `target` this host runs (through nested indexes). */
async function hostManifests(store: ContentStore, target: Descriptor, name: string): Promise<Descriptor[]> {
  if (isManifestType(target.mediaType)) return [target];
  if (!isIndexType(target.mediaType)) return [];
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(target.digest)) chunks.push(chunk as Buffer);
  const index = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { manifests?: Descriptor[] };
  const out: Descriptor[] = [];
  for (const child of selectManifests(index.manifests ?? [], [hostPlatform()], target, name)) {
    out.push(...(await hostManifests(store, child, name)));
  }
  return out;
}

/** What unpacking needs besides the content store; looked up when a pull starts, as plugins may come later. */
export interface UnpackServices {
  snapshots(): SnapshotService | undefined;
  applier(): Applier | undefined;
  /** Side-by-side extraction for overlayfs (staged-apply.ts), when the applier is the walking differ. */
  stager?(): LayerStager | undefined;
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
    private readonly unpackServices?: UnpackServices,
    private readonly pool?: ApplyPool,
  ) {}

  /** Stops the unpack worker threads. */
  async close(): Promise<void> {
    await this.pool?.close();
  }

  private async withLease<T>(namespace: string, work: (store: ContentStore, lease: string) => Promise<T>): Promise<T> {
    const lease = await this.leases.create(namespace, {
      labels: { [TRANSFER_LEASE_LABEL]: 'true' },
      expiresAt: new Date(Date.now() + TRANSFER_LEASE_TTL_MS),
    });
    try {
      return await work(this.content.forNamespace(namespace, { lease: lease.id }), lease.id);
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

  /**
   * Where a pull unpacks, or undefined when it only fetches: `unpack: false`,
   * or left unset on a berth without snapshots or a differ.
   */
  private unpackTarget(
    namespace: string,
    lease: string,
    store: ContentStore,
    options: Pick<PullOptions, 'unpack' | 'snapshotter'>,
  ): UnpackTarget | undefined {
    if (options.unpack === false) return undefined;
    const snapshots = this.unpackServices?.snapshots();
    const applier = this.unpackServices?.applier();
    if (!snapshots || !applier) {
      if (options.unpack === true || options.snapshotter) {
        throw new FailedPreconditionError('cannot unpack: this berth has no snapshot service or no differ');
      }
      return undefined;
    }
    const snapshotter = options.snapshotter || snapshots.defaultName;
    return {
      snapshots: snapshots.forNamespace(namespace, snapshotter, { lease }),
      snapshotter,
      content: store,
      applier,
      scope: `${namespace}/${snapshotter}`,
      // Staged layers are overlayfs upper dirs: only the overlayfs snapshotter takes them.
      stager: snapshotter === 'overlayfs' ? this.unpackServices?.stager?.() : undefined,
    };
  }

  /**
   * Fetches the image and, unless told not to, unpacks each platform
   * manifest the pull fetched into snapshots. Unpacking starts as soon as a
   * manifest is stored and applies each layer once its blob is, so it runs
   * alongside the download. The image is recorded once both are done.
   */
  async pull(namespace: string, ref: string, options: PullOptions = {}): Promise<Image> {
    return this.withLease(namespace, async (store, lease) => {
      const target = this.unpackTarget(namespace, lease, store, options);
      const progress = new PullProgress(options.onProgress);
      const arrivals = new BlobArrivals();
      // An unpack failure stops the download, and the other way round.
      const stop = new AbortController();
      const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
      const unpacker = target ? new Unpacker(target, this.logger) : undefined;
      const unpacks = new Map<string, Promise<void>>();
      let unpackError: { error: unknown } | undefined;
      const startUnpack = (manifest: Descriptor) => {
        if (!unpacker || unpacks.has(manifest.digest)) return;
        const work = unpacker
          .unpack(manifest, {
            blobReady: (desc) => arrivals.wait(desc),
            onLayer: (layer, status) => progress.unpack(layer, status),
            signal,
          })
          .then(
            () => undefined,
            (error: unknown) => {
              if (!unpackError && !signal.aborted) unpackError = { error };
              stop.abort();
            },
          );
        unpacks.set(manifest.digest, work);
      };
      let result: Awaited<ReturnType<typeof pullImage>>;
      try {
        result = await pullImage(ref, {
          ...resolverOptions(options.registry),
          logger: this.logger,
          store,
          dedupeKey: `content:${namespace}`,
          platforms: options.platforms?.length ? options.platforms : undefined,
          allPlatforms: options.allPlatforms,
          onProgress: (event) => {
            progress.blob(event);
            if (event.status !== 'done' && event.status !== 'exists') return;
            arrivals.arrive(event.digest);
            if (isManifestType(event.mediaType)) startUnpack({ mediaType: event.mediaType, digest: event.digest, size: event.total });
          },
          signal,
        });
      } catch (err) {
        arrivals.fail(err);
        stop.abort();
        await Promise.all(unpacks.values());
        throw unpackError?.error ?? err;
      }
      arrivals.finish();
      // Manifests the events did not announce (none, normally) are unpacked now.
      for (const manifest of result.manifests) startUnpack(manifest);
      await Promise.all(unpacks.values());
      if (unpackError) throw unpackError.error;
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

  /**
   * Imports an archive and, as `ctr images import` does, unpacks each image's
   * host-platform manifest unless `unpack` is false. Images are recorded once
   * everything is unpacked.
   */
  async import(namespace: string, archive: Readable, options: ImportOptions = {}): Promise<Image[]> {
    return this.withLease(namespace, async (store, lease) => {
      const target = this.unpackTarget(namespace, lease, store, options);
      const imported = await importArchive(archive, { store, baseName: options.baseName, indexName: options.indexName });
      if (target) {
        const unpacker = new Unpacker(target, this.logger);
        const done = new Set<string>();
        for (const image of imported) {
          for (const manifest of await hostManifests(store, image.target, image.name)) {
            if (done.has(manifest.digest)) continue;
            done.add(manifest.digest);
            await unpacker.unpack(manifest);
          }
        }
      }
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
