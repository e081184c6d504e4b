import { z } from 'zod';
import type { EventExchange } from '../events/types';
import type { GarbageCollector } from '../leases/types';
import { PluginType, type PluginRegistration } from '../plugin/types';
import { SnapshotService, type Snapshotter } from '../snapshots/types';
import { bindConstantOnce, sqliteMetadataStoreOf } from './metadata-store';
import { DEFAULT_SNAPSHOTTER, SqliteSnapshotService, type SnapshotGarbageCollector } from './snapshots';

/** `[plugins."io.berth.service.v1.snapshots"]` */
export const snapshotsServiceConfigSchema = z
  .object({
    /** The snapshotter used when a request names none (ctr's `--snapshotter` left empty). */
    default_snapshotter: z.string().min(1).default(DEFAULT_SNAPSHOTTER),
  })
  .strict();
export type SnapshotsServiceConfig = z.output<typeof snapshotsServiceConfigSchema>;

/**
 * `io.berth.service.v1.snapshots`: every loaded snapshotter seen through
 * namespaces and leases (containerd's metadata snapshotter), for the gRPC
 * Snapshots service, unpack and the facade. Bound as SnapshotService. Its
 * sweepers let the collector remove snapshots nothing references.
 */
export const snapshotsServicePlugin: PluginRegistration<SnapshotsServiceConfig, SqliteSnapshotService> = {
  type: PluginType.Service,
  id: 'snapshots',
  requires: [PluginType.Metadata, PluginType.Snapshotter, PluginType.GC, PluginType.Event],
  config: snapshotsServiceConfigSchema,
  init(ctx) {
    const service = new SqliteSnapshotService({
      metadata: sqliteMetadataStoreOf(ctx),
      snapshotters: ctx.getByType<Snapshotter>(PluginType.Snapshotter),
      defaultSnapshotter: ctx.config.default_snapshotter,
      events: ctx.getSingle<EventExchange>(PluginType.Event),
      gc: ctx.getSingle<GarbageCollector>(PluginType.GC) as SnapshotGarbageCollector,
      logger: ctx.logger,
    });
    try {
      bindConstantOnce<SnapshotService>(ctx.container, SnapshotService, service);
    } catch (err) {
      service.close();
      throw err;
    }
    ctx.meta.exports.default_snapshotter = service.defaultName;
    ctx.meta.exports.snapshotters = service.names().join(',');
    return service;
  },
};
