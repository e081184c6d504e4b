import { createHash, type Hash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import {
  AlreadyExistsError,
  type ContentInfo,
  type ContentStore,
  type ContentWriter,
  FailedPreconditionError,
  type IngestStatus,
  isNotFound,
  NotFoundError,
  OutOfRangeError,
  type ReadOptions,
  UnavailableError,
  type WriterOptions,
} from '@berth/core';

type Labels = Record<string, string>;

interface Ingest {
  chunks: Buffer[];
  size: number;
  total: number;
  expected: string;
  startedAt: Date;
  updatedAt: Date;
}

/**
 * A ContentStore in memory with containerd's writer semantics (resumable
 * ingests, one writer per ref, verified commit). For tests that need a store
 * without a disk layout; `writes` counts bytes written, for resume checks.
 */
export class MemoryContentStore implements ContentStore {
  readonly blobs = new Map<string, { data: Buffer; info: ContentInfo }>();
  readonly ingests = new Map<string, Ingest>();
  private readonly locked = new Set<string>();
  /** Bytes handed to writers, per ref. */
  readonly writes = new Map<string, number>();

  async read(digest: string, options: ReadOptions = {}): Promise<Readable> {
    const blob = this.blobs.get(digest);
    if (!blob) throw new NotFoundError(`content ${digest}: not found`);
    const offset = options.offset ?? 0;
    if (offset > blob.data.length) throw new OutOfRangeError(`offset ${offset} beyond ${blob.data.length}`);
    const end = options.length === undefined ? blob.data.length : offset + options.length;
    return Readable.from([blob.data.subarray(offset, end)]);
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
      for (const p of fieldpaths) {
        if (!p.startsWith('labels.')) continue;
        const key = p.slice('labels.'.length);
        const value = info.labels[key];
        if (value) blob.info.labels[key] = value;
        else delete blob.info.labels[key];
      }
    }
    blob.info.updatedAt = new Date();
    return this.info(info.digest);
  }

  async *walk(): AsyncIterable<ContentInfo> {
    for (const digest of [...this.blobs.keys()]) yield await this.info(digest);
  }

  async delete(digest: string): Promise<void> {
    if (!this.blobs.delete(digest)) throw new NotFoundError(`content ${digest}: not found`);
  }

  async status(ref: string): Promise<IngestStatus> {
    const ingest = this.ingests.get(ref);
    if (!ingest) throw new NotFoundError(`ingest ${ref}: not found`);
    return {
      ref,
      offset: ingest.size,
      total: ingest.total,
      expected: ingest.expected,
      startedAt: ingest.startedAt,
      updatedAt: ingest.updatedAt,
    };
  }

  async listStatuses(): Promise<IngestStatus[]> {
    return Promise.all([...this.ingests.keys()].map((ref) => this.status(ref)));
  }

  async abort(ref: string): Promise<void> {
    if (!this.ingests.delete(ref)) throw new NotFoundError(`ingest ${ref}: not found`);
  }

  async writer(options: WriterOptions): Promise<ContentWriter> {
    const { ref } = options;
    if (this.locked.has(ref)) throw new UnavailableError(`ref ${ref} locked`);
    this.locked.add(ref);
    let ingest = this.ingests.get(ref);
    if (!ingest) {
      const now = new Date();
      ingest = {
        chunks: [],
        size: 0,
        total: options.expected?.size ?? 0,
        expected: options.expected?.digest ?? '',
        startedAt: now,
        updatedAt: now,
      };
      this.ingests.set(ref, ingest);
    }
    const store = this;
    const current = ingest;
    let closed = false;
    let hash: Hash | undefined;
    const digestOf = () => {
      hash = createHash('sha256');
      for (const c of current.chunks) hash.update(c);
      return `sha256:${hash.digest('hex')}`;
    };
    const release = () => {
      if (!closed) store.locked.delete(ref);
      closed = true;
    };
    return {
      ref,
      get offset() {
        return current.size;
      },
      async write(chunk: Uint8Array) {
        if (closed) throw new FailedPreconditionError('writer closed');
        const buf = Buffer.from(chunk);
        current.chunks.push(buf);
        current.size += buf.length;
        current.updatedAt = new Date();
        store.writes.set(ref, (store.writes.get(ref) ?? 0) + buf.length);
      },
      digest: digestOf,
      status: () => store.status(ref),
      async truncate(size: number) {
        if (size !== 0) throw new FailedPreconditionError('only truncate(0) is supported');
        current.chunks = [];
        current.size = 0;
      },
      async commit(size: number, expected: string, commitOptions?: { labels?: Labels }) {
        const data = Buffer.concat(current.chunks);
        const actual = digestOf();
        store.ingests.delete(ref);
        release();
        if (size > 0 && data.length !== size) {
          throw new FailedPreconditionError(`unexpected commit size ${data.length}, expected ${size}`);
        }
        if (expected && actual !== expected) {
          throw new FailedPreconditionError(`unexpected commit digest ${actual}, expected ${expected}`);
        }
        if (store.blobs.has(actual)) throw new AlreadyExistsError(`content ${actual}: already exists`);
        const now = new Date();
        store.blobs.set(actual, {
          data,
          info: { digest: actual, size: data.length, createdAt: now, updatedAt: now, labels: { ...(commitOptions?.labels ?? {}) } },
        });
      },
      async close() {
        release();
      },
    };
  }
}

/**
 * The store registry tests pull into: berth's LocalContentStore on a temp dir
 * when it works in this tree, else MemoryContentStore (content-local is
 * developed alongside; the fallback keeps these tests about the remotes code).
 */
export async function newTestContentStore(roots: string[]): Promise<ContentStore> {
  try {
    const { LocalContentStore } = await import('@berth/content-local');
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-content-'));
    roots.push(root);
    const store = new LocalContentStore(root) as ContentStore;
    // Probe one call: a store missing pieces of core fails here rather than mid-test.
    await store.info(`sha256:${'0'.repeat(64)}`).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    return store;
  } catch (err) {
    if (process.env.BERTH_REQUIRE_LOCAL_CONTENT) throw err;
    return new MemoryContentStore();
  }
}
