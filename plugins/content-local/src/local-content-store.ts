import { existsSync, mkdirSync, readdirSync, rmSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AlreadyExistsError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  UnavailableError,
  adaptObject,
  parseDigest,
  parseFilters,
  validateDigest,
  validateLabels,
  type ContentInfo,
  type ContentStore,
  type ContentWriter,
  type Filter,
  type IngestStatus,
  type Labels,
  type ReadOptions,
  type WriterOptions,
} from '@berth/core';
import { fsyncDir, isMissing, isTempName } from './fs-util';
import { INGEST_REQUIRED_FILES, IngestDir } from './ingest';
import { KeyedMutex } from './keyed-mutex';
import { LabelStore } from './label-store';
import { openLocalWriter, type Expectations, type LocalContentWriter, type WriterHost } from './local-writer';

const blobNamePattern = /^[0-9a-f]{64}$/;

/** Chunk size of blob reads: large enough for throughput, small next to a gRPC window. */
const READ_CHUNK_SIZE = 1024 * 1024;

/**
 * containerd's local content store, on the same layout:
 *
 *     <root>/blobs/sha256/<hex>          committed blobs, read-only (0444)
 *     <root>/ingest/<sha256(ref)>/       one per ingest: data, ref, startedat,
 *                                        updatedat, total, expected
 *     <root>/labels/<hex>.json           labels of a blob, and when they changed
 *
 * Data is written to the ingest dir, fsynced, verified against size and
 * digest, then renamed into blobs/sha256 and the directory fsynced, so a blob
 * name never holds anything but its verified bytes.
 *
 * One writer per ref, enforced in this process only. That is enough because
 * one daemon owns the root (as with containerd); two stores on one root in
 * one process, or two processes, would each have their own locks.
 */
export class LocalContentStore implements ContentStore {
  readonly root: string;
  private readonly blobDir: string;
  private readonly ingestRoot: string;
  private readonly labels: LabelStore;
  private readonly lockedRefs = new Set<string>();
  private readonly openWriters = new Map<string, LocalContentWriter>();
  /** Serialises publish, delete and relabel of one blob. */
  private readonly blobLocks = new KeyedMutex();
  private readonly writerHost: WriterHost = {
    publish: (digest, dataPath, labels) => this.publish(digest, dataPath, labels),
    release: (ref) => this.releaseRef(ref),
  };

  constructor(root: string) {
    this.root = root;
    this.blobDir = join(root, 'blobs', 'sha256');
    this.ingestRoot = join(root, 'ingest');
    const labelDir = join(root, 'labels');
    for (const dir of [this.blobDir, this.ingestRoot, labelDir]) mkdirSync(dir, { recursive: true });
    this.labels = new LabelStore(labelDir);
    this.sweepLeftovers();
  }

  // ContentProvider

  async read(digest: string, options: ReadOptions = {}): Promise<Readable> {
    const { encoded } = parseDigest(digest);
    const offset = checkCount('read offset', options.offset ?? 0);
    const length = options.length === undefined ? undefined : checkCount('read length', options.length);
    const file = await this.openBlob(digest, encoded);
    try {
      const { size } = await file.stat();
      if (offset > size) {
        throw new OutOfRangeError(`content ${digest}: offset ${offset} is past the end (${size} bytes)`);
      }
      const end = length === undefined ? size : Math.min(size, offset + length);
      if (end === offset) {
        await file.close();
        return Readable.from([], { objectMode: false });
      }
      return file.createReadStream({ start: offset, end: end - 1, highWaterMark: READ_CHUNK_SIZE });
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  // ContentManager

  async info(digest: string): Promise<ContentInfo> {
    const { encoded } = parseDigest(digest);
    const info = await this.readInfo(encoded);
    if (!info) throw notFound(digest);
    return info;
  }

  async update(info: { digest: string; labels: Labels }, fieldpaths: string[] = []): Promise<ContentInfo> {
    const { digest } = info;
    const { encoded } = parseDigest(digest);
    const change = labelChange(digest, info.labels ?? {}, fieldpaths);
    return this.blobLocks.run(encoded, async () => {
      const current = await this.readInfo(encoded);
      if (!current) throw notFound(digest);
      const labels = change(current.labels);
      validateLabels(labels);
      const updatedAt = new Date();
      await this.labels.write(encoded, { labels, updatedAt });
      return { ...current, labels, updatedAt };
    });
  }

  walk(filters: string[] = []): AsyncIterable<ContentInfo> {
    // Parsed now, so a bad filter fails the call rather than the first step.
    return this.walkMatching(parseFilters(filters));
  }

  async delete(digest: string): Promise<void> {
    const { encoded } = parseDigest(digest);
    await this.blobLocks.run(encoded, async () => {
      try {
        await unlink(this.blobPath(encoded));
      } catch (err) {
        if (isMissing(err)) throw notFound(digest);
        throw err;
      }
      // After the blob: a crash in between leaves only an orphan label file, which the sweep removes.
      await this.labels.remove(encoded);
    });
  }

  // ContentIngester

  async writer(options: WriterOptions): Promise<ContentWriter> {
    const ref = checkRef(options?.ref);
    const expected = checkExpectations(options?.expected);
    this.lockRef(ref);
    try {
      if (expected.digest && (await this.readInfo(parseDigest(expected.digest).encoded))) {
        throw new AlreadyExistsError(`content ${expected.digest}: already exists`);
      }
      const writer = await openLocalWriter(this.writerHost, new IngestDir(this.ingestRoot, ref), expected);
      this.openWriters.set(ref, writer);
      return writer;
    } catch (err) {
      this.lockedRefs.delete(ref);
      throw err;
    }
  }

  // IngestManager

  async status(ref: string): Promise<IngestStatus> {
    checkRef(ref);
    const status = await this.statusOf(ref);
    if (!status) throw new NotFoundError(`ingest ${ref}: not found`);
    return status;
  }

  async listStatuses(filters: string[] = []): Promise<IngestStatus[]> {
    const filter = parseFilters(filters);
    const statuses: IngestStatus[] = [];
    for (const name of await readdir(this.ingestRoot)) {
      const ref = await IngestDir.readRef(this.ingestRoot, name);
      if (ref === undefined) continue;
      const status = await this.statusOf(ref);
      if (status && filter.match(adaptObject({ ref: status.ref }))) statuses.push(status);
    }
    return statuses.sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }

  async abort(ref: string): Promise<void> {
    checkRef(ref);
    const open = this.openWriters.get(ref);
    if (open) await open.abandon();
    this.lockRef(ref);
    try {
      const removed = await new IngestDir(this.ingestRoot, ref).remove();
      if (!removed && !open) throw new NotFoundError(`ingest ${ref}: not found`);
    } finally {
      this.lockedRefs.delete(ref);
    }
  }

  /**
   * Closes the writers still open, so what they accepted is in their ingest
   * files and resumable. The plugin host calls this at shutdown.
   */
  async close(): Promise<void> {
    await Promise.allSettled([...this.openWriters.values()].map((writer) => writer.close()));
  }

  // Internals

  private async *walkMatching(filter: Filter): AsyncGenerator<ContentInfo> {
    const names = (await readdir(this.blobDir)).filter((name) => blobNamePattern.test(name)).sort();
    for (const name of names) {
      const info = await this.readInfo(name);
      if (info && filter.match(adaptObject({ digest: info.digest, size: info.size, labels: info.labels }))) {
        yield info;
      }
    }
  }

  /** Info of a blob by hex, or undefined if there is no such blob. */
  private async readInfo(encoded: string): Promise<ContentInfo | undefined> {
    let stats: Stats;
    try {
      stats = await stat(this.blobPath(encoded));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (!stats.isFile()) return undefined;
    const { labels, updatedAt } = await this.labels.read(encoded);
    // Commit sets the blob's mtime; nothing writes a blob after that.
    const createdAt = new Date(stats.mtimeMs);
    return { digest: `sha256:${encoded}`, size: stats.size, createdAt, updatedAt: updatedAt ?? createdAt, labels };
  }

  private async openBlob(digest: string, encoded: string): Promise<FileHandle> {
    try {
      return await open(this.blobPath(encoded), 'r');
    } catch (err) {
      if (isMissing(err)) throw notFound(digest);
      throw err;
    }
  }

  /**
   * The last step of a commit, after the writer has fsynced and verified the
   * data: labels first (durably), then the atomic rename, then an fsync of
   * blobs/sha256 so the new name survives a crash.
   */
  private async publish(digest: string, dataPath: string, labels: Labels | undefined): Promise<void> {
    const { encoded } = parseDigest(digest);
    await this.blobLocks.run(encoded, async () => {
      if (await this.readInfo(encoded)) throw new AlreadyExistsError(`content ${digest}: already exists`);
      // Replaces or clears whatever an earlier, deleted blob of this digest left.
      if (labels && Object.keys(labels).length > 0) await this.labels.write(encoded, { labels });
      else await this.labels.remove(encoded);
      try {
        await rename(dataPath, this.blobPath(encoded));
      } catch (err) {
        await this.labels.remove(encoded).catch(() => undefined);
        throw err;
      }
      await fsyncDir(this.blobDir);
    });
  }

  private async statusOf(ref: string): Promise<IngestStatus | undefined> {
    const open = this.openWriters.get(ref);
    if (open) return open.status();
    return new IngestDir(this.ingestRoot, ref).status();
  }

  private lockRef(ref: string): void {
    if (this.lockedRefs.has(ref)) throw new UnavailableError(`ref ${ref} locked`);
    this.lockedRefs.add(ref);
  }

  private releaseRef(ref: string): void {
    this.openWriters.delete(ref);
    this.lockedRefs.delete(ref);
  }

  private blobPath(encoded: string): string {
    return join(this.blobDir, encoded);
  }

  /**
   * Startup: removes what an interrupted process leaves. Temp files of atomic
   * writes, ingest dirs that never got their `ref` (creation cut short) or lost
   * their `data` (a commit cut short after its rename), and labels whose blob
   * is gone. Blobs themselves need nothing: they only ever appear by rename.
   */
  private sweepLeftovers(): void {
    for (const name of readdirSync(this.ingestRoot)) {
      const dir = join(this.ingestRoot, name);
      if (!statSync(dir).isDirectory()) {
        unlinkSync(dir);
        continue;
      }
      const entries = readdirSync(dir);
      if (!INGEST_REQUIRED_FILES.every((file) => entries.includes(file))) {
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      for (const entry of entries.filter(isTempName)) unlinkSync(join(dir, entry));
    }
    this.labels.sweep((encoded) => existsSync(this.blobPath(encoded)));
  }
}

function notFound(digest: string): NotFoundError {
  return new NotFoundError(`content ${digest}: not found`);
}

function checkRef(ref: unknown): string {
  if (typeof ref !== 'string' || ref === '') throw new InvalidArgumentError('ref must not be empty');
  return ref;
}

function checkCount(what: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${what} ${value}: must be a non-negative integer`);
  }
  return value;
}

function checkExpectations(expected: WriterOptions['expected']): Expectations {
  const size = checkCount('expected size', expected?.size ?? 0);
  const digest = expected?.digest ?? '';
  if (digest !== '') validateDigest(digest, 'expected digest');
  return { size, digest };
}

/**
 * containerd's fieldpaths for content labels: `labels` replaces them all,
 * `labels.<key>` sets one from `given` (clearing it when empty or absent), and
 * no fieldpaths at all means `labels`. Empty values are never stored.
 */
function labelChange(digest: string, given: Labels, fieldpaths: string[]): (current: Labels) => Labels {
  const keys: string[] = [];
  let replaceAll = fieldpaths.length === 0;
  for (const path of fieldpaths) {
    if (path === 'labels') replaceAll = true;
    else if (path.startsWith('labels.')) keys.push(path.slice('labels.'.length));
    else throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on content info ${digest}`);
  }
  return (current) => {
    const next = new Map(replaceAll ? Object.entries(given) : Object.entries(current));
    if (!replaceAll) {
      for (const key of keys) next.set(key, Object.prototype.hasOwnProperty.call(given, key) ? given[key] : '');
    }
    return Object.fromEntries([...next].filter(([, value]) => value !== ''));
  };
}
