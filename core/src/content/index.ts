export * from './types';
export { SHA256, isValidDigest, parseDigest, sha256Digest, validateDigest, type ParsedDigest } from './digest';
export { readBlob, writeBlob, type WriteBlobOptions } from './blobs';
export { contentSuite, type ContentStoreFactory, type ContentSuiteFixture } from './content-suite';
