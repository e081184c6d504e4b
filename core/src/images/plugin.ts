import type { EventExchange } from '../events/types';
import type { GarbageCollector } from '../leases/types';
import { bindConstantOnce, sqliteMetadataStoreOf } from '../metadata/metadata-store';
import { PluginType, type PluginRegistration } from '../plugin/types';
import { SqliteImageStore } from './image-store';
import { ImageStore } from './types';

/**
 * `io.berth.service.v1.images`: images in the metadata db, publishing
 * `/images/*` events. Also bound as ImageStore.
 */
export const imagesServicePlugin: PluginRegistration<unknown, SqliteImageStore> = {
  type: PluginType.Service,
  id: 'images',
  requires: [PluginType.Metadata, PluginType.GC, PluginType.Event],
  init(ctx) {
    const store = new SqliteImageStore({
      metadata: sqliteMetadataStoreOf(ctx),
      events: ctx.getSingle<EventExchange>(PluginType.Event),
      gc: ctx.getSingle<GarbageCollector>(PluginType.GC),
    });
    bindConstantOnce<ImageStore>(ctx.container, ImageStore, store);
    return store;
  },
};
