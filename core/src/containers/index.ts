export * from './types';
export { containersServicePlugin } from './plugin';
export { SqliteContainerStore, type SqliteContainerStoreOptions } from './container-store';
