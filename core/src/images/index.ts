export * from './types';
export {
  SqliteImageStore,
  ImageTopics,
  validateImageName,
  validateImageTarget,
  MAX_IMAGE_NAME_LENGTH,
  type SqliteImageStoreOptions,
} from './image-store';
export { imagesServicePlugin } from './plugin';
export {
  MediaTypes,
  childGcLabelPrefix,
  childGcLabels,
  isConfigType,
  isIndexType,
  isLayerType,
  isManifestOrIndexType,
  isManifestType,
} from './oci';
export {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  platformPreference,
  toPlatforms,
  type PlatformSpec,
} from './platforms';
