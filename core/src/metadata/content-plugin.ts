import { z } from 'zod';
import type { ContentStore } from '../content/types';
import { NamespacedContentStore } from '../content/types';
import type { EventExchange } from '../events/types';
import type { GarbageCollector } from '../leases/types';
import { PluginType, type PluginRegistration } from '../plugin/types';
import { SqliteNamespacedContentStore } from './content';
import { bindConstantOnce, sqliteMetadataStoreOf } from './metadata-store';

/** `[plugins."io.berth.service.v1.content"]` */
export const contentServiceConfigSchema = z
  .object({
    /**
     * containerd's content_sharing_policy: `shared` links a blob the store
     * holds for another namespace without the bytes; `isolated` makes every
     * namespace write them.
     */
    content_sharing_policy: z.enum(['shared', 'isolated']).default('shared'),
  })
  .strict();
export type ContentServiceConfig = z.output<typeof contentServiceConfigSchema>;

/**
 * `io.berth.service.v1.content`: the raw content plugin's store seen through
 * namespaces and leases, for the gRPC Content service and the facade. Also
 * bound in the shared container as NamespacedContentStore.
 */
export const contentServicePlugin: PluginRegistration<ContentServiceConfig, SqliteNamespacedContentStore> = {
  type: PluginType.Service,
  id: 'content',
  requires: [PluginType.Metadata, PluginType.Content, PluginType.GC, PluginType.Event],
  config: contentServiceConfigSchema,
  init(ctx) {
    const store = new SqliteNamespacedContentStore({
      metadata: sqliteMetadataStoreOf(ctx),
      content: ctx.getSingle<ContentStore>(PluginType.Content),
      events: ctx.getSingle<EventExchange>(PluginType.Event),
      gc: ctx.getSingle<GarbageCollector>(PluginType.GC),
      contentSharingPolicy: ctx.config.content_sharing_policy,
    });
    bindConstantOnce<NamespacedContentStore>(ctx.container, NamespacedContentStore, store);
    return store;
  },
};
