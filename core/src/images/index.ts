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
