import * as fsSync from 'fs';
import { constants as fsConstants, type Stats } from 'fs';
import * as fs from 'fs/promises';
import { dirname, join } from 'path';
import type { Readable } from 'stream';
import {
  BerthError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  PermissionDeniedError,
  ResourceExhaustedError,
  type SymlinkPolicy,
} from '@berth/core';
import { ByteReader } from './byte-reader';
import { type Compression, openUncompressed } from './decompress';
import { entryComponents, OPAQUE_MARKER, WHITEOUT_PREFIX } from './entry-path';
import { makeNode, type NodeKind, readXattrs, setXattr } from './host-ops';
import type { EntryType as LayerEntryType } from './tar-format';
import { quoteName, readTar, type TarEntry, type TarMember } from './tar-reader';

/**
 * How a symlink met while resolving an entry's parent directories is treated.
 * - `refuse-outside-root` (default): followed only when its target stays
 *   inside the target directory, judged lexically from where it sits;
 *   absolute targets and ones that climb above the root are refused.
 * - `resolve-in-root`: containerd's semantics: the target is resolved as if
 *   the root were `/` (an absolute target starts at the root, `..` stops
 *   there), so nothing escapes and images whose later layers write through
 *   links like `var/run -> /run` still apply.
 */
export type { SymlinkPolicy };

export interface ApplyLayerOptions {
  /**
   * Uncompressed bytes after which the apply stops with ResourceExhausted:
   * the bound on decompression bombs. Default 64 GiB.
   */
  maxBytes?: number;
  /** Give entries the uid/gid of their header. Default: when running as root. */
  preserveOwner?: boolean;
  symlinks?: SymlinkPolicy;
  signal?: AbortSignal;
  /** Told each member's name (as the archive gives it) and type as it is read, before it is applied. */
  onEntry?: (name: string, type: LayerEntryType) => void;
}

export interface OverlayUpperOptions extends ApplyLayerOptions {
  /**
   * The xattr that marks an opaque directory: `trusted.overlay.opaque`, or
   * `user.overlay.opaque` for overlays mounted with `userxattr`.
   */
  opaqueXattr?: string;
}

/** What an apply read: the layer's identity as an uncompressed tar. */
export interface AppliedLayer {
  /** `sha256:<hex>` of the uncompressed tar: the layer's diffID. */
  diffID: string;
  /** Size of the uncompressed tar in bytes. */
  size: number;
  /** The compression found by magic bytes. */
  compression: Compression;
}

const WRITE_BUFFER_BYTES = 1024 * 1024;
/** Pieces one writev(2) is given at most (Linux takes 1024). */
const MAX_WRITE_PIECES = 512;

/**
 * Files up to this size are written synchronously. Most of a layer's files are
 * a few KiB, and a trip through libuv's thread pool (a futex wake, a
 * completion through the event loop) cost more than the write itself.
 */
const SYNC_WRITE_BYTES = 256 * 1024;

/** write(2) of all of `data`, on this thread. */
function writeAllSync(fd: number, data: Buffer): void {
  for (let offset = 0; offset < data.length; ) offset += fsSync.writeSync(fd, data, offset, data.length - offset);
}

const isExists = (err: unknown): boolean => (err as { code?: unknown }).code === 'EEXIST';

/** Runs `create`; false, with nothing made, when something is at its name already (EEXIST). */
function created(create: () => void): boolean {
  try {
    create();
    return true;
  } catch (err) {
    if (isExists(err)) return false;
    throw err;
  }
}

/** O_EXCL|O_NOFOLLOW: a file is only ever created, never opened through what is at its name. */
const NEW_FILE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/** `name` (one checked component: not empty, `.` or `..`, no slash) in directory `dir`: nothing for join() to clean up. */
const childPath = (dir: string, name: string): string => (dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`);

/** writev(2) off the main thread: file data is the one thing whose size a layer decides. */
function writevAsync(fd: number, pieces: Buffer[]): Promise<number> {
  return new Promise((resolve, reject) => {
    fsSync.writev(fd, pieces, (err, written) => (err ? reject(err) : resolve(written)));
  });
}

/** All of `pieces`, through as many writev(2) calls as it takes (no copying them together). */
async function writeAllAsync(fd: number, pieces: Buffer[]): Promise<void> {
  let rest = pieces;
  while (rest.length > 0) {
    let written = await writevAsync(fd, rest);
    let next = 0;
    while (next < rest.length && written >= rest[next].length) written -= rest[next++].length;
    rest = next < rest.length ? [rest[next].subarray(written), ...rest.slice(next + 1)] : [];
  }
}

/** Linux follows at most 40 symlinks in one lookup before ELOOP. */
const MAX_SYMLINK_FOLLOWS = 40;

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

function lstatOrUndefined(path: string): Stats | undefined {
  return fsSync.lstatSync(path, { throwIfNoEntry: false });
}

/** Wraps a failure with the entry it happened on, keeping berth error kinds. */
function entryFailure(entry: TarEntry, err: unknown): Error {
  if (err instanceof BerthError) {
    if (err.message.includes('layer entry') || err.message.startsWith('layer ')) return err;
    return new BerthError(err.kind, `layer entry ${quoteName(entry.name)}: ${err.message}`, { cause: err });
  }
  const code = (err as NodeJS.ErrnoException).code;
  const message = `layer entry ${quoteName(entry.name)}: ${(err as Error).message}`;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new ResourceExhaustedError(message, { cause: err });
    case 'EPERM':
    case 'EACCES':
      return new PermissionDeniedError(message, { cause: err });
    case 'ENAMETOOLONG':
    case 'ELOOP':
      return new InvalidArgumentError(message, { cause: err });
    default:
      return new FailedPreconditionError(message, { cause: err });
  }
}

/** Xattrs that describe overlay state of a lower; copying them up would change what the merge shows. */
function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

type Mode = { kind: 'naive' } | { kind: 'overlay'; lowerDirs: string[]; opaqueXattr: string };

/**
 * A directory resolved inside the root: its host path, the logical path it
 * stands for (for `..` in symlink targets met further on), and how many
 * symlinks were followed to get there.
 */
interface ResolvedDir {
  host: string;
  logical: string[];
  follows: number;
}

/**
 * Writes the entries of one layer into a directory. Every path is resolved
 * component by component with lstat from the root, so the only way to leave
 * the root would be a symlink, and symlinks are followed only by `resolveDir`
 * under the symlink policy. Files are opened O_EXCL|O_NOFOLLOW after whatever
 * was at their name was removed, so the final component is never followed.
 *
 * Metadata calls are synchronous: each takes microseconds and a layer makes
 * tens of thousands of them, and a trip through libuv's thread pool for each
 * made extraction two to three times slower. So is the data of small files;
 * larger files are written asynchronously, so the event loop keeps turning.
 *
 * Names are created first and looked at only when something is in the way
 * (EEXIST): a fresh snapshot is empty, and an lstat per entry to find nothing
 * was a tenth of the syscalls.
 */
class LayerExtractor {
  /** Host paths written by this layer: what an opaque marker keeps. */
  private readonly unpacked = new Set<string>();
  /** Directory times are set last, since creating children changes them; the last word on a path wins. */
  private readonly directoryTimes = new Map<string, { atime: number | Date; mtime: number | Date }>();
  private readonly canMakeDevices = isRoot();
  /**
   * Directories already resolved (or created by a directory entry) in this
   * apply, by the entry components that name them. Only this extractor
   * changes the tree, and only by removing things (which clears the cache)
   * can a resolved directory stop being one.
   */
  private readonly resolved = new Map<string, ResolvedDir>();

  constructor(
    private readonly root: string,
    private readonly mode: Mode,
    private readonly preserveOwner: boolean,
    private readonly symlinks: SymlinkPolicy,
  ) {}

  /** Applies one member: synchronously when it can (most members), else the promise of it. */
  apply(member: TarMember): void | Promise<void> {
    const { entry } = member;
    try {
      if (this.applyQuickly(member)) return undefined;
      return this.applyEntry(member).catch((err: unknown) => {
        throw entryFailure(entry, err);
      });
    } catch (err) {
      throw entryFailure(entry, err);
    }
  }

  /**
   * The common member without a promise: a directory, a symlink, or a small
   * file whose data is in memory, whose parent is resolved already and whose
   * name is free. False, with nothing done, for anything else (applyEntry
   * does it, with every check; this path makes the same calls).
   */
  private applyQuickly(member: TarMember): boolean {
    const { entry } = member;
    const { type } = entry;
    if (type !== 'directory' && type !== 'symlink' && !(type === 'file' && entry.size <= SYNC_WRITE_BYTES)) return false;
    const components = entryComponents(entry.name);
    if (components.length === 0) return false;
    const base = components[components.length - 1];
    if (base.startsWith(WHITEOUT_PREFIX)) return false;
    const parentDir = this.cachedDir(components.slice(0, -1));
    if (parentDir === undefined) return false;
    const path = childPath(parentDir.host, base);
    switch (type) {
      case 'directory':
        if (!created(() => fsSync.mkdirSync(path, 0o700))) return false;
        this.directoryMade(path, components, parentDir, entry);
        break;
      case 'symlink':
        if (!created(() => fsSync.symlinkSync(entry.linkname, path))) return false;
        this.setMetadata(path, entry);
        break;
      default: {
        const pieces = member.buffered();
        if (pieces === undefined) return false;
        let fd = -1;
        if (!created(() => (fd = fsSync.openSync(path, NEW_FILE_FLAGS, 0o600)))) return false;
        this.completeFile(fd, path, entry, () => {
          for (const piece of pieces) writeAllSync(fd, piece);
        });
      }
    }
    this.markUnpacked(path);
    return true;
  }

  /** The resolved directory `components` name, if it is known already. */
  private cachedDir(components: string[]): ResolvedDir | undefined {
    return components.length === 0 ? { host: this.root, logical: [], follows: 0 } : this.resolved.get(components.join('/'));
  }

  /** After a directory entry made (or kept) its directory: metadata now, times at the end, and its children can find it. */
  private directoryMade(path: string, components: string[], parentDir: ResolvedDir, entry: TarEntry): void {
    this.setMetadata(path, entry);
    this.directoryTimes.set(path, { atime: entry.atime ?? entry.mtime, mtime: entry.mtime });
    this.resolved.set(components.join('/'), { host: path, logical: [...parentDir.logical, components[components.length - 1]], follows: parentDir.follows });
  }

  async finish(): Promise<void> {
    for (const [path, { atime, mtime }] of this.directoryTimes) {
      // A later entry of the layer may have deleted or replaced the directory.
      if (lstatOrUndefined(path)?.isDirectory()) fsSync.lutimesSync(path, atime, mtime);
    }
  }

  private async applyEntry(member: TarMember): Promise<void> {
    const { entry } = member;
    const components = entryComponents(entry.name);
    // The root's own entry ("./") would change the target's metadata; containerd skips it too.
    if (components.length === 0) return;
    const base = components[components.length - 1];
    const parentComponents = components.slice(0, -1);
    if (base.startsWith(WHITEOUT_PREFIX)) return this.applyWhiteout(entry, parentComponents, base);

    // A hard link's target is checked before anything at the link's own name is removed.
    const linkTarget = entry.type === 'hardlink' ? await this.hardlinkTarget(entry) : undefined;
    const parentDir = await this.resolveState(entry, parentComponents, true);
    if (parentDir === undefined) throw new InternalError(`parent of ${quoteName(entry.name)} was not created`);
    const path = childPath(parentDir.host, base);

    if (linkTarget === path) {
      this.markUnpacked(path);
      return;
    }

    switch (entry.type) {
      case 'directory':
        await this.makeDirectory(path);
        this.directoryMade(path, components, parentDir, entry);
        break;
      case 'file':
        await this.writeFile(path, member);
        break;
      case 'symlink':
        await this.createExclusive(path, () => fsSync.symlinkSync(entry.linkname, path));
        this.setMetadata(path, entry);
        break;
      case 'hardlink':
        if (linkTarget === undefined) throw new InternalError(`hard link ${quoteName(entry.name)} has no target`);
        // The link shares the target's inode, whose metadata its own entry set.
        await this.createExclusive(path, () => fsSync.linkSync(linkTarget, path));
        break;
      case 'char':
      case 'block':
      case 'fifo':
        // Without root (a user namespace) the kernel refuses device nodes; containerd skips them there
        // too, after removing what was at the name.
        if (entry.type !== 'fifo' && !this.canMakeDevices) {
          if (lstatOrUndefined(path)) await this.remove(path);
          return;
        }
        await this.createExclusive(path, () => makeNode(path, entry.type as NodeKind, entry.devmajor, entry.devminor));
        this.setMetadata(path, entry);
        break;
    }
    this.markUnpacked(path);
  }

  /**
   * Runs `create`, which makes `path` and fails with EEXIST when something is
   * there (O_EXCL, mkdir, symlink, link, mknod never follow the last
   * component); then removes what is there and runs it again.
   */
  private async createExclusive<T>(path: string, create: () => T | Promise<T>): Promise<T> {
    try {
      return await create();
    } catch (err) {
      if (!isExists(err)) throw err;
    }
    await this.remove(path);
    return create();
  }

  /** A directory at `path`: a directory already there is kept (its metadata is set again), anything else replaced. */
  private async makeDirectory(path: string): Promise<void> {
    try {
      fsSync.mkdirSync(path, 0o700);
      return;
    } catch (err) {
      if (!isExists(err)) throw err;
    }
    if (lstatOrUndefined(path)?.isDirectory()) return;
    await this.remove(path);
    fsSync.mkdirSync(path, 0o700);
  }

  /** Deletes a path (a tree without following its symlinks) and forgets what was resolved. */
  private async remove(path: string): Promise<void> {
    this.resolved.clear();
    await fs.rm(path, { recursive: true, force: true });
  }

  /** Records a path and its parents (which a layer need not list) as written by this layer. */
  private markUnpacked(path: string): void {
    // Only an opaque marker in naive mode reads this; the overlay path need not pay for it.
    if (this.mode.kind !== 'naive') return;
    for (let current = path; current !== this.root && current !== '/' && !this.unpacked.has(current); current = dirname(current)) {
      this.unpacked.add(current);
    }
  }

  private async writeFile(path: string, member: TarMember): Promise<void> {
    const { entry } = member;
    const fd = await this.createExclusive(path, () => fsSync.openSync(path, NEW_FILE_FLAGS, 0o600));
    const pieces = entry.size <= SYNC_WRITE_BYTES ? member.buffered() : undefined;
    if (pieces !== undefined) {
      this.completeFile(fd, path, entry, () => {
        for (const piece of pieces) writeAllSync(fd, piece);
      });
      return;
    }
    let written = false;
    try {
      if (entry.size <= SYNC_WRITE_BYTES) {
        for await (const chunk of member.data()) writeAllSync(fd, chunk);
      } else {
        // Decompressors hand out chunks of tens of KiB; fewer, larger writes are much faster.
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        const flush = async (): Promise<void> => {
          const data = pending;
          pending = [];
          pendingBytes = 0;
          await writeAllAsync(fd, data);
        };
        for await (const chunk of member.data()) {
          pending.push(chunk);
          pendingBytes += chunk.length;
          if (pendingBytes >= WRITE_BUFFER_BYTES || pending.length >= MAX_WRITE_PIECES) await flush();
        }
        if (pendingBytes > 0) await flush();
      }
      written = true;
    } finally {
      if (!written) this.discardFile(fd, path);
    }
    this.completeFile(fd, path, entry, () => undefined);
  }

  /**
   * `write()` the data of a file just created at `path` (open as `fd`), then
   * its owner, mode, xattrs and times, and close it. A failure removes it:
   * a truncated or refused file is not left half-written.
   */
  private completeFile(fd: number, path: string, entry: TarEntry, write: () => void): void {
    try {
      write();
      // On the descriptor, so nothing swapped in at `path` meanwhile is touched.
      if (this.preserveOwner) fsSync.fchownSync(fd, entry.uid, entry.gid);
      // After chown, which clears setuid/setgid.
      fsSync.fchmodSync(fd, entry.mode & 0o7777);
      this.setXattrs(path, entry);
      fsSync.futimesSync(fd, entry.atime ?? entry.mtime, entry.mtime);
    } catch (err) {
      this.discardFile(fd, path);
      throw err;
    }
    fsSync.closeSync(fd);
  }

  private discardFile(fd: number, path: string): void {
    fsSync.closeSync(fd);
    fsSync.rmSync(path, { force: true });
  }

  /** Owner, mode, xattrs, times, in that order (chown clears setuid and capabilities). */
  private setMetadata(path: string, entry: TarEntry): void {
    if (this.preserveOwner) fsSync.lchownSync(path, entry.uid, entry.gid);
    // Linux has no lchmod: symlink modes are always 0777.
    if (entry.type !== 'symlink') fsSync.chmodSync(path, entry.mode & 0o7777);
    this.setXattrs(path, entry);
    if (entry.type !== 'directory') fsSync.lutimesSync(path, entry.atime ?? entry.mtime, entry.mtime);
  }

  private setXattrs(path: string, entry: TarEntry): void {
    for (const [name, value] of entry.xattrs) {
      // overlayfs's own xattrs (opaque, redirect, metacopy) would let a layer
      // steer the overlay, e.g. redirect a directory elsewhere in the lowers.
      // Whiteouts and opaque markers are how a layer says these things.
      if (isOverlayXattr(name)) continue;
      try {
        setXattr(path, name, value);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        // As containerd: a filesystem without xattrs (or user.* on a symlink) is
        // not a reason to fail the layer.
        if (code === 'ENOTSUP' || code === 'EOPNOTSUPP' || (code === 'EPERM' && entry.type === 'symlink')) continue;
        throw err;
      }
    }
  }

  private async applyWhiteout(entry: TarEntry, parentComponents: string[], base: string): Promise<void> {
    const overlay = this.mode.kind === 'overlay' ? this.mode : undefined;
    if (base === OPAQUE_MARKER) {
      const dir = await this.resolveDir(entry, parentComponents, overlay !== undefined);
      if (dir === undefined) return;
      if (overlay) setXattr(dir, overlay.opaqueXattr, Buffer.from('y'));
      else await this.removeNotUnpacked(dir);
      return;
    }
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') {
      throw new InvalidArgumentError(`layer entry ${quoteName(entry.name)}: whiteout names no file`);
    }
    const dir = await this.resolveDir(entry, parentComponents, overlay !== undefined);
    if (dir === undefined) return;
    const path = join(dir, name);
    await this.remove(path);
    if (overlay) {
      // overlayfs's whiteout: a 0/0 character device hides the name in the lowers.
      await makeNode(path, 'char', 0, 0);
      if (this.preserveOwner) fsSync.lchownSync(path, entry.uid, entry.gid);
    }
  }

  /** The opaque marker in naive mode: whatever this layer did not write goes. */
  private async removeNotUnpacked(dir: string): Promise<void> {
    for (const name of await fs.readdir(dir)) {
      const path = join(dir, name);
      if (!this.unpacked.has(path)) {
        await this.remove(path);
      } else if (fsSync.lstatSync(path).isDirectory()) {
        await this.removeNotUnpacked(path);
      }
    }
  }

  /** The host path a hard link's target names, after checking it stays inside the root. */
  private async hardlinkTarget(entry: TarEntry): Promise<string> {
    if (entry.linkname.startsWith('/') || entry.linkname.split('/').includes('..')) {
      throw new InvalidArgumentError(
        `layer entry ${quoteName(entry.name)}: hard link to ${quoteName(entry.linkname)} points outside the layer`,
      );
    }
    const components = entryComponents(entry.linkname, 'hard link target');
    if (components.length === 0) {
      throw new InvalidArgumentError(`layer entry ${quoteName(entry.name)}: hard link to the root directory`);
    }
    const parent = await this.resolveDir(entry, components.slice(0, -1), false);
    let path = parent === undefined ? undefined : join(parent, components[components.length - 1]);
    let found = path === undefined ? undefined : lstatOrUndefined(path);
    if (!found && this.mode.kind === 'overlay') {
      path = await this.copyUp(entry, components);
      found = path === undefined ? undefined : lstatOrUndefined(path);
    }
    if (!path || !found) {
      throw new FailedPreconditionError(`layer entry ${quoteName(entry.name)}: hard link target ${quoteName(entry.linkname)} does not exist`);
    }
    if (found.isDirectory()) {
      throw new InvalidArgumentError(`layer entry ${quoteName(entry.name)}: hard link target ${quoteName(entry.linkname)} is a directory`);
    }
    return path;
  }

  /**
   * The host directory for `components`, resolved inside the root. Every
   * component is lstat'ed; real directories are entered, symlinks are
   * followed under the policy (at most 40 of them, so loops end), anything
   * else fails. Missing directories are created when `create` (in overlay
   * mode with the metadata of the same directory in the lowers), else the
   * result is undefined.
   *
   * Invariant: `host` is `root` joined with `logical`, and every component of
   * `logical` is a real directory, so `..` can be taken lexically.
   */
  private async resolveDir(entry: TarEntry, components: string[], create: boolean): Promise<string | undefined> {
    return (await this.resolveState(entry, components, create))?.host;
  }

  /** As resolveDir, starting from the nearest ancestor already resolved. */
  private async resolveState(entry: TarEntry, components: string[], create: boolean): Promise<ResolvedDir | undefined> {
    if (components.length === 0) return { host: this.root, logical: [], follows: 0 };
    const key = components.join('/');
    const known = this.resolved.get(key);
    if (known !== undefined) return known;
    let start = 0;
    let from: ResolvedDir = { host: this.root, logical: [], follows: 0 };
    for (let i = components.length - 1; i > 0; i--) {
      const ancestor = this.resolved.get(components.slice(0, i).join('/'));
      if (ancestor !== undefined) {
        start = i;
        from = ancestor;
        break;
      }
    }
    const state = await this.resolveUncached(entry, components.slice(start), from, create);
    if (state !== undefined) this.resolved.set(key, state);
    return state;
  }

  private async resolveUncached(entry: TarEntry, components: string[], from: ResolvedDir, create: boolean): Promise<ResolvedDir | undefined> {
    let logical = from.logical;
    let host = from.host;
    const pending = [...components];
    let follows = from.follows;
    while (pending.length > 0) {
      const part = pending.shift() as string;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (logical.length === 0) {
          if (this.symlinks === 'resolve-in-root') continue;
          throw new InvalidArgumentError(`layer entry ${quoteName(entry.name)}: a symlink on its path leads outside the target directory`);
        }
        logical = logical.slice(0, -1);
        host = join(this.root, ...logical);
        continue;
      }
      const next = join(host, part);
      const stats = lstatOrUndefined(next);
      if (stats === undefined) {
        if (!create) return undefined;
        await this.createDirectory(next, [...logical, part]);
      } else if (stats.isSymbolicLink()) {
        if (++follows > MAX_SYMLINK_FOLLOWS) {
          throw new InvalidArgumentError(`layer entry ${quoteName(entry.name)}: too many levels of symbolic links on its path`);
        }
        const target = fsSync.readlinkSync(next);
        if (target.startsWith('/')) {
          if (this.symlinks !== 'resolve-in-root') {
            throw new InvalidArgumentError(
              `layer entry ${quoteName(entry.name)}: refusing to write through symlink ${quoteName([...logical, part].join('/'))} -> ${quoteName(target)}, which leaves the target directory`,
            );
          }
          logical = [];
          host = this.root;
        }
        pending.unshift(...target.split('/'));
        continue;
      } else if (!stats.isDirectory()) {
        throw new FailedPreconditionError(
          `layer entry ${quoteName(entry.name)}: ${quoteName([...logical, part].join('/'))} on its path is not a directory`,
        );
      }
      logical = [...logical, part];
      host = next;
    }
    return { host, logical, follows };
  }

  /** A directory the layer did not list but needs as a parent. */
  private async createDirectory(path: string, components: string[]): Promise<void> {
    fsSync.mkdirSync(path, 0o755);
    if (this.mode.kind !== 'overlay') return;
    // In the upper dir, a parent that exists in a lower must keep the lower's
    // owner, mode and times, or the merged view would change them.
    const lower = await this.findInLowers(components);
    if (!lower?.stats.isDirectory()) return;
    await fs.lchown(path, lower.stats.uid, lower.stats.gid);
    await fs.chmod(path, lower.stats.mode & 0o7777);
    for (const [name, value] of readXattrs(lower.path)) {
      if (!isOverlayXattr(name)) setXattr(path, name, value);
    }
    this.directoryTimes.set(path, { atime: lower.stats.atime, mtime: lower.stats.mtime });
  }

  /**
   * The topmost lower that has `components`, walking each lower with lstat
   * so a symlink in a lower is never followed. A whiteout in a lower ends the
   * search: what is below it is hidden.
   */
  private async findInLowers(components: string[]): Promise<{ path: string; stats: Stats } | undefined> {
    if (this.mode.kind !== 'overlay') return undefined;
    for (const lowerDir of this.mode.lowerDirs) {
      let path = lowerDir;
      let stats: Stats | undefined;
      for (let i = 0; i < components.length; i++) {
        path = join(path, components[i]);
        stats = lstatOrUndefined(path);
        if (stats === undefined) break;
        if (stats.isCharacterDevice() && stats.rdev === 0) return undefined;
        if (i < components.length - 1 && !stats.isDirectory()) return undefined;
      }
      if (stats !== undefined) return { path, stats };
    }
    return undefined;
  }

  /** Brings a file from the lowers into the upper dir so a hard link can point at it. */
  private async copyUp(entry: TarEntry, components: string[]): Promise<string | undefined> {
    const lower = await this.findInLowers(components);
    if (!lower?.stats.isFile()) return undefined;
    const parent = await this.resolveDir(entry, components.slice(0, -1), true);
    if (parent === undefined) return undefined;
    const path = join(parent, components[components.length - 1]);
    await fs.copyFile(lower.path, path, fsConstants.COPYFILE_EXCL);
    await fs.lchown(path, lower.stats.uid, lower.stats.gid);
    await fs.chmod(path, lower.stats.mode & 0o7777);
    for (const [name, value] of readXattrs(lower.path)) {
      if (!isOverlayXattr(name)) setXattr(path, name, value);
    }
    await fs.lutimes(path, lower.stats.atime, lower.stats.mtime);
    return path;
  }
}

async function realDirectory(path: string, what: string): Promise<string> {
  let real: string;
  try {
    real = await fs.realpath(path);
  } catch (err) {
    throw new FailedPreconditionError(`${what} ${path} does not exist`, { cause: err });
  }
  if (!(await fs.stat(real)).isDirectory()) throw new FailedPreconditionError(`${what} ${path} is not a directory`);
  return real;
}

/** Where to extract, checked inside `extract` so a bad target also releases the stream. */
type Destination = () => Promise<{ root: string; mode: Mode }>;

async function extract(stream: Readable, destination: Destination, options: ApplyLayerOptions): Promise<AppliedLayer> {
  let reader: ByteReader | undefined;
  try {
    const { root, mode } = await destination();
    const extractor = new LayerExtractor(root, mode, options.preserveOwner ?? isRoot(), options.symlinks ?? 'refuse-outside-root');
    const layer = await openUncompressed(stream, { maxBytes: options.maxBytes, signal: options.signal });
    reader = new ByteReader(layer.chunks);
    const { onEntry } = options;
    for await (const member of readTar(reader)) {
      onEntry?.(member.entry.name, member.entry.type);
      const pending = extractor.apply(member);
      if (pending) await pending;
    }
    // The diffID covers every byte, including what follows the end marker.
    await reader.drain();
    await extractor.finish();
    return { diffID: layer.digest(), size: layer.bytesRead, compression: layer.compression };
  } catch (err) {
    await reader?.close().catch(() => undefined);
    // Whatever failed, the blob being read is not read further.
    stream.destroy();
    throw err;
  }
}

/**
 * Extracts an OCI layer (tar, tar+gzip or tar+zstd, found by magic bytes)
 * into `targetDir`, which holds the layers below it: `.wh.<name>` deletes
 * `<name>`, `.wh..wh..opq` in a directory deletes what this layer did not add
 * there. Nothing is written outside `targetDir`; entries that try fail the
 * apply with InvalidArgument naming them. Returns the layer's diffID.
 */
export async function applyLayer(stream: Readable, targetDir: string, options: ApplyLayerOptions = {}): Promise<AppliedLayer> {
  const destination: Destination = async () => ({ root: await realDirectory(targetDir, 'apply target'), mode: { kind: 'naive' } });
  return extract(stream, destination, options);
}

/**
 * The overlay fast path: extracts straight into an overlay's upper dir
 * without mounting. Whiteouts become what overlayfs uses: `.wh.<name>` a 0/0
 * character device `<name>`, `.wh..wh..opq` the opaque xattr on its
 * directory. Parent directories missing in the upper are created with the
 * metadata they have in `lowerDirs` (nearest first, as in `lowerdir=`).
 */
export async function applyLayerToOverlayUpper(
  stream: Readable,
  upperDir: string,
  lowerDirs: string[],
  options: OverlayUpperOptions = {},
): Promise<AppliedLayer> {
  const destination: Destination = async () => {
    const root = await realDirectory(upperDir, 'overlay upper dir');
    const lowers = await Promise.all(lowerDirs.map((dir) => realDirectory(dir, 'overlay lower dir')));
    const opaqueXattr = options.opaqueXattr ?? 'trusted.overlay.opaque';
    return { root, mode: { kind: 'overlay', lowerDirs: lowers, opaqueXattr } };
  };
  return extract(stream, destination, options);
}
