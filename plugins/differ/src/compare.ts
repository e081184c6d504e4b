import { createHash } from 'crypto';
import { createReadStream, type Stats } from 'fs';
import * as fs from 'fs/promises';
import { join } from 'path';
import { pipeline, Readable } from 'stream';
import * as zlib from 'zlib';
import { FailedPreconditionError } from '@berth/core';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './entry-path';
import { readXattrs, splitDevice } from './host-ops';
import { encodeEntryHeader, endOfArchive, type EntryToWrite, padding } from './tar-format';

export type DiffCompression = 'none' | 'gzip';

export interface LayerDiffOptions {
  compression?: DiffCompression;
}

/** The identity of a layer written by `layerDiff`, known once its chunks are all read. */
export interface LayerDiffResult {
  /** `sha256:<hex>` of the uncompressed tar. */
  diffID: string;
  /** `sha256:<hex>` of the bytes produced (compressed if asked). */
  digest: string;
  /** Bytes produced. */
  size: number;
  uncompressedSize: number;
}

export interface LayerDiff {
  /** The layer's bytes; read them once, to the end. */
  readonly chunks: AsyncIterable<Buffer>;
  /** Valid after `chunks` is exhausted. */
  result(): LayerDiffResult;
}

// Deletions are written with fixed metadata, so the same change gives the same bytes.
const WHITEOUT_MTIME = 0;

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function namesOf(dir: string | undefined): Promise<string[]> {
  if (dir === undefined) return [];
  return fs.readdir(dir);
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function fileType(stats: Stats): EntryToWrite['type'] | undefined {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isCharacterDevice()) return 'char';
  if (stats.isBlockDevice()) return 'block';
  if (stats.isFIFO()) return 'fifo';
  // Sockets cannot be carried by tar; containerd skips them too.
  return undefined;
}

function sameXattrs(a: Map<string, Buffer>, b: Map<string, Buffer>): boolean {
  if (a.size !== b.size) return false;
  for (const [name, value] of a) {
    const other = b.get(name);
    if (!other || !other.equals(value)) return false;
  }
  return true;
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [left, right] = await Promise.all([fs.open(a, 'r'), fs.open(b, 'r')]);
  try {
    const size = 64 * 1024;
    const bufferA = Buffer.alloc(size);
    const bufferB = Buffer.alloc(size);
    for (let position = 0; ; position += size) {
      const [readA, readB] = await Promise.all([left.read(bufferA, 0, size, position), right.read(bufferB, 0, size, position)]);
      if (readA.bytesRead !== readB.bytesRead) return false;
      if (readA.bytesRead === 0) return true;
      if (!bufferA.subarray(0, readA.bytesRead).equals(bufferB.subarray(0, readB.bytesRead))) return false;
    }
  } finally {
    await Promise.all([left.close(), right.close()]);
  }
}

/**
 * containerd's sameFile: mode, owner and device first; for non-directories
 * also size and mtime, and the content itself when both mtimes have no
 * sub-second part (a copy may have truncated them). Directories whose only
 * change is their mtime are not changes.
 */
async function sameFile(lowerPath: string, lower: Stats, upperPath: string, upper: Stats): Promise<boolean> {
  if (lower.dev === upper.dev && lower.ino === upper.ino) return true;
  if (lower.mode !== upper.mode || lower.uid !== upper.uid || lower.gid !== upper.gid || lower.rdev !== upper.rdev) return false;
  if (!sameXattrs(readXattrs(lowerPath), readXattrs(upperPath))) return false;
  if (lower.isDirectory()) return true;
  if (lower.isSymbolicLink()) return (await fs.readlink(lowerPath)) === (await fs.readlink(upperPath));
  if (lower.size !== upper.size) return false;
  // Nanoseconds need the bigint stat: a float of milliseconds cannot hold them.
  const [lowerNs, upperNs] = await Promise.all([
    fs.lstat(lowerPath, { bigint: true }).then((s) => s.mtimeNs),
    fs.lstat(upperPath, { bigint: true }).then((s) => s.mtimeNs),
  ]);
  const second = 1_000_000_000n;
  if (lowerNs / second !== upperNs / second) return false;
  const truncated = lowerNs % second === 0n && upperNs % second === 0n;
  if (!truncated) return lowerNs === upperNs;
  if (!lower.isFile() || lower.size === 0) return true;
  return sameContent(lowerPath, upperPath);
}

type Change = { kind: 'delete'; path: string } | { kind: 'write'; path: string; hostPath: string; stats: Stats };

/**
 * Walks both trees at once, in byte order of names, giving what turns `lower`
 * into `upper`: deletions (as whiteouts) and added or changed entries, each
 * directory before its children.
 */
async function* changes(lowerRoot: string, upperRoot: string): AsyncGenerator<Change> {
  async function* walk(relative: string, lowerDir: string | undefined, upperDir: string): AsyncGenerator<Change> {
    const names = [...new Set([...(await namesOf(lowerDir)), ...(await namesOf(upperDir))])].sort(byteOrder);
    for (const name of names) {
      const path = relative === '' ? name : `${relative}/${name}`;
      const lowerPath = lowerDir === undefined ? undefined : join(lowerDir, name);
      const upperPath = join(upperDir, name);
      const lower = lowerPath === undefined ? undefined : await lstatOrUndefined(lowerPath);
      const upper = await lstatOrUndefined(upperPath);
      if (upper === undefined) {
        if (lower !== undefined) yield { kind: 'delete', path };
        continue;
      }
      if (lower === undefined || lowerPath === undefined || !(await sameFile(lowerPath, lower, upperPath, upper))) {
        yield { kind: 'write', path, hostPath: upperPath, stats: upper };
      }
      if (upper.isDirectory()) {
        yield* walk(path, lower?.isDirectory() ? lowerPath : undefined, upperPath);
      }
    }
  }
  yield* walk('', lowerRoot, upperRoot);
}

/** The uncompressed tar between two trees. */
async function* tarChunks(lowerRoot: string, upperRoot: string): AsyncGenerator<Buffer> {
  // First path written for each multiply-linked inode: later ones become hard links.
  const linked = new Map<string, string>();
  for await (const change of changes(lowerRoot, upperRoot)) {
    if (change.kind === 'delete') {
      const slash = change.path.lastIndexOf('/');
      const whiteout = `${change.path.slice(0, slash + 1)}${WHITEOUT_PREFIX}${change.path.slice(slash + 1)}`;
      yield encodeEntryHeader({ path: whiteout, type: 'file', mode: 0, uid: 0, gid: 0, size: 0, mtime: WHITEOUT_MTIME });
      continue;
    }
    const { path, hostPath, stats } = change;
    const type = fileType(stats);
    if (type === undefined) continue;
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (base.startsWith(WHITEOUT_PREFIX) || base === OPAQUE_MARKER) {
      throw new FailedPreconditionError(`cannot represent ${JSON.stringify(path)} in a layer: its name is an OCI whiteout`);
    }
    const entry: EntryToWrite = {
      path,
      type,
      mode: stats.mode & 0o7777,
      uid: stats.uid,
      gid: stats.gid,
      size: 0,
      mtime: Math.floor(stats.mtimeMs / 1000),
      xattrs: readXattrs(hostPath),
    };
    if (type === 'symlink') entry.linkname = await fs.readlink(hostPath);
    if (type === 'char' || type === 'block') {
      const { major, minor } = splitDevice(stats.rdev);
      entry.devmajor = major;
      entry.devminor = minor;
    }
    if (type === 'file') {
      const inode = `${stats.dev}:${stats.ino}`;
      const first = stats.nlink > 1 ? linked.get(inode) : undefined;
      if (first !== undefined) {
        yield encodeEntryHeader({ ...entry, type: 'hardlink', linkname: first, xattrs: undefined });
        continue;
      }
      if (stats.nlink > 1) linked.set(inode, path);
      entry.size = stats.size;
      yield encodeEntryHeader(entry);
      let read = 0;
      if (stats.size > 0) {
        // One byte past the stated size, so a file that grew is noticed.
        for await (const chunk of createReadStream(hostPath, { start: 0, end: stats.size })) {
          read += (chunk as Buffer).length;
          if (read > stats.size) break;
          yield chunk as Buffer;
        }
      }
      if (read !== stats.size) {
        throw new FailedPreconditionError(`${JSON.stringify(path)} changed size while the diff was written (${stats.size} → ${read} bytes)`);
      }
      yield padding(stats.size);
      continue;
    }
    yield encodeEntryHeader(entry);
  }
  yield endOfArchive();
}

async function* gzipChunks(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const input = Readable.from(source, { objectMode: false });
  const deflater = zlib.createGzip();
  pipeline(input, deflater, () => {
    // Errors surface through the iteration below.
  });
  try {
    for await (const chunk of deflater) yield chunk as Buffer;
  } finally {
    input.destroy();
    deflater.destroy();
  }
}

/**
 * The OCI layer that turns the tree at `lowerDir` into the one at
 * `upperDir`: added and changed entries with their metadata and PAX xattrs,
 * `.wh.<name>` for deletions, hard links kept within the layer.
 */
export function layerDiff(lowerDir: string, upperDir: string, options: LayerDiffOptions = {}): LayerDiff {
  const uncompressedHash = createHash('sha256');
  const outputHash = createHash('sha256');
  let uncompressedSize = 0;
  let size = 0;
  let finished: LayerDiffResult | undefined;
  async function* uncompressed(): AsyncGenerator<Buffer> {
    for await (const chunk of tarChunks(lowerDir, upperDir)) {
      if (chunk.length === 0) continue;
      uncompressedHash.update(chunk);
      uncompressedSize += chunk.length;
      yield chunk;
    }
  }
  async function* output(): AsyncGenerator<Buffer> {
    const source = options.compression === 'gzip' ? gzipChunks(uncompressed()) : uncompressed();
    for await (const chunk of source) {
      outputHash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
    const diffID = `sha256:${uncompressedHash.digest('hex')}`;
    const digest = options.compression === 'gzip' ? `sha256:${outputHash.digest('hex')}` : diffID;
    finished = { diffID, digest, size, uncompressedSize };
  }
  return {
    chunks: output(),
    result() {
      if (!finished) throw new FailedPreconditionError('layer diff read before its end');
      return finished;
    },
  };
}
