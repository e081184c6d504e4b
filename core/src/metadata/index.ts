export * from './types';
export { validateIdentifier, validateLabel, validateLabels, MAX_IDENTIFIER_LENGTH, MAX_LABEL_SIZE } from './identifiers';
export { openMetadataDb, METADATA_SCHEMA_VERSION, type MetadataDb, type OpenMetadataDbOptions } from './db';
export { SqliteNamespaceStore } from './namespaces';
export { SqliteMetadataStore, metadataPlugin, METADATA_DB_FILE } from './metadata-store';
