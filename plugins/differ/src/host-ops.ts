import { execFile } from 'child_process';
import { constants as osConstants } from 'os';
import { promisify } from 'util';
import * as koffi from 'koffi';
import { FailedPreconditionError } from '@berth/core';
import * as sys from '@berth/sys';

const execFileAsync = promisify(execFile);

export type NodeKind = 'char' | 'block' | 'fifo';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

type Mknod = (path: string, mode: number, dev: bigint) => number;
let boundMknod: Mknod | null | undefined;

/**
 * mknod(2) through koffi, bound here until @berth/sys offers it. Spawning
 * mknod(1) costs ~20 ms a node, and the overlay fast path makes one per
 * whiteout: thousands in a layer that removes packages. Null when libc
 * cannot be loaded; then mknod(1) is the fallback.
 */
function nativeMknod(): Mknod | null {
  if (boundMknod === undefined) {
    try {
      const libc = koffi.load('libc.so.6');
      boundMknod = libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)') as Mknod;
    } catch {
      boundMknod = null;
    }
  }
  return boundMknod;
}

/** Linux's makedev(3). */
function makeDevice(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/**
 * Creates a device node or fifo with mode 0600 (the caller sets the real
 * mode, after chown). The caller removed whatever was at `path`.
 */
export async function makeNode(path: string, kind: NodeKind, major: number, minor: number): Promise<void> {
  if (kind === 'fifo') {
    sys.mkfifo(path, 0o600);
    return;
  }
  const mknod = nativeMknod();
  if (mknod) {
    if (mknod(path, (kind === 'char' ? S_IFCHR : S_IFBLK) | 0o600, makeDevice(major, minor)) !== 0) {
      const errno = koffi.errno();
      const name = Object.entries(osConstants.errno).find(([, value]) => value === errno)?.[0] ?? `errno ${errno}`;
      const error = new FailedPreconditionError(`mknod ${path} (${kind} ${major}:${minor}): ${name}`);
      Object.assign(error, { code: name });
      throw error;
    }
    return;
  }
  const letter = kind === 'char' ? 'c' : 'b';
  try {
    await execFileAsync('mknod', ['-m', '0600', '--', path, letter, String(major), String(minor)]);
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new FailedPreconditionError(`mknod ${path} (${kind} ${major}:${minor}) failed: ${stderr || (err as Error).message}`, {
      cause: err,
    });
  }
}

export function setXattr(path: string, name: string, value: Buffer): void {
  sys.lsetxattr(path, name, value);
}

export function getXattr(path: string, name: string): Buffer {
  return sys.lgetxattr(path, name);
}

export function listXattrs(path: string): string[] {
  return sys.llistxattr(path);
}

/** All of a path's xattrs (without following a symlink). */
export function readXattrs(path: string): Map<string, Buffer> {
  const values = new Map<string, Buffer>();
  for (const name of listXattrs(path)) {
    try {
      values.set(name, getXattr(path, name));
    } catch (err) {
      // Removed between list and get: nothing to copy.
      if ((err as { code?: unknown }).code !== 'ENODATA') throw err;
    }
  }
  return values;
}

export const mountAll = sys.mountAll;
export const unmountAll = sys.unmountAll;

/** Linux's encoding of `st_rdev`. */
export function splitDevice(rdev: number): { major: number; minor: number } {
  const big = BigInt(rdev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & 0xfffff000n));
  const minor = Number((big & 0xffn) | ((big >> 12n) & 0xffffff00n));
  return { major, minor };
}
