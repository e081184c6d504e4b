export * from './types';
export { diskUsage } from './disk-usage';
export { updatedLabels } from './labels';
export { snapshotFilter } from './walk-filter';
export { bindSnapshotter } from './register';
export {
  SnapshotMetaStore,
  type NewSnapshot,
  type SnapshotDirectory,
  type SnapshotMetaStoreOptions,
  type StoredInfo,
  type StoredSnapshot,
} from './storage';
export {
  snapshotterSuite,
  type SnapshotMounter,
  type SnapshotterFactory,
  type SnapshotterSuiteFixture,
  type SnapshotterSuiteOptions,
  type XattrAccess,
} from './snapshotter-suite';
