import * as grpc from '@grpc/grpc-js';
import {
  GrpcService,
  InvalidArgumentError,
  isSnapshotCleaner,
  Mount,
  namespaceOf,
  NotImplementedError,
  PluginRegistration,
  PluginSkipError,
  PluginType,
  serverStream,
  SnapshotInfo,
  SnapshotKind,
  SnapshotService,
  unary,
} from '@berth/core';
import { containerdTypes, snapshotsV1 } from '@berth/proto';
import { leaseOf } from './lease-header';

/** containerd's snapshotBatchSize: List answers in messages of this many. */
const LIST_BATCH = 100;

const kinds: Record<SnapshotKind, snapshotsV1.Kind> = {
  view: snapshotsV1.Kind.VIEW,
  active: snapshotsV1.Kind.ACTIVE,
  committed: snapshotsV1.Kind.COMMITTED,
};

export function toProtoMounts(mounts: readonly Mount[]): containerdTypes.Mount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: [...m.options] }));
}

/** containerd.types.Mount → berth's Mount (proto3 sends an absent target as ''). */
export function fromProtoMounts(mounts: readonly containerdTypes.Mount[]): Mount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, ...(m.target ? { target: m.target } : {}), options: [...m.options] }));
}

function toProtoInfo(info: SnapshotInfo): snapshotsV1.Info {
  return {
    name: info.name,
    parent: info.parent,
    kind: kinds[info.kind],
    createdAt: info.createdAt,
    updatedAt: info.updatedAt,
    labels: info.labels,
  };
}

/**
 * containerd.services.snapshots.v1.Snapshots over the SnapshotService: the
 * request's `snapshotter` picks the snapshotter ('' for the default), the
 * `containerd-namespace` header the namespace and `containerd-lease` the
 * lease that what Prepare, View and Commit create joins.
 */
export const snapshotsGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'snapshots',
  requires: [PluginType.Service],
  init: (ctx) => {
    if (!ctx.container.isBound(SnapshotService)) throw new PluginSkipError('no snapshot service is loaded');
    const snapshots = ctx.container.get<SnapshotService>(SnapshotService);
    const view = (snapshotter: string, call: { metadata: grpc.Metadata }) =>
      snapshots.forNamespace(namespaceOf(call), snapshotter || undefined, { lease: leaseOf(call) });
    return {
      register(server: grpc.Server) {
        const impl: snapshotsV1.SnapshotsServer = {
          prepare: unary(async (req, call) => ({
            mounts: toProtoMounts(await view(req.snapshotter, call).prepare(req.key, req.parent, { labels: req.labels })),
          })),
          view: unary(async (req, call) => ({
            mounts: toProtoMounts(await view(req.snapshotter, call).view(req.key, req.parent, { labels: req.labels })),
          })),
          mounts: unary(async (req, call) => ({
            mounts: toProtoMounts(await view(req.snapshotter, call).mounts(req.key)),
          })),
          commit: unary(async (req, call) => {
            await view(req.snapshotter, call).commit(req.name, req.key, { labels: req.labels });
            return {};
          }),
          remove: unary(async (req, call) => {
            await view(req.snapshotter, call).remove(req.key);
            return {};
          }),
          stat: unary(async (req, call) => ({ info: toProtoInfo(await view(req.snapshotter, call).stat(req.key)) })),
          update: unary(async (req, call) => {
            if (!req.info) throw new InvalidArgumentError('info is required');
            const info = await view(req.snapshotter, call).update(
              { name: req.info.name, labels: req.info.labels },
              req.updateMask ?? [],
            );
            return { info: toProtoInfo(info) };
          }),
          list: serverStream(async (req, call, signal) => {
            let batch: snapshotsV1.Info[] = [];
            for await (const info of view(req.snapshotter, call).walk(req.filters)) {
              if (signal.aborted) return;
              batch.push(toProtoInfo(info));
              if (batch.length === LIST_BATCH) {
                call.write({ info: batch });
                batch = [];
              }
            }
            if (batch.length) call.write({ info: batch });
          }),
          usage: unary(async (req, call) => view(req.snapshotter, call).usage(req.key)),
          cleanup: unary(async (req, call) => {
            const sn = view(req.snapshotter, call);
            if (!isSnapshotCleaner(sn)) throw new NotImplementedError('snapshotter does not implement Cleanup method');
            await sn.cleanup();
            return {};
          }),
        };
        server.addService(snapshotsV1.SnapshotsService, impl);
      },
    };
  },
};
