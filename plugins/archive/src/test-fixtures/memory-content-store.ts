import { createHash } from 'crypto';
import { Readable } from 'stream';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  NotFoundError,
  OutOfRangeError,
  UnavailableError,
  type ContentInfo,
  type ContentStore,
  type ContentWriter,
  type IngestStatus,
  type Labels,
  type ReadOptions,
  type WriterOptions,
} from '@berth/core';

interface Ingest {
  chunks: Buffer[];
  offset: number;
  total: number;
  expected: string;
  startedAt: Date;
  updatedAt: Date;
}

/**
 * A ContentStore in memory with containerd's semantics where the archive code
 * relies on them: verified commits, one writer per ref, resumable ingests,
 * label updates by field path. Filters are not supported.
 */
export class MemoryContentStore implements ContentStore {
  readonly blobs = new Map<string, { data: Buffer; info: ContentInfo }>();
  readonly ingests = new Map<string, Ingest>();
  private readonly locked = new Set<string>();

  async read(digest: string, options: ReadOptions = {}): Promise<Readable> {
    const blob = this.blobs.get(digest);
    if (!blob) throw new NotFoundError(`content ${digest}: not found`);
    const offset = options.offset ?? 0;
    if (offset > blob.data.length) throw new OutOfRangeError(`offset ${offset} is past the end of ${digest}`);
    const end = options.length === undefined ? blob.data.length : Math.min(blob.data.length, offset + options.length);
    // Several chunks, as a file would give, so readers cannot rely on one.
    const data = blob.data.subarray(offset, end);
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length; i += 16 * 1024) chunks.push(data.subarray(i, i + 16 * 1024));
    return Readable.from(chunks);
  }

  async writer(options: WriterOptions): Promise<ContentWriter> {
    const { ref } = options;
    if (this.locked.has(ref)) throw new UnavailableError(`ref ${ref} locked`);
    let ingest = this.ingests.get(ref);
    if (!ingest) {
      const now = new Date();
      ingest = {
        chunks: [],
        offset: 0,
        total: options.expected?.size ?? 0,
        expected: options.expected?.digest ?? '',
        startedAt: now,
        updatedAt: now,
      };
      this.ingests.set(ref, ingest);
    }
    this.locked.add(ref);
    return new MemoryWriter(this, ref, ingest);
  }

  async info(digest: string): Promise<ContentInfo> {
    const blob = this.blobs.get(digest);
    if (!blob) throw new NotFoundError(`content ${digest}: not found`);
    return { ...blob.info, labels: { ...blob.info.labels } };
  }

  async update(info: { digest: string; labels: Labels }, fieldpaths?: string[]): Promise<ContentInfo> {
    const blob = this.blobs.get(info.digest);
    if (!blob) throw new NotFoundError(`content ${info.digest}: not found`);
    if (!fieldpaths?.length || fieldpaths.includes('labels')) {
      blob.info.labels = { ...info.labels };
    } else {
      for (const path of fieldpaths) {
        if (!path.startsWith('labels.')) continue;
        const key = path.slice('labels.'.length);
        const value = info.labels[key];
        if (value) blob.info.labels[key] = value;
        else delete blob.info.labels[key];
      }
    }
    blob.info.updatedAt = new Date();
    return this.info(info.digest);
  }

  async *walk(filters?: string[]): AsyncIterable<ContentInfo> {
    if (filters?.length) throw new Error('MemoryContentStore: filters are not supported');
    for (const digest of [...this.blobs.keys()]) yield this.info(digest);
  }

  async delete(digest: string): Promise<void> {
    if (!this.blobs.delete(digest)) throw new NotFoundError(`content ${digest}: not found`);
  }

  async status(ref: string): Promise<IngestStatus> {
    const ingest = this.ingests.get(ref);
    if (!ingest) throw new NotFoundError(`ingest ${ref}: not found`);
    return statusOf(ref, ingest);
  }

  async listStatuses(filters?: string[]): Promise<IngestStatus[]> {
    if (filters?.length) throw new Error('MemoryContentStore: filters are not supported');
    return [...this.ingests].map(([ref, ingest]) => statusOf(ref, ingest));
  }

  async abort(ref: string): Promise<void> {
    if (!this.ingests.delete(ref)) throw new NotFoundError(`ingest ${ref}: not found`);
  }

  /** Test helper: the bytes of a committed blob. */
  bytes(digest: string): Buffer {
    const blob = this.blobs.get(digest);
    if (!blob) throw new NotFoundError(`content ${digest}: not found`);
    return blob.data;
  }

  /** @internal */
  publish(ref: string, data: Buffer, digest: string, labels: Labels): void {
    this.ingests.delete(ref);
    if (this.blobs.has(digest)) throw new AlreadyExistsError(`content ${digest}: already exists`);
    const now = new Date();
    this.blobs.set(digest, { data, info: { digest, size: data.length, createdAt: now, updatedAt: now, labels: { ...labels } } });
  }

  /** @internal */
  release(ref: string): void {
    this.locked.delete(ref);
  }
}

function statusOf(ref: string, ingest: Ingest): IngestStatus {
  return {
    ref,
    offset: ingest.offset,
    total: ingest.total,
    expected: ingest.expected,
    startedAt: ingest.startedAt,
    updatedAt: ingest.updatedAt,
  };
}

class MemoryWriter implements ContentWriter {
  private closed = false;

  constructor(
    private readonly store: MemoryContentStore,
    readonly ref: string,
    private readonly ingest: Ingest,
  ) {}

  get offset(): number {
    return this.ingest.offset;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.assertOpen();
    this.ingest.chunks.push(Buffer.from(chunk));
    this.ingest.offset += chunk.length;
    this.ingest.updatedAt = new Date();
  }

  digest(): string {
    return `sha256:${createHash('sha256').update(Buffer.concat(this.ingest.chunks)).digest('hex')}`;
  }

  async status(): Promise<IngestStatus> {
    return statusOf(this.ref, this.ingest);
  }

  async truncate(size: number): Promise<void> {
    if (size !== 0) throw new Error('only truncate(0) is supported');
    this.ingest.chunks = [];
    this.ingest.offset = 0;
  }

  async commit(size: number, expected: string, options?: { labels?: Labels }): Promise<void> {
    this.assertOpen();
    const data = Buffer.concat(this.ingest.chunks);
    const digest = this.digest();
    try {
      if (size !== 0 && size !== data.length) {
        throw new FailedPreconditionError(`unexpected commit size ${data.length}, expected ${size}`);
      }
      if (expected && expected !== digest) {
        throw new FailedPreconditionError(`unexpected commit digest ${digest}, expected ${expected}`);
      }
      this.store.publish(this.ref, data, digest, options?.labels ?? {});
    } catch (err) {
      this.store.ingests.delete(this.ref);
      throw err;
    } finally {
      this.closed = true;
      this.store.release(this.ref);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.store.release(this.ref);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`writer ${this.ref} is closed`);
  }
}
