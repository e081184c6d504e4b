import type { Readable } from 'stream';
import type { Labels } from '../metadata/types';

/** An OCI platform (`os/arch[/variant]`). */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
}

/** An OCI content descriptor. `digest` is `sha256:<64 hex>`. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: Platform;
}

/** What the store knows of one committed blob. */
export interface ContentInfo {
  digest: string;
  size: number;
  createdAt: Date;
  updatedAt: Date;
  labels: Labels;
}

/** An ingest in progress (containerd's content.Status). */
export interface IngestStatus {
  ref: string;
  /** Bytes written so far: where a resumed write continues. */
  offset: number;
  /** Expected total size, 0 if unknown. */
  total: number;
  /** Expected digest, '' if unknown. */
  expected: string;
  startedAt: Date;
  updatedAt: Date;
}

export interface ReadOptions {
  offset?: number;
  /** Bytes to read; default to the end. */
  length?: number;
}

/** Reads committed blobs. */
export interface ContentProvider {
  /** NotFound if absent; OutOfRange if offset is past the end. */
  read(digest: string, options?: ReadOptions): Promise<Readable>;
}

/**
 * One open ingest. Data goes to an ingest dir, never under a digest name, until
 * `commit` has verified size and digest. `close` releases the ref's lock and
 * keeps the data so a later writer for the same ref resumes at `offset`.
 */
export interface ContentWriter {
  readonly ref: string;
  write(chunk: Uint8Array): Promise<void>;
  /** Bytes held so far (including those from an earlier, interrupted writer). */
  readonly offset: number;
  /** Digest of the bytes held so far. */
  digest(): string;
  status(): Promise<IngestStatus>;
  /** Discards data beyond `size` (only 0 must be supported). */
  truncate(size: number): Promise<void>;
  /**
   * Verifies and publishes the blob. `size` 0 and `expected` '' skip those checks.
   * FailedPrecondition on a mismatch (nothing committed, ingest removed);
   * AlreadyExists when the blob is already present (ingest removed).
   */
  commit(size: number, expected: string, options?: { labels?: Labels }): Promise<void>;
  close(): Promise<void>;
}

export interface WriterOptions {
  ref: string;
  /** What the caller expects to write, recorded in the ingest status. */
  expected?: { size?: number; digest?: string };
}

export interface ContentIngester {
  /** Unavailable while another writer holds `ref`. */
  writer(options: WriterOptions): Promise<ContentWriter>;
}

export interface ContentManager {
  /** NotFound if absent. */
  info(digest: string): Promise<ContentInfo>;
  /**
   * Updates labels. `fieldpaths` as containerd: `labels` replaces all,
   * `labels.<key>` sets or (empty value) clears one; none replaces all.
   */
  update(info: { digest: string; labels: Labels }, fieldpaths?: string[]): Promise<ContentInfo>;
  /** Every blob matching any filter (fields `digest`, `size`, `labels.<k>`). */
  walk(filters?: string[]): AsyncIterable<ContentInfo>;
  /** NotFound if absent. */
  delete(digest: string): Promise<void>;
}

export interface IngestManager {
  /** NotFound if no ingest has this ref. */
  status(ref: string): Promise<IngestStatus>;
  /** Ingests matching any filter (field `ref`). */
  listStatuses(filters?: string[]): Promise<IngestStatus[]>;
  /** Removes an ingest and its data; NotFound if absent. */
  abort(ref: string): Promise<void>;
}

/** containerd's content.Store: the four roles together. */
export interface ContentStore extends ContentProvider, ContentIngester, ContentManager, IngestManager {}
export const ContentStore = Symbol.for('io.berth.ContentStore');

/**
 * Content seen through namespaces: a blob is visible in a namespace once
 * something there wrote or referenced it, and `forNamespace` gives the
 * ContentStore view of one namespace. `lease` adds what that view writes to a lease.
 */
export interface NamespacedContentStore {
  forNamespace(namespace: string, options?: { lease?: string }): ContentStore;
}
export const NamespacedContentStore = Symbol.for('io.berth.NamespacedContentStore');
