import * as grpc from '@grpc/grpc-js';
import { Readable, Writable } from 'stream';
import { pipeline } from 'stream/promises';
import { containerdTypes, containersV1, contentV1, imagesV1, leasesV1, snapshotsV1, tasksV1, transferV1 } from '@berth/proto';
import type { ContentInfo, Descriptor, IngestStatus, ReadOptions } from '../content/types';
import { fromGrpcError, InternalError, isAlreadyExists } from '../errdefs';
import type { Image } from '../images/types';
import type { CreateLeaseOptions, Lease, LeaseResource } from '../leases/types';
import type { Labels } from '../metadata/types';
import type {
  BlobProgress,
  ExportOptions,
  ImportOptions,
  PullOptions,
  PushOptions,
  RegistryOptions,
  UnpackStatus,
} from '../transfer/types';
import type { Mount, SnapshotInfo, SnapshotKind, SnapshotUsage } from '../snapshots/types';
import type { ContentApi, ImagesApi, LeasesApi, SnapshotsApi } from './types';

type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;

/** One unary call; server errors come back as berth error kinds. */
export function unaryCall<Res>(invoke: (callback: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke((err, res) => (err ? reject(fromGrpcError(err)) : resolve(res)));
  });
}

/** Iterates a server stream, turning its error status into a berth error. */
async function* readStream<T>(stream: grpc.ClientReadableStream<T>): AsyncGenerator<T> {
  try {
    for await (const item of stream as AsyncIterable<T>) yield item;
  } catch (err) {
    throw fromGrpcError(err);
  }
}

/** Bytes per Write message: as ctr sends, so the daemon writes in large pieces. */
const WRITE_MESSAGE_BYTES = 1 << 20;

/** Regroups a byte stream into chunks of about `size` bytes (stdin arrives in 64 KiB pieces). */
async function* coalesce(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let length = 0;
  for await (const chunk of source) {
    pending.push(chunk);
    length += chunk.length;
    if (length >= size) {
      yield Buffer.concat(pending, length);
      pending = [];
      length = 0;
    }
  }
  if (length > 0) yield Buffer.concat(pending, length);
}

export interface RemoteClients {
  content: contentV1.ContentClient;
  images: imagesV1.ImagesClient;
  leases: leasesV1.LeasesClient;
  transfer: transferV1.TransferClient;
  snapshots: snapshotsV1.SnapshotsClient;
  containers: containersV1.ContainersClient;
  tasks: tasksV1.TasksClient;
}

function toDescriptor(d: { mediaType: string; digest: string; size: number; annotations: Record<string, string> } | undefined): Descriptor {
  if (!d) throw new InternalError('server answered an image without a target');
  const annotations = Object.keys(d.annotations ?? {}).length ? { annotations: { ...d.annotations } } : {};
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...annotations };
}

function toImage(image: imagesV1.Image | transferV1.Image | undefined): Image {
  if (!image) throw new InternalError('server answered without an image');
  return {
    name: image.name,
    labels: { ...image.labels },
    target: toDescriptor(image.target),
    createdAt: image.createdAt ?? new Date(0),
    updatedAt: image.updatedAt ?? new Date(0),
  };
}

function toProtoTarget(d: Descriptor) {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: d.annotations ?? {} };
}

function toInfo(info: contentV1.Info | undefined): ContentInfo {
  if (!info) throw new InternalError('server answered without content info');
  return {
    digest: info.digest,
    size: info.size,
    createdAt: info.createdAt ?? new Date(0),
    updatedAt: info.updatedAt ?? new Date(0),
    labels: { ...info.labels },
  };
}

function toStatus(s: contentV1.Status): IngestStatus {
  return {
    ref: s.ref,
    offset: s.offset,
    total: s.total,
    expected: s.expected,
    startedAt: s.startedAt ?? new Date(0),
    updatedAt: s.updatedAt ?? new Date(0),
  };
}

function toRegistry(options: RegistryOptions | undefined): transferV1.RegistryOptions {
  return {
    plainHttp: options?.plainHttp ?? false,
    hostsDir: options?.hostsDir ?? '',
    credentials: options?.credentials ?? '',
    progressTimeoutMs: options?.progressTimeoutMs ?? 0,
    skipVerify: options?.skipVerify ?? false,
  };
}

function toBlobProgress(b: transferV1.BlobProgress): BlobProgress {
  const progress: BlobProgress = {
    digest: b.digest,
    mediaType: b.mediaType,
    offset: b.offset,
    total: b.total,
    status: b.status as BlobProgress['status'],
  };
  if (b.unpack) progress.unpack = b.unpack as UnpackStatus;
  return progress;
}

/** Runs a progress stream to its last message, reporting progress on the way. */
async function followProgress(
  stream: grpc.ClientReadableStream<transferV1.TransferProgress>,
  options: { onProgress?: (b: BlobProgress[]) => void; signal?: AbortSignal },
): Promise<transferV1.TransferProgress | undefined> {
  const onAbort = () => stream.cancel();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let last: transferV1.TransferProgress | undefined;
  try {
    for await (const msg of readStream(stream)) {
      if (msg.blobs.length) options.onProgress?.(msg.blobs.map(toBlobProgress));
      last = msg;
    }
    return last;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

export class RemoteImages implements ImagesApi {
  constructor(
    private readonly clients: RemoteClients,
    private readonly md: () => grpc.Metadata,
  ) {}

  async list(filters: string[] = []): Promise<Image[]> {
    const res = await unaryCall<imagesV1.ListImagesResponse>((cb) => this.clients.images.list({ filters }, this.md(), cb));
    return res.images.map(toImage);
  }

  async get(name: string): Promise<Image> {
    const res = await unaryCall<imagesV1.GetImageResponse>((cb) => this.clients.images.get({ name }, this.md(), cb));
    return toImage(res.image);
  }

  async create(image: { name: string; target: Descriptor; labels?: Labels }): Promise<Image> {
    const req = { image: { name: image.name, labels: image.labels ?? {}, target: toProtoTarget(image.target) } };
    const res = await unaryCall<imagesV1.CreateImageResponse>((cb) => this.clients.images.create(req, this.md(), cb));
    return toImage(res.image);
  }

  async update(image: { name: string; target?: Descriptor; labels?: Labels }, fieldpaths: string[] = []): Promise<Image> {
    const req = {
      image: { name: image.name, labels: image.labels ?? {}, target: image.target ? toProtoTarget(image.target) : undefined },
      updateMask: fieldpaths.length ? fieldpaths : undefined,
    };
    const res = await unaryCall<imagesV1.UpdateImageResponse>((cb) => this.clients.images.update(req, this.md(), cb));
    return toImage(res.image);
  }

  async tag(source: string, target: string): Promise<Image> {
    const src = await this.get(source);
    return this.create({ name: target, target: src.target, labels: src.labels });
  }

  async delete(name: string, options: { sync?: boolean } = {}): Promise<void> {
    await unaryCall((cb) => this.clients.images.delete({ name, sync: options.sync ?? false }, this.md(), cb));
  }

  async pull(ref: string, options: PullOptions = {}): Promise<Image> {
    const stream = this.clients.transfer.pull(
      {
        ref,
        platforms: options.platforms ?? [],
        allPlatforms: options.allPlatforms ?? false,
        registry: toRegistry(options.registry),
        name: options.name ?? '',
        labels: options.labels ?? {},
        unpack: options.unpack,
        snapshotter: options.snapshotter ?? '',
      },
      this.md(),
    );
    const last = await followProgress(stream, options);
    return toImage(last?.image);
  }

  async push(name: string, options: PushOptions = {}): Promise<void> {
    const stream = this.clients.transfer.push(
      {
        name,
        ref: options.ref ?? '',
        platforms: options.platforms ?? [],
        allPlatforms: options.allPlatforms ?? false,
        registry: toRegistry(options.registry),
      },
      this.md(),
    );
    await followProgress(stream, options);
  }

  import(archive: Readable, options: ImportOptions = {}): Promise<Image[]> {
    return new Promise((resolve, reject) => {
      const call = this.clients.transfer.import(this.md(), (err, res) =>
        err ? reject(fromGrpcError(err)) : resolve(res.images.map(toImage)),
      );
      call.write({
        options: {
          baseName: options.baseName ?? '',
          indexName: options.indexName ?? '',
          unpack: options.unpack,
          snapshotter: options.snapshotter ?? '',
        },
        data: Buffer.alloc(0),
      });
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          if (call.write({ options: undefined, data: chunk })) done();
          else call.once('drain', () => done());
        },
      });
      pipeline(archive, sink).then(
        () => call.end(),
        (err) => {
          call.cancel();
          reject(err);
        },
      );
    });
  }

  async export(names: string[], out: Writable, options: ExportOptions = {}): Promise<void> {
    const stream = this.clients.transfer.export(
      { names, platforms: options.platforms ?? [], allPlatforms: options.allPlatforms ?? false },
      this.md(),
    );
    await pipeline(
      Readable.from((async function* () {
        for await (const chunk of readStream(stream)) yield chunk.data;
      })()),
      out,
    );
  }
}

export class RemoteContent implements ContentApi {
  constructor(
    private readonly clients: RemoteClients,
    private readonly md: () => grpc.Metadata,
  ) {}

  async info(digest: string): Promise<ContentInfo> {
    const res = await unaryCall<contentV1.InfoResponse>((cb) => this.clients.content.info({ digest }, this.md(), cb));
    return toInfo(res.info);
  }

  async list(filters: string[] = []): Promise<ContentInfo[]> {
    const out: ContentInfo[] = [];
    for await (const batch of readStream(this.clients.content.list({ filters }, this.md()))) {
      out.push(...batch.info.map(toInfo));
    }
    return out;
  }

  async read(digest: string, options: ReadOptions = {}): Promise<Readable> {
    const stream = this.clients.content.read({ digest, offset: options.offset ?? 0, size: options.length ?? 0 }, this.md());
    const chunks = readStream(stream);
    // Surface NotFound now rather than on the first read.
    const first = await chunks.next();
    return Readable.from((async function* () {
      if (!first.done) yield first.value.data;
      for await (const chunk of chunks) yield chunk.data;
    })(), { objectMode: false });
  }

  async label(digest: string, labels: Labels): Promise<ContentInfo> {
    const req = {
      info: { digest, size: 0, labels, createdAt: undefined, updatedAt: undefined },
      updateMask: Object.keys(labels).map((k) => `labels.${k}`),
    };
    const res = await unaryCall<contentV1.UpdateResponse>((cb) => this.clients.content.update(req, this.md(), cb));
    return toInfo(res.info);
  }

  async delete(digest: string): Promise<void> {
    await unaryCall((cb) => this.clients.content.delete({ digest }, this.md(), cb));
  }

  async ingest(
    ref: string,
    data: Readable,
    options: { expected?: { size?: number; digest?: string }; labels?: Labels } = {},
  ): Promise<ContentInfo> {
    const call = this.clients.content.write(this.md());
    const responses = (async () => {
      let last: contentV1.WriteContentResponse | undefined;
      try {
        for await (const res of call as AsyncIterable<contentV1.WriteContentResponse>) last = res;
      } catch (err) {
        throw fromGrpcError(err);
      }
      return last;
    })();
    const total = options.expected?.size ?? 0;
    const expected = options.expected?.digest ?? '';
    let offset = 0;
    try {
      for await (const chunk of coalesce(data as AsyncIterable<Buffer>, WRITE_MESSAGE_BYTES)) {
        const ok = call.write({ action: contentV1.WriteAction.WRITE, ref, total, expected, offset, data: chunk, labels: {} });
        offset += chunk.length;
        if (!ok) await new Promise((r) => call.once('drain', r));
      }
      call.write({ action: contentV1.WriteAction.COMMIT, ref, total, expected, offset, data: Buffer.alloc(0), labels: options.labels ?? {} });
      call.end();
      const last = await responses;
      return await this.info(last?.digest || expected);
    } catch (err) {
      call.cancel();
      if (isAlreadyExists(err) && expected) return this.info(expected);
      throw err;
    }
  }

  async active(filters: string[] = []): Promise<IngestStatus[]> {
    const res = await unaryCall<contentV1.ListStatusesResponse>((cb) => this.clients.content.listStatuses({ filters }, this.md(), cb));
    return res.statuses.map(toStatus);
  }

  async abort(ref: string): Promise<void> {
    await unaryCall((cb) => this.clients.content.abort({ ref }, this.md(), cb));
  }
}

export class RemoteLeases implements LeasesApi {
  constructor(
    private readonly clients: RemoteClients,
    private readonly md: () => grpc.Metadata,
  ) {}

  async create(options: CreateLeaseOptions = {}): Promise<Lease> {
    const labels = { ...(options.labels ?? {}) };
    if (options.expiresAt) labels['containerd.io/gc.expire'] = options.expiresAt.toISOString();
    const res = await unaryCall<leasesV1.CreateResponse>((cb) => this.clients.leases.create({ id: options.id ?? '', labels }, this.md(), cb));
    const lease = res.lease!;
    return { id: lease.id, createdAt: lease.createdAt ?? new Date(0), labels: { ...lease.labels } };
  }

  async list(filters: string[] = []): Promise<Lease[]> {
    const res = await unaryCall<leasesV1.ListResponse>((cb) => this.clients.leases.list({ filters }, this.md(), cb));
    return res.leases.map((l) => ({ id: l.id, createdAt: l.createdAt ?? new Date(0), labels: { ...l.labels } }));
  }

  async delete(id: string, options: { sync?: boolean } = {}): Promise<void> {
    await unaryCall((cb) => this.clients.leases.delete({ id, sync: options.sync ?? false }, this.md(), cb));
  }

  async addResource(id: string, resource: LeaseResource): Promise<void> {
    await unaryCall((cb) => this.clients.leases.addResource({ id, resource }, this.md(), cb));
  }

  async deleteResource(id: string, resource: LeaseResource): Promise<void> {
    await unaryCall((cb) => this.clients.leases.deleteResource({ id, resource }, this.md(), cb));
  }

  async listResources(id: string): Promise<LeaseResource[]> {
    const res = await unaryCall<leasesV1.ListResourcesResponse>((cb) => this.clients.leases.listResources({ id }, this.md(), cb));
    return res.resources.map((r) => ({ id: r.id, type: r.type }));
  }
}

const snapshotKinds = new Map<snapshotsV1.Kind, SnapshotKind>([
  [snapshotsV1.Kind.VIEW, 'view'],
  [snapshotsV1.Kind.ACTIVE, 'active'],
  [snapshotsV1.Kind.COMMITTED, 'committed'],
]);

function toSnapshotInfo(info: snapshotsV1.Info | undefined): SnapshotInfo {
  if (!info) throw new InternalError('server answered without snapshot info');
  const kind = snapshotKinds.get(info.kind);
  if (!kind) throw new InternalError(`server answered snapshot ${JSON.stringify(info.name)} of unknown kind ${info.kind}`);
  return {
    kind,
    name: info.name,
    parent: info.parent,
    labels: { ...info.labels },
    createdAt: info.createdAt ?? new Date(0),
    updatedAt: info.updatedAt ?? new Date(0),
  };
}

function toMounts(mounts: containerdTypes.Mount[]): Mount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, ...(m.target ? { target: m.target } : {}), options: [...m.options] }));
}

/** containerd.services.snapshots.v1.Snapshots, one snapshotter (request field `snapshotter`). */
export class RemoteSnapshots implements SnapshotsApi {
  constructor(
    private readonly clients: RemoteClients,
    private readonly md: () => grpc.Metadata,
    readonly snapshotter: string,
  ) {}

  private get client(): snapshotsV1.SnapshotsClient {
    return this.clients.snapshots;
  }

  async prepare(key: string, parent = '', options: { labels?: Labels } = {}): Promise<Mount[]> {
    const req = { snapshotter: this.snapshotter, key, parent, labels: options.labels ?? {} };
    const res = await unaryCall<snapshotsV1.PrepareSnapshotResponse>((cb) => this.client.prepare(req, this.md(), cb));
    return toMounts(res.mounts);
  }

  async view(key: string, parent = '', options: { labels?: Labels } = {}): Promise<Mount[]> {
    const req = { snapshotter: this.snapshotter, key, parent, labels: options.labels ?? {} };
    const res = await unaryCall<snapshotsV1.ViewSnapshotResponse>((cb) => this.client.view(req, this.md(), cb));
    return toMounts(res.mounts);
  }

  async mounts(key: string): Promise<Mount[]> {
    const res = await unaryCall<snapshotsV1.MountsResponse>((cb) => this.client.mounts({ snapshotter: this.snapshotter, key }, this.md(), cb));
    return toMounts(res.mounts);
  }

  async commit(name: string, key: string, options: { labels?: Labels } = {}): Promise<void> {
    const req = { snapshotter: this.snapshotter, name, key, labels: options.labels ?? {} };
    await unaryCall((cb) => this.client.commit(req, this.md(), cb));
  }

  async remove(key: string): Promise<void> {
    await unaryCall((cb) => this.client.remove({ snapshotter: this.snapshotter, key }, this.md(), cb));
  }

  async stat(key: string): Promise<SnapshotInfo> {
    const res = await unaryCall<snapshotsV1.StatSnapshotResponse>((cb) => this.client.stat({ snapshotter: this.snapshotter, key }, this.md(), cb));
    return toSnapshotInfo(res.info);
  }

  async update(info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    const req = {
      snapshotter: this.snapshotter,
      info: { name: info.name, parent: '', kind: snapshotsV1.Kind.UNKNOWN, labels: info.labels, createdAt: undefined, updatedAt: undefined },
      updateMask: fieldpaths.length ? fieldpaths : undefined,
    };
    const res = await unaryCall<snapshotsV1.UpdateSnapshotResponse>((cb) => this.client.update(req, this.md(), cb));
    return toSnapshotInfo(res.info);
  }

  async list(filters: string[] = []): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for await (const batch of readStream(this.client.list({ snapshotter: this.snapshotter, filters }, this.md()))) {
      out.push(...batch.info.map(toSnapshotInfo));
    }
    return out;
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const res = await unaryCall<snapshotsV1.UsageResponse>((cb) => this.client.usage({ snapshotter: this.snapshotter, key }, this.md(), cb));
    return { size: res.size, inodes: res.inodes };
  }
}
