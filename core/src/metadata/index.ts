export * from './types';
export { validateIdentifier, validateLabel, validateLabels, MAX_IDENTIFIER_LENGTH, MAX_LABEL_SIZE } from './identifiers';
export { openMetadataDb, METADATA_SCHEMA_VERSION, type MetadataDb, type OpenMetadataDbOptions } from './db';
export { SqliteNamespaceStore } from './namespaces';
export { SqliteMetadataStore, metadataPlugin, METADATA_DB_FILE } from './metadata-store';
export {
  SqliteNamespacedContentStore,
  ContentTopics,
  DEFAULT_INGEST_EXPIRY_MS,
  backendIngestRef,
  type ContentSharingPolicy,
  type SqliteNamespacedContentStoreOptions,
} from './content';
export { contentServicePlugin, contentServiceConfigSchema, type ContentServiceConfig } from './content-plugin';
export { GcGuard } from './gc-guard';
export { sqliteMetadataStoreOf } from './metadata-store';
export {
  SqliteSnapshotService,
  NamespacedSnapshotter,
  SnapshotTopics,
  SNAPSHOT_REF_LABEL,
  INHERITED_SNAPSHOT_LABEL_PREFIX,
  DEFAULT_SNAPSHOTTER,
  backendSnapshotKey,
  inheritedSnapshotLabels,
  snapshotResourceType,
  type SnapshotGarbageCollector,
  type SqliteSnapshotServiceOptions,
} from './snapshots';
export { snapshotsServicePlugin, snapshotsServiceConfigSchema, type SnapshotsServiceConfig } from './snapshots-plugin';
