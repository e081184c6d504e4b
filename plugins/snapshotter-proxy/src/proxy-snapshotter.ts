import * as grpc from '@grpc/grpc-js';
import {
  fromGrpcError,
  grpcTarget,
  InternalError,
  isNotImplemented,
  UnavailableError,
  type Labels,
  type Mount,
  type SnapshotCleaner,
  type SnapshotInfo,
  type SnapshotOptions,
  type Snapshotter,
  type SnapshotUsage,
} from '@berth/core';
import { snapshotsV1 } from '@berth/proto';
import { fromProtoInfo, fromProtoMount } from './convert';

/** containerd's limits on its own sockets; mount lists and listings stay far below. */
const channelOptions: grpc.ClientOptions = {
  'grpc.max_receive_message_length': 16 << 20,
  'grpc.max_send_message_length': 16 << 20,
};

export interface ProxySnapshotterConnectOptions {
  /** How long to wait for the socket to accept a connection (default 5000 ms). */
  timeoutMs?: number;
}

type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;

/** One unary call; the server's status comes back as the matching berth error kind. */
function call<Res>(invoke: (callback: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke((err, res) => (err ? reject(fromGrpcError(err)) : resolve(res)));
  });
}

/**
 * A Snapshotter served by another process over containerd's
 * `containerd.services.snapshots.v1.Snapshots` API: what containerd calls a
 * proxy plugin. Every request names the snapshotter `name`, as containerd's
 * proxy does, so one server may host several. Keys go through unchanged: this
 * is a raw snapshotter, and whoever namespaces keys does so above it.
 */
export class ProxySnapshotter implements Snapshotter, SnapshotCleaner {
  constructor(
    private readonly client: snapshotsV1.SnapshotsClient,
    /** Put in each request's `snapshotter` field. */
    readonly name: string,
  ) {}

  /**
   * Dials `address` (a socket path or `unix://` URI) and waits until it accepts
   * a connection; Unavailable naming the address when it does not in time.
   */
  static async connect(address: string, name: string, options: ProxySnapshotterConnectOptions = {}): Promise<ProxySnapshotter> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const client = new snapshotsV1.SnapshotsClient(grpcTarget(address), grpc.credentials.createInsecure(), channelOptions);
    try {
      await new Promise<void>((resolve, reject) =>
        client.waitForReady(Date.now() + timeoutMs, (err) =>
          err
            ? reject(new UnavailableError(`cannot connect to snapshotter ${JSON.stringify(name)} at ${address} within ${timeoutMs} ms: ${err.message}`))
            : resolve(),
        ),
      );
    } catch (err) {
      client.close();
      throw err;
    }
    return new ProxySnapshotter(client, name);
  }

  async stat(key: string): Promise<SnapshotInfo> {
    const res = await call<snapshotsV1.StatSnapshotResponse>((cb) => this.client.stat({ snapshotter: this.name, key }, cb));
    return fromProtoInfo(required(res.info, 'Stat'));
  }

  async update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo> {
    const request: snapshotsV1.UpdateSnapshotRequest = {
      snapshotter: this.name,
      info: { name: info.name, parent: '', kind: snapshotsV1.Kind.UNKNOWN, labels: info.labels ?? {} },
      updateMask: fieldpaths && fieldpaths.length > 0 ? fieldpaths : undefined,
    };
    const res = await call<snapshotsV1.UpdateSnapshotResponse>((cb) => this.client.update(request, cb));
    return fromProtoInfo(required(res.info, 'Update'));
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const res = await call<snapshotsV1.UsageResponse>((cb) => this.client.usage({ snapshotter: this.name, key }, cb));
    return { size: res.size, inodes: res.inodes };
  }

  async mounts(key: string): Promise<Mount[]> {
    const res = await call<snapshotsV1.MountsResponse>((cb) => this.client.mounts({ snapshotter: this.name, key }, cb));
    return res.mounts.map(fromProtoMount);
  }

  async prepare(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    const request = { snapshotter: this.name, key, parent, labels: options?.labels ?? {} };
    const res = await call<snapshotsV1.PrepareSnapshotResponse>((cb) => this.client.prepare(request, cb));
    return res.mounts.map(fromProtoMount);
  }

  async view(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    const request = { snapshotter: this.name, key, parent, labels: options?.labels ?? {} };
    const res = await call<snapshotsV1.ViewSnapshotResponse>((cb) => this.client.view(request, cb));
    return res.mounts.map(fromProtoMount);
  }

  async commit(name: string, key: string, options?: SnapshotOptions): Promise<void> {
    const request = { snapshotter: this.name, name, key, labels: options?.labels ?? {} };
    await call((cb) => this.client.commit(request, cb));
  }

  async remove(key: string): Promise<void> {
    await call((cb) => this.client.remove({ snapshotter: this.name, key }, cb));
  }

  async *walk(filters: string[] = []): AsyncIterable<SnapshotInfo> {
    const stream = this.client.list({ snapshotter: this.name, filters });
    let finished = false;
    try {
      for await (const res of stream as AsyncIterable<snapshotsV1.ListSnapshotsResponse>) {
        for (const info of res.info) yield fromProtoInfo(info);
      }
      finished = true;
    } catch (err) {
      finished = true;
      throw fromGrpcError(err);
    } finally {
      // The caller stopped early: tell the server to stop walking.
      if (!finished) stream.cancel();
    }
  }

  /**
   * Asks the server to reclaim space. A server whose snapshotter has nothing
   * to clean up answers Unimplemented; that is success here, as in containerd's GC.
   */
  async cleanup(): Promise<void> {
    try {
      await call((cb) => this.client.cleanup({ snapshotter: this.name }, cb));
    } catch (err) {
      if (!isNotImplemented(err)) throw err;
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

function required<T>(value: T | undefined, method: string): T {
  if (value === undefined) throw new InternalError(`snapshots ${method}: the server returned no info`);
  return value;
}
