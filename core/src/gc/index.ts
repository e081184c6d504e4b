export type { GcObject, GcResource, GcSweeper } from './types';
export {
  MetadataGarbageCollector,
  DEFAULT_GC_INTERVAL_MS,
  DEFAULT_GC_SCHEDULE_DELAY_MS,
  type MetadataGarbageCollectorOptions,
} from './collector';
export { labelReferences, isGcRoot } from './references';
export { gcPlugin, gcConfigSchema, type GcConfig } from './plugin';
export { coreContentPlugins } from './core-content-plugins';
