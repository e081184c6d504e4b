import { validateDigest } from '../content/digest';
import type { ContentStore, ContentWriter, IngestStatus } from '../content/types';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  isAlreadyExists,
  isFailedPrecondition,
} from '../errdefs';
import type { ContentTables } from './content';
import type { GcGuard } from './gc-guard';
import { validateLabels } from './identifiers';
import { ensureNamespace, inWriteTransaction } from './transactions';
import type { Labels } from './types';

/** A blob the raw store already has, which a writer links instead of writing. */
export interface SharedBlob {
  digest: string;
  size: number;
}

/** What a writer needs from the view that opened it. */
export interface WriterContext {
  namespace: string;
  lease: string | undefined;
  /** The caller's ref; `backendRef` is the raw store's name for it. */
  ref: string;
  backendRef: string;
  tables: ContentTables;
  raw: ContentStore;
  guard: GcGuard;
  clock: () => number;
  /** Frees the ingest for the next writer. */
  release: () => void;
}

/**
 * A writer in one namespace. Either it wraps a raw writer, or (containerd's
 * shared writer) the raw store already has the expected blob: then it
 * reports the blob's bytes as written, and commit only records the blob in
 * the namespace. Writing to or truncating a shared writer first copies the
 * blob into a real ingest ("unshares" it), so it behaves like any other.
 */
export class NamespacedContentWriter implements ContentWriter {
  private raw: ContentWriter | undefined;
  private shared: SharedBlob | undefined;
  private readonly startedAt: Date;
  private done = false;
  /** Kept after commit, when the raw writer may no longer answer. */
  private committed: { digest: string; size: number } | undefined;

  constructor(
    private readonly ctx: WriterContext,
    state: { raw: ContentWriter | undefined; shared: SharedBlob | undefined; startedAt: Date },
  ) {
    this.raw = state.raw;
    this.shared = state.shared;
    this.startedAt = state.startedAt;
  }

  get ref(): string {
    return this.ctx.ref;
  }

  get offset(): number {
    if (this.committed) return this.committed.size;
    return this.raw ? this.raw.offset : (this.shared as SharedBlob).size;
  }

  digest(): string {
    if (this.committed) return this.committed.digest;
    return this.raw ? this.raw.digest() : (this.shared as SharedBlob).digest;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.mustBeOpen();
    if (!this.raw) {
      if (chunk.length === 0) return;
      await this.unshare((this.shared as SharedBlob).size);
    }
    await (this.raw as ContentWriter).write(chunk);
  }

  async status(): Promise<IngestStatus> {
    if (this.raw) return { ...(await this.raw.status()), ref: this.ctx.ref };
    const size = this.offset;
    return {
      ref: this.ctx.ref,
      offset: size,
      total: size,
      expected: this.digest(),
      startedAt: this.startedAt,
      updatedAt: this.startedAt,
    };
  }

  async truncate(size: number): Promise<void> {
    this.mustBeOpen();
    if (this.raw) return this.raw.truncate(size);
    await this.unshare(size);
  }

  async commit(size: number, expected: string, options: { labels?: Labels } = {}): Promise<void> {
    this.mustBeOpen();
    // Bad arguments leave the writer usable, so check them before anything ends the ingest.
    if (expected !== '') validateDigest(expected, 'expected digest');
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`commit size ${size}: must be a non-negative integer`);
    const labels = options.labels ?? {};
    validateLabels(labels);
    await this.ctx.guard.shared(async () => {
      let blob: { digest: string; size: number };
      try {
        blob = this.raw ? await this.commitRaw(this.raw, size, expected) : this.checkShared(size, expected);
      } catch (err) {
        // Mismatches end the ingest (the raw store drops its copy), as the contract says.
        if (isFailedPrecondition(err)) this.forgetIngest();
        throw err;
      }
      this.committed = blob;
      this.finish();
      if (!this.recordBlob(blob, labels)) throw new AlreadyExistsError(`content ${blob.digest}: already exists`);
    });
  }

  /** Keeps the ingest, so a later writer for the same ref resumes it. */
  async close(): Promise<void> {
    if (this.done) return;
    this.finish();
    await this.raw?.close();
  }

  private async commitRaw(raw: ContentWriter, size: number, expected: string): Promise<{ digest: string; size: number }> {
    const blob = { digest: raw.digest(), size: raw.offset };
    try {
      await raw.commit(size, expected);
    } catch (err) {
      // Another namespace (or an earlier, interrupted commit) stored these bytes: link them.
      if (!isAlreadyExists(err)) throw err;
    }
    return blob;
  }

  private checkShared(size: number, expected: string): SharedBlob {
    const shared = this.shared as SharedBlob;
    if (size !== 0 && size !== shared.size) {
      throw new FailedPreconditionError(
        `${JSON.stringify(this.ctx.ref)} failed size validation: ${shared.size} != ${size}`,
      );
    }
    if (expected !== '' && expected !== shared.digest) {
      throw new FailedPreconditionError(
        `${JSON.stringify(this.ctx.ref)} unexpected commit digest ${shared.digest}, expected ${expected}`,
      );
    }
    return shared;
  }

  /**
   * Records the committed blob in the namespace and ends the ingest, moving
   * it from the lease's ingests to its content. False if the namespace had
   * the blob already (its labels then stay as they were).
   */
  private recordBlob(blob: { digest: string; size: number }, labels: Labels): boolean {
    const { namespace, lease, ref, tables, clock } = this.ctx;
    return inWriteTransaction(tables.db, () => {
      const now = clock();
      ensureNamespace(tables.db, namespace, now);
      const created = tables.insertRecord(namespace, blob.digest, blob.size, now);
      if (created) tables.labels.replace(namespace, blob.digest, labels);
      tables.deleteIngest(namespace, ref);
      if (lease) {
        tables.leaseResources.remove(namespace, lease, { type: 'ingests', id: ref });
        tables.leaseResources.add(namespace, lease, { type: 'content', id: blob.digest });
      }
      return created;
    });
  }

  private forgetIngest(): void {
    const { namespace, lease, ref, tables } = this.ctx;
    inWriteTransaction(tables.db, () => {
      tables.deleteIngest(namespace, ref);
      if (lease) tables.leaseResources.remove(namespace, lease, { type: 'ingests', id: ref });
    });
    this.finish();
  }

  /** Turns a shared writer into a real ingest holding the blob's first `keep` bytes. */
  private async unshare(keep: number): Promise<void> {
    const { raw, backendRef, namespace, ref, tables, clock } = this.ctx;
    const shared = this.shared as SharedBlob;
    const writer = await raw.writer({ ref: backendRef });
    try {
      // A stale ingest under this ref would otherwise come first.
      if (writer.offset > 0) await writer.truncate(0);
      if (keep > 0) {
        const source = await raw.read(shared.digest, { length: keep });
        for await (const chunk of source as AsyncIterable<Uint8Array>) await writer.write(chunk);
      }
    } catch (err) {
      await writer.close();
      throw err;
    }
    this.raw = writer;
    this.shared = undefined;
    // Only now: until the copy is done, the row's shared digest keeps the blob from the collector.
    inWriteTransaction(tables.db, () => tables.unshareIngest(namespace, ref, clock()));
  }

  private finish(): void {
    this.done = true;
    this.ctx.release();
  }

  private mustBeOpen(): void {
    if (this.done) throw new FailedPreconditionError(`writer for ${JSON.stringify(this.ctx.ref)} is closed`);
  }
}
