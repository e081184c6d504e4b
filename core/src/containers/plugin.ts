import type { EventExchange } from '../events/types';
import type { GarbageCollector } from '../leases/types';
import { bindConstantOnce, sqliteMetadataStoreOf } from '../metadata/metadata-store';
import { PluginType, type PluginRegistration } from '../plugin/types';
import { SqliteContainerStore } from './container-store';
import { ContainerStore } from './types';

/**
 * `io.berth.service.v1.containers`: containers in the metadata db,
 * publishing `/containers/*` events. Also bound as ContainerStore.
 */
export const containersServicePlugin: PluginRegistration<unknown, SqliteContainerStore> = {
  type: PluginType.Service,
  id: 'containers',
  requires: [PluginType.Metadata, PluginType.GC, PluginType.Event],
  init(ctx) {
    const store = new SqliteContainerStore({
      metadata: sqliteMetadataStoreOf(ctx),
      events: ctx.getSingle<EventExchange>(PluginType.Event),
      gc: ctx.getSingle<GarbageCollector>(PluginType.GC),
    });
    bindConstantOnce<ContainerStore>(ctx.container, ContainerStore, store);
    return store;
  },
};
