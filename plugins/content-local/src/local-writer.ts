import { createHash, type Hash } from 'node:crypto';
import { chmod, constants, open, type FileHandle } from 'node:fs/promises';
import { isUint8Array } from 'node:util/types';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  isAlreadyExists,
  isFailedPrecondition,
  validateDigest,
  validateLabel,
  type ContentWriter,
  type IngestStatus,
  type Labels,
} from '@berth/core';
import { isMissing } from './fs-util';
import { IngestDir, type IngestRecord } from './ingest';

/**
 * Bytes gathered before one write(2). Two of these per open writer: one
 * filling while the other is written, so hashing and copying overlap the disk.
 * On the 200 MB benchmark 4 MiB was slower and 256-512 KiB no faster.
 */
export const WRITE_BUFFER_SIZE = 1024 * 1024;

/**
 * Every this many bytes a writer starts an fdatasync in the background (never
 * waited for by `write`). It only gets the kernel writing early: otherwise all
 * of a large blob is still dirty at commit and its fsync pays for the whole
 * disk write after the hashing is done, instead of alongside it. Node has no
 * sync_file_range(2); this is the portable stand-in.
 */
export const WRITEBACK_INTERVAL = 16 * 1024 * 1024;

/** What a writer was told to expect; 0 and '' mean unknown. */
export interface Expectations {
  size: number;
  digest: string;
}

/** What a writer needs from its store. */
export interface WriterHost {
  /** Moves verified data under its digest; AlreadyExists if the blob is there. */
  publish(digest: string, dataPath: string, labels: Labels | undefined): Promise<void>;
  /** The writer is done with its ref (closed, committed or aborted). */
  release(ref: string): void;
}

/** Opens the ingest for a ref: resumes a compatible one (re-hashing its data), or starts over. */
export async function openLocalWriter(
  host: WriterHost,
  ingest: IngestDir,
  expected: Expectations,
): Promise<LocalContentWriter> {
  const { record, updatedAt } = await resumeOrCreate(ingest, expected);
  const file = await open(ingest.dataPath, constants.O_RDWR | constants.O_CREAT, 0o644);
  try {
    const { hash, size } = await hashFile(file, Number.POSITIVE_INFINITY);
    return new LocalContentWriter(host, ingest, record, file, { hash, offset: size, updatedAt });
  } catch (err) {
    await file.close();
    throw err;
  }
}

async function resumeOrCreate(
  ingest: IngestDir,
  expected: Expectations,
): Promise<{ record: IngestRecord; updatedAt: Date }> {
  const existing = await ingest.status();
  if (existing && isCompatible(existing, expected)) {
    const record = {
      ref: existing.ref,
      startedAt: existing.startedAt,
      total: existing.total || expected.size,
      expected: existing.expected || expected.digest,
    };
    await ingest.writeExpectations(record);
    // A commit that failed after making the data read-only leaves it so.
    await chmod(ingest.dataPath, 0o644).catch((err: unknown) => {
      if (!isMissing(err)) throw err;
    });
    return { record, updatedAt: existing.updatedAt };
  }
  // Another blob's partial data (or a broken ingest) is of no use: as containerd, start over.
  const record = { ref: ingest.ref, startedAt: new Date(), total: expected.size, expected: expected.digest };
  await ingest.create(record);
  return { record, updatedAt: record.startedAt };
}

function isCompatible(record: Pick<IngestRecord, 'total' | 'expected'>, expected: Expectations): boolean {
  const sameSize = !record.total || !expected.size || record.total === expected.size;
  const sameDigest = !record.expected || !expected.digest || record.expected === expected.digest;
  return sameSize && sameDigest;
}

/** The running hash of the first `limit` bytes of a file, and how many there were. */
async function hashFile(file: FileHandle, limit: number): Promise<{ hash: Hash; size: number }> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(WRITE_BUFFER_SIZE);
  let size = 0;
  while (size < limit) {
    const want = Math.min(buffer.length, limit - size);
    const { bytesRead } = await file.read(buffer, 0, want, size);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { hash, size };
}

/** Validates commit's arguments; returns the labels to store (empty values dropped, as containerd does). */
function checkCommitArguments(size: number, expected: string, labels: Labels | undefined): Labels | undefined {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new InvalidArgumentError(`commit size ${size}: must be a non-negative integer`);
  }
  if (expected !== '') validateDigest(expected, 'expected digest');
  if (labels === undefined) return undefined;
  const kept = Object.entries(labels).filter(([, value]) => value !== '');
  for (const [key, value] of kept) validateLabel(key, value);
  return Object.fromEntries(kept);
}

async function writeFully(file: FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await file.write(buffer, done, length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * A writer on one ingest of the local store.
 *
 * `write` hashes the bytes and copies them into a buffer; full buffers go to
 * the file with positional writes, one in flight at a time. Nothing waits for
 * the disk until commit's fsync. So a resolved `write` means "accepted": the bytes are
 * in the file by the next `status`, `close` or `commit`, and a crash loses at
 * most the buffered tail, which a resumed writer simply does not see (it
 * re-hashes what `data` holds). Operations run one at a time in call order.
 */
export class LocalContentWriter implements ContentWriter {
  readonly ref: string;
  private hash: Hash;
  private accepted: number;
  /** Where the next buffer goes: bytes written or in flight. */
  private filePosition: number;
  private updatedAt: Date;
  private buffers: { filling: Buffer; spare: Buffer } | undefined;
  private filled = 0;
  private inFlight: Promise<void> | undefined;
  /** The background fdatasync, if one is running. */
  private writeback: Promise<void> | undefined;
  private sinceWriteback = 0;
  /** The first failed write: the bytes hashed are no longer the bytes on disk. */
  private writeFailure: unknown;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: WriterHost,
    private readonly ingest: IngestDir,
    private readonly record: IngestRecord,
    private readonly file: FileHandle,
    resumed: { hash: Hash; offset: number; updatedAt: Date },
  ) {
    this.ref = record.ref;
    this.hash = resumed.hash;
    this.accepted = resumed.offset;
    this.filePosition = resumed.offset;
    this.updatedAt = resumed.updatedAt;
  }

  get offset(): number {
    return this.accepted;
  }

  digest(): string {
    return `sha256:${this.hash.copy().digest('hex')}`;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (!isUint8Array(chunk)) {
      return Promise.reject(new InvalidArgumentError(`write to ref ${this.ref}: chunk must be a Uint8Array`));
    }
    return this.serialized(() => this.append(chunk));
  }

  status(): Promise<IngestStatus> {
    return this.serialized(async () => {
      if (!this.closed) await this.flush();
      return this.currentStatus();
    });
  }

  truncate(size: number): Promise<void> {
    return this.serialized(async () => {
      this.ensureWritable();
      if (!Number.isSafeInteger(size) || size < 0 || size > this.accepted) {
        throw new InvalidArgumentError(`truncate ref ${this.ref}: size ${size} is not within 0..${this.accepted}`);
      }
      await this.quiesce();
      await this.file.truncate(size);
      this.hash = size === 0 ? createHash('sha256') : (await hashFile(this.file, size)).hash;
      this.accepted = this.filePosition = size;
      this.updatedAt = new Date();
    });
  }

  commit(size: number, expected: string, options: { labels?: Labels } = {}): Promise<void> {
    let labels: Labels | undefined;
    try {
      labels = checkCommitArguments(size, expected, options.labels);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.serialized(async () => {
      this.ensureWritable();
      let finished = false;
      try {
        await this.quiesce();
        // Mode and time first, so the one fsync covers them with the data.
        const now = new Date();
        await this.file.utimes(now, now);
        await this.file.chmod(0o444);
        await this.file.sync();
        await this.verify(size, expected);
        await this.host.publish(this.digest(), this.ingest.dataPath, labels);
        finished = true;
      } catch (err) {
        // A mismatch or a duplicate makes the ingest useless; an I/O error leaves it to resume.
        finished = isFailedPrecondition(err) || isAlreadyExists(err);
        throw err;
      } finally {
        // The ingest goes before the ref is released, or it could take a new writer's ingest with it.
        await this.shutdown(async () => {
          // Best effort: once published, the blob is what counts; a stale dir is swept at startup.
          if (finished) await this.ingest.remove().catch(() => undefined);
        });
      }
    });
  }

  close(): Promise<void> {
    return this.serialized(async () => {
      if (this.closed) return;
      try {
        await this.quiesce();
        await this.ingest.writeUpdatedAt(this.updatedAt);
      } finally {
        await this.shutdown();
      }
    });
  }

  /** Stops without flushing: the ingest is being aborted. */
  abandon(): Promise<void> {
    return this.serialized(async () => {
      if (this.closed) return;
      await this.inFlight;
      await this.writeback;
      await this.shutdown();
    });
  }

  private async append(chunk: Uint8Array): Promise<void> {
    this.ensureWritable();
    this.hash.update(chunk);
    this.accepted += chunk.length;
    this.updatedAt = new Date();
    this.buffers ??= { filling: Buffer.allocUnsafe(WRITE_BUFFER_SIZE), spare: Buffer.allocUnsafe(WRITE_BUFFER_SIZE) };
    for (let at = 0; at < chunk.length; ) {
      const { filling } = this.buffers;
      const take = Math.min(chunk.length - at, filling.length - this.filled);
      filling.set(chunk.subarray(at, at + take), this.filled);
      this.filled += take;
      at += take;
      if (this.filled === filling.length) await this.handOff();
    }
  }

  /** Starts writing the filling buffer and switches to the spare, once the spare's own write is done. */
  private async handOff(): Promise<void> {
    await this.settle();
    if (!this.buffers || this.filled === 0) return;
    const { filling, spare } = this.buffers;
    const length = this.filled;
    this.inFlight = writeFully(this.file, filling, length, this.filePosition).catch((err: unknown) => {
      this.writeFailure ??= err;
    });
    this.filePosition += length;
    this.buffers = { filling: spare, spare: filling };
    this.filled = 0;
    this.sinceWriteback += length;
    if (this.sinceWriteback >= WRITEBACK_INTERVAL && !this.writeback) this.startWriteback();
  }

  private startWriteback(): void {
    this.sinceWriteback = 0;
    this.writeback = this.file
      .datasync()
      // A failed fdatasync may have lost pages, and a later fsync need not report it again.
      .catch((err: unknown) => {
        this.writeFailure ??= err;
      })
      .finally(() => {
        this.writeback = undefined;
      });
  }

  /** Waits for the write in flight; rethrows a failed one. */
  private async settle(): Promise<void> {
    if (this.inFlight) {
      await this.inFlight;
      this.inFlight = undefined;
    }
    if (this.writeFailure !== undefined) throw this.writeFailure;
  }

  /** Everything accepted is in the file (not yet fsynced). */
  private async flush(): Promise<void> {
    await this.handOff();
    await this.settle();
  }

  /** As flush, and no background fdatasync left running on the file. */
  private async quiesce(): Promise<void> {
    await this.flush();
    await this.writeback;
    if (this.writeFailure !== undefined) throw this.writeFailure;
  }

  private async verify(size: number, expected: string): Promise<void> {
    const onDisk = (await this.file.stat()).size;
    if (onDisk !== this.accepted) {
      throw new FailedPreconditionError(
        `ingest ${this.ref} changed on disk: ${onDisk} bytes in data, ${this.accepted} written`,
      );
    }
    if (size > 0 && size !== onDisk) {
      throw new FailedPreconditionError(`unexpected commit size ${onDisk}, expected ${size}`);
    }
    const actual = this.digest();
    if (expected && expected !== actual) {
      throw new FailedPreconditionError(`unexpected commit digest ${actual}, expected ${expected}`);
    }
  }

  private currentStatus(): IngestStatus {
    return {
      ref: this.ref,
      offset: this.accepted,
      total: this.record.total,
      expected: this.record.expected,
      startedAt: this.record.startedAt,
      updatedAt: this.updatedAt,
    };
  }

  private ensureWritable(): void {
    if (this.closed) throw new FailedPreconditionError(`writer for ref ${this.ref} is closed`);
    if (this.writeFailure !== undefined) throw this.writeFailure;
  }

  /** Closes the file, runs `beforeRelease`, then lets the ref go, whatever fails. */
  private async shutdown(beforeRelease?: () => Promise<void>): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.buffers = undefined;
    try {
      await this.file.close();
    } finally {
      try {
        await beforeRelease?.();
      } finally {
        this.host.release(this.ref);
      }
    }
  }

  private serialized<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.queue.then(operation);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
