import { bindConstantOnce, sqliteMetadataStoreOf } from '../metadata/metadata-store';
import { PluginType, type PluginRegistration } from '../plugin/types';
import { SqliteLeaseManager } from './lease-manager';
import { GarbageCollector, LeaseManager } from './types';

/** `io.berth.lease.v1.manager`: leases in the metadata db. Also bound as LeaseManager. */
export const leasesPlugin: PluginRegistration<unknown, SqliteLeaseManager> = {
  type: PluginType.Lease,
  id: 'manager',
  requires: [PluginType.Metadata, PluginType.GC],
  init(ctx) {
    const manager = new SqliteLeaseManager({
      metadata: sqliteMetadataStoreOf(ctx),
      gc: ctx.getSingle<GarbageCollector>(PluginType.GC),
    });
    bindConstantOnce<LeaseManager>(ctx.container, LeaseManager, manager);
    return manager;
  },
};

/** `io.berth.service.v1.leases`: the lease manager for the gRPC Leases service, as containerd's leases-service. */
export const leasesServicePlugin: PluginRegistration<unknown, LeaseManager> = {
  type: PluginType.Service,
  id: 'leases',
  requires: [PluginType.Lease],
  init: (ctx) => ctx.getSingle<LeaseManager>(PluginType.Lease),
};
