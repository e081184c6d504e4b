import { z } from 'zod';
import type { ContentStore } from '../content/types';
import { GarbageCollector } from '../leases/types';
import { bindConstantOnce, sqliteMetadataStoreOf } from '../metadata/metadata-store';
import { PluginType, type PluginRegistration } from '../plugin/types';
import { DEFAULT_GC_INTERVAL_MS, DEFAULT_GC_SCHEDULE_DELAY_MS, MetadataGarbageCollector } from './collector';

/** `[plugins."io.berth.gc.v1.scheduler"]` */
export const gcConfigSchema = z
  .object({
    /** Wait after a delete before collecting, so a burst of deletes costs one collection. */
    schedule_delay_ms: z.number().int().min(0).default(DEFAULT_GC_SCHEDULE_DELAY_MS),
    /** Collect in the background this often; 0 turns it off. */
    interval_ms: z.number().int().min(0).default(DEFAULT_GC_INTERVAL_MS),
  })
  .strict();
export type GcConfig = z.output<typeof gcConfigSchema>;

/**
 * `io.berth.gc.v1.scheduler`: the metadata garbage collector over the
 * metadata db and the raw content plugin. Also bound as GarbageCollector.
 */
export const gcPlugin: PluginRegistration<GcConfig, MetadataGarbageCollector> = {
  type: PluginType.GC,
  id: 'scheduler',
  requires: [PluginType.Metadata, PluginType.Content],
  config: gcConfigSchema,
  init(ctx) {
    const collector = new MetadataGarbageCollector({
      metadata: sqliteMetadataStoreOf(ctx),
      content: ctx.getSingle<ContentStore>(PluginType.Content),
      scheduleDelayMs: ctx.config.schedule_delay_ms,
      intervalMs: ctx.config.interval_ms,
      logger: ctx.logger,
    });
    bindConstantOnce<GarbageCollector>(ctx.container, GarbageCollector, collector);
    return collector;
  },
};
