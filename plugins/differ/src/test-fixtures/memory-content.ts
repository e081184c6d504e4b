import { createHash } from 'crypto';
import { Readable } from 'stream';
import {
  AlreadyExistsError,
  type ContentIngester,
  type ContentProvider,
  type ContentWriter,
  FailedPreconditionError,
  type IngestStatus,
  type Labels,
  NotFoundError,
} from '@berth/core';

/** Just enough of a content store for the differ's tests: blobs in a Map. */
export class MemoryContent implements ContentProvider, ContentIngester {
  readonly blobs = new Map<string, Buffer>();
  readonly labels = new Map<string, Labels>();

  add(data: Buffer): string {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    this.blobs.set(digest, data);
    return digest;
  }

  async read(digest: string): Promise<Readable> {
    const blob = this.blobs.get(digest);
    if (!blob) throw new NotFoundError(`blob ${digest} not found`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < blob.length; i += 16 * 1024) chunks.push(blob.subarray(i, i + 16 * 1024));
    return Readable.from(chunks, { objectMode: false });
  }

  async writer(options: { ref: string }): Promise<ContentWriter> {
    const parts: Buffer[] = [];
    const hash = createHash('sha256');
    let offset = 0;
    const store = this;
    const startedAt = new Date();
    return {
      ref: options.ref,
      get offset() {
        return offset;
      },
      async write(chunk: Uint8Array) {
        parts.push(Buffer.from(chunk));
        hash.update(chunk);
        offset += chunk.length;
      },
      digest: () => `sha256:${hash.copy().digest('hex')}`,
      async status(): Promise<IngestStatus> {
        return { ref: options.ref, offset, total: 0, expected: '', startedAt, updatedAt: new Date() };
      },
      async truncate() {
        parts.length = 0;
        offset = 0;
      },
      async commit(size: number, expected: string, commitOptions?: { labels?: Labels }) {
        const data = Buffer.concat(parts);
        const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
        if (size && size !== data.length) throw new FailedPreconditionError(`size ${data.length}, expected ${size}`);
        if (expected && expected !== digest) throw new FailedPreconditionError(`digest ${digest}, expected ${expected}`);
        if (store.blobs.has(digest)) throw new AlreadyExistsError(`blob ${digest} exists`);
        store.blobs.set(digest, data);
        store.labels.set(digest, commitOptions?.labels ?? {});
      },
      async close() {},
    };
  }
}
