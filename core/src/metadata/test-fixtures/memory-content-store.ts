import { Readable } from 'node:stream';
import { sha256Digest, validateDigest } from '../../content/digest';
import type {
  ContentInfo,
  ContentStore,
  ContentWriter,
  IngestStatus,
  ReadOptions,
  WriterOptions,
} from '../../content/types';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  UnavailableError,
} from '../../errdefs';
import { adaptObject, parseFilters } from '../../filters';
import { validateLabels } from '../identifiers';
import { applyLabelPaths } from '../labels';
import type { Labels } from '../types';

interface Blob {
  data: Buffer;
  createdAt: Date;
  updatedAt: Date;
  labels: Labels;
}

interface Ingest {
  data: Buffer;
  total: number;
  expected: string;
  startedAt: Date;
  updatedAt: Date;
}

/**
 * A raw, namespace-less ContentStore in memory with the contract of
 * core/src/content/types.ts, for tests of the layers above it.
 */
export class MemoryContentStore implements ContentStore {
  readonly blobs = new Map<string, Blob>();
  readonly ingests = new Map<string, Ingest>();
  private readonly locked = new Set<string>();

  /** Puts a blob straight into the store, as if committed earlier. */
  seed(data: string | Uint8Array): string {
    const digest = sha256Digest(data);
    const now = new Date();
    this.blobs.set(digest, { data: Buffer.from(data), createdAt: now, updatedAt: now, labels: {} });
    return digest;
  }

  async read(digest: string, options: ReadOptions = {}): Promise<Readable> {
    const blob = this.mustGet(digest);
    const offset = options.offset ?? 0;
    if (offset < 0 || (options.length ?? 0) < 0) throw new InvalidArgumentError('offset and length must not be negative');
    if (offset > blob.data.length) throw new OutOfRangeError(`offset ${offset} is past the end of ${digest}`);
    const end = options.length === undefined ? blob.data.length : Math.min(blob.data.length, offset + options.length);
    return Readable.from([blob.data.subarray(offset, end)]);
  }

  async writer(options: WriterOptions): Promise<ContentWriter> {
    const { ref } = options;
    if (!ref) throw new InvalidArgumentError('ref must not be empty');
    const expected = options.expected?.digest ?? '';
    if (expected) validateDigest(expected, 'expected digest');
    if (expected && this.blobs.has(expected)) throw new AlreadyExistsError(`content ${expected}: already exists`);
    if (this.locked.has(ref)) throw new UnavailableError(`ref ${ref} locked`);
    this.locked.add(ref);
    let ingest = this.ingests.get(ref);
    if (!ingest) {
      const now = new Date();
      ingest = { data: Buffer.alloc(0), total: options.expected?.size ?? 0, expected, startedAt: now, updatedAt: now };
      this.ingests.set(ref, ingest);
    }
    return this.newWriter(ref, ingest);
  }

  async info(digest: string): Promise<ContentInfo> {
    const blob = this.mustGet(digest);
    return { digest, size: blob.data.length, createdAt: blob.createdAt, updatedAt: blob.updatedAt, labels: { ...blob.labels } };
  }

  async update(info: { digest: string; labels: Labels }, fieldpaths: string[] = []): Promise<ContentInfo> {
    const blob = this.mustGet(info.digest);
    const { labels, otherPaths } = applyLabelPaths(blob.labels, info.labels, fieldpaths.length ? fieldpaths : ['labels']);
    if (otherPaths.length) throw new InvalidArgumentError(`cannot update ${otherPaths.join(', ')}`);
    validateLabels(labels);
    blob.labels = labels;
    blob.updatedAt = new Date();
    return this.info(info.digest);
  }

  async *walk(filters: string[] = []): AsyncIterable<ContentInfo> {
    const filter = parseFilters(filters);
    for (const digest of [...this.blobs.keys()]) {
      if (!this.blobs.has(digest)) continue;
      const info = await this.info(digest);
      if (filter.match(adaptObject({ digest, size: String(info.size), labels: info.labels }))) yield info;
    }
  }

  async delete(digest: string): Promise<void> {
    this.mustGet(digest);
    this.blobs.delete(digest);
  }

  async status(ref: string): Promise<IngestStatus> {
    const ingest = this.ingests.get(ref);
    if (!ingest) throw new NotFoundError(`ingest ${ref}: not found`);
    return statusOf(ref, ingest);
  }

  async listStatuses(filters: string[] = []): Promise<IngestStatus[]> {
    const filter = parseFilters(filters);
    return [...this.ingests].map(([ref, ingest]) => statusOf(ref, ingest)).filter((s) => filter.match(adaptObject({ ref: s.ref })));
  }

  async abort(ref: string): Promise<void> {
    if (!this.ingests.delete(ref)) throw new NotFoundError(`ingest ${ref}: not found`);
  }

  private mustGet(digest: string): Blob {
    validateDigest(digest);
    const blob = this.blobs.get(digest);
    if (!blob) throw new NotFoundError(`content ${digest}: not found`);
    return blob;
  }

  private newWriter(ref: string, ingest: Ingest): ContentWriter {
    const store = this;
    let open = true;
    const release = () => {
      if (open) store.locked.delete(ref);
      open = false;
    };
    const mustBeOpen = () => {
      if (!open) throw new FailedPreconditionError(`writer for ${ref} is closed`);
    };
    return {
      ref,
      get offset() {
        return ingest.data.length;
      },
      async write(chunk) {
        mustBeOpen();
        ingest.data = Buffer.concat([ingest.data, chunk]);
        ingest.updatedAt = new Date();
      },
      digest: () => sha256Digest(ingest.data),
      status: async () => statusOf(ref, ingest),
      async truncate(size) {
        mustBeOpen();
        ingest.data = ingest.data.subarray(0, size);
      },
      async commit(size, expected, options = {}) {
        mustBeOpen();
        if (expected) validateDigest(expected, 'expected digest');
        store.ingests.delete(ref);
        release();
        const actual = sha256Digest(ingest.data);
        if (size !== 0 && size !== ingest.data.length) {
          throw new FailedPreconditionError(`${ref}: unexpected size ${ingest.data.length}, expected ${size}`);
        }
        if (expected && expected !== actual) {
          throw new FailedPreconditionError(`${ref}: unexpected commit digest ${actual}, expected ${expected}`);
        }
        if (store.blobs.has(actual)) throw new AlreadyExistsError(`content ${actual}: already exists`);
        const now = new Date();
        store.blobs.set(actual, { data: ingest.data, createdAt: now, updatedAt: now, labels: { ...options.labels } });
      },
      async close() {
        release();
      },
    };
  }
}

function statusOf(ref: string, ingest: Ingest): IngestStatus {
  return {
    ref,
    offset: ingest.data.length,
    total: ingest.total,
    expected: ingest.expected,
    startedAt: ingest.startedAt,
    updatedAt: ingest.updatedAt,
  };
}
