import * as grpc from '@grpc/grpc-js';
import {
  containersV1,
  contentV1,
  eventsV1,
  imagesV1,
  introspectionV1,
  leasesV1,
  namespacesV1,
  snapshotsV1,
  tasksV1,
  transferV1,
  versionV1,
} from '@berth/proto';
import { BerthError, CanceledError, fromGrpcError, UnavailableError } from '../errdefs';
import type { AnyMessage, EventEnvelope } from '../events/types';
import type { Labels, Namespace } from '../metadata/types';
import { DEFAULT_NAMESPACE } from '../version';
import { LEASE_METADATA_KEY, NAMESPACE_METADATA_KEY } from '../server/grpc-service';
import { RemoteContent, RemoteImages, RemoteLeases, RemoteSnapshots, unaryCall as call } from './remote-apis';
import { RemoteContainers } from './remote-containers';
import { RemoteTasks } from './remote-tasks';
import type {
  Berth,
  ContainersApi,
  TasksApi,
  ContentApi,
  EventsApi,
  ImagesApi,
  IntrospectionApi,
  LeasesApi,
  NamespacesApi,
  PluginInfo,
  SnapshotsApi,
  VersionInfo,
} from './types';


export interface ConnectOptions {
  namespace?: string;
  /** How long to wait for the socket to accept a connection. */
  timeoutMs?: number;
}


/** Turns `/path` or `unix:///path` into a grpc-js target. */
export function grpcTarget(address: string): string {
  if (address.startsWith('unix:')) return address;
  return `unix://${address}`;
}

/** The gRPC channel and typed clients for every service berthd serves. */
class Connection {
  readonly version: versionV1.VersionClient;
  readonly namespaces: namespacesV1.NamespacesClient;
  readonly introspection: introspectionV1.IntrospectionClient;
  readonly events: eventsV1.EventsClient;
  readonly content: contentV1.ContentClient;
  readonly images: imagesV1.ImagesClient;
  readonly leases: leasesV1.LeasesClient;
  readonly transfer: transferV1.TransferClient;
  readonly snapshots: snapshotsV1.SnapshotsClient;
  readonly containers: containersV1.ContainersClient;
  readonly tasks: tasksV1.TasksClient;

  constructor(readonly address: string) {
    const target = grpcTarget(address);
    const creds = grpc.credentials.createInsecure();
    const options = {
      'grpc.max_receive_message_length': 16 << 20,
      'grpc.max_send_message_length': 16 << 20,
    };
    this.version = new versionV1.VersionClient(target, creds, options);
    // Share one channel between the clients.
    const channelOverride = this.version.getChannel();
    const shared = { ...options, channelOverride } as grpc.ClientOptions;
    this.namespaces = new namespacesV1.NamespacesClient(target, creds, shared);
    this.introspection = new introspectionV1.IntrospectionClient(target, creds, shared);
    this.events = new eventsV1.EventsClient(target, creds, shared);
    this.content = new contentV1.ContentClient(target, creds, shared);
    this.images = new imagesV1.ImagesClient(target, creds, shared);
    this.leases = new leasesV1.LeasesClient(target, creds, shared);
    this.transfer = new transferV1.TransferClient(target, creds, shared);
    this.snapshots = new snapshotsV1.SnapshotsClient(target, creds, shared);
    this.containers = new containersV1.ContainersClient(target, creds, shared);
    this.tasks = new tasksV1.TasksClient(target, creds, shared);
  }

  waitReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.version.waitForReady(Date.now() + timeoutMs, (err) =>
        err ? reject(new UnavailableError(`cannot connect to berthd at ${this.address}: ${err.message}`)) : resolve(),
      );
    });
  }

  close(): void {
    this.version.close();
  }
}

class RemoteBerth implements Berth {
  readonly namespaces: NamespacesApi;
  readonly events: EventsApi;
  readonly introspection: IntrospectionApi;
  readonly images: ImagesApi;
  readonly content: ContentApi;
  readonly leases: LeasesApi;
  readonly containers: ContainersApi;
  readonly tasks: TasksApi;

  constructor(
    private readonly conn: Connection,
    readonly namespace: string,
    private readonly owner: boolean,
    readonly lease?: string,
  ) {
    const md = () => this.metadata();
    this.namespaces = new RemoteNamespaces(conn, md);
    this.events = new RemoteEvents(conn, md);
    this.introspection = new RemoteIntrospection(conn, md);
    this.images = new RemoteImages(conn, md);
    this.content = new RemoteContent(conn, md);
    this.leases = new RemoteLeases(conn, md);
    this.containers = new RemoteContainers(conn, md);
    this.tasks = new RemoteTasks(conn, md);
  }

  snapshots(snapshotter = ''): SnapshotsApi {
    return new RemoteSnapshots(this.conn, () => this.metadata(), snapshotter);
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(NAMESPACE_METADATA_KEY, this.namespace);
    if (this.lease) md.set(LEASE_METADATA_KEY, this.lease);
    return md;
  }

  async version(): Promise<VersionInfo> {
    const res = await call<versionV1.VersionResponse>((cb) => this.conn.version.version({}, this.metadata(), cb));
    return { version: res.version, revision: res.revision };
  }

  withNamespace(namespace: string): Berth {
    return new RemoteBerth(this.conn, namespace, false, this.lease);
  }

  withLease(id: string): Berth {
    return new RemoteBerth(this.conn, this.namespace, false, id);
  }

  async close(): Promise<void> {
    if (this.owner) this.conn.close();
  }
}

class RemoteNamespaces implements NamespacesApi {
  constructor(
    private readonly conn: Connection,
    private readonly md: () => grpc.Metadata,
  ) {}

  private get client() {
    return this.conn.namespaces;
  }

  async list(): Promise<Namespace[]> {
    const res = await call<namespacesV1.ListNamespacesResponse>((cb) => this.client.list({ filter: '' }, this.md(), cb));
    return res.namespaces.map((n) => ({ name: n.name, labels: { ...n.labels } }));
  }

  async get(name: string): Promise<Namespace> {
    const res = await call<namespacesV1.GetNamespaceResponse>((cb) => this.client.get({ name }, this.md(), cb));
    return { name: res.namespace?.name ?? name, labels: { ...(res.namespace?.labels ?? {}) } };
  }

  async create(name: string, labels: Labels = {}): Promise<Namespace> {
    const res = await call<namespacesV1.CreateNamespaceResponse>((cb) =>
      this.client.create({ namespace: { name, labels } }, this.md(), cb),
    );
    return { name, labels: { ...(res.namespace?.labels ?? {}) } };
  }

  async label(name: string, labels: Labels): Promise<Namespace> {
    const updateMask = Object.keys(labels).map((k) => `labels.${k}`);
    const res = await call<namespacesV1.UpdateNamespaceResponse>((cb) =>
      this.client.update({ namespace: { name, labels }, updateMask }, this.md(), cb),
    );
    return { name, labels: { ...(res.namespace?.labels ?? {}) } };
  }

  async delete(name: string): Promise<void> {
    await call<unknown>((cb) => this.client.delete({ name }, this.md(), cb));
  }
}

class RemoteIntrospection implements IntrospectionApi {
  constructor(
    private readonly conn: Connection,
    private readonly md: () => grpc.Metadata,
  ) {}

  async plugins(filters: string[] = []): Promise<PluginInfo[]> {
    const client = this.conn.introspection;
    const res = await call<introspectionV1.PluginsResponse>((cb) => client.plugins({ filters }, this.md(), cb));
    return res.plugins.map((p): PluginInfo => {
      const message = p.initErr?.message;
      const skipped = message !== undefined && message.includes('skip plugin');
      return {
        type: p.type,
        id: p.id,
        requires: p.requires,
        platforms: p.platforms.map((pl) => [pl.os, pl.architecture, pl.variant].filter(Boolean).join('/')),
        exports: { ...p.exports },
        capabilities: p.capabilities,
        status: p.initErr ? (skipped ? 'skipped' : 'error') : 'ok',
        error: message,
      };
    });
  }

  async server(): Promise<{ uuid: string }> {
    const client = this.conn.introspection;
    const res = await call<introspectionV1.ServerResponse>((cb) => client.server({}, this.md(), cb));
    return { uuid: res.uuid };
  }
}

class RemoteEvents implements EventsApi {
  constructor(
    private readonly conn: Connection,
    private readonly md: () => grpc.Metadata,
  ) {}

  async publish(topic: string, event: AnyMessage): Promise<void> {
    const client = this.conn.events;
    await call<unknown>((cb) =>
      client.publish({ topic, event: { typeUrl: event.typeUrl, value: Buffer.from(event.value) } }, this.md(), cb),
    );
  }

  async *subscribe(filters: string[] = [], signal?: AbortSignal): AsyncIterable<EventEnvelope> {
    const stream = this.conn.events.subscribe({ filters }, this.md());
    const onAbort = () => stream.cancel();
    if (signal?.aborted) return;
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const env of stream as AsyncIterable<eventsV1.Envelope>) {
        yield {
          timestamp: env.timestamp ?? new Date(0),
          namespace: env.namespace,
          topic: env.topic,
          event: { typeUrl: env.event?.typeUrl ?? '', value: env.event?.value ?? new Uint8Array() },
        };
      }
    } catch (err) {
      const e = fromGrpcError(err);
      if (signal?.aborted || e instanceof CanceledError || e.kind === 'canceled') return;
      throw e as BerthError;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stream.cancel();
    }
  }
}

/** Connects to a running berthd; the facade speaks gRPC to it. */
export async function connect(address: string, options: ConnectOptions = {}): Promise<Berth> {
  const conn = new Connection(address);
  try {
    await conn.waitReady(options.timeoutMs ?? 10_000);
  } catch (err) {
    conn.close();
    throw err;
  }
  return new RemoteBerth(conn, options.namespace ?? DEFAULT_NAMESPACE, true);
}
