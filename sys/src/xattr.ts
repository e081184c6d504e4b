import { SyscallError } from './errors';
import { lastErrno, libc } from './libc';

/**
 * Extended attributes, which Node has no API for. The `l` variants act on a
 * symlink itself; the plain ones follow it. Values are bytes: `security.capability`
 * and `trusted.overlay.*` are binary or must round-trip exactly.
 */

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

export interface SetXattrOptions {
  /** Fail with EEXIST if the attribute exists. */
  create?: boolean;
  /** Fail with ENODATA if the attribute does not exist. */
  replace?: boolean;
}

/** Value of `name`; throws SyscallError with code ENODATA when absent. */
export function getxattr(path: string, name: string): Buffer {
  return readXattr('getxattr', path, name, (buf, size) => libc().getxattr(path, name, buf, size));
}

export function lgetxattr(path: string, name: string): Buffer {
  return readXattr('lgetxattr', path, name, (buf, size) => libc().lgetxattr(path, name, buf, size));
}

export function setxattr(path: string, name: string, value: Buffer | string, options: SetXattrOptions = {}): void {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  if (libc().setxattr(path, name, bytes, bytes.length, setFlags(options)) !== 0) {
    throw new SyscallError('setxattr', lastErrno(), path, `setxattr ${name} on ${path}`);
  }
}

export function lsetxattr(path: string, name: string, value: Buffer | string, options: SetXattrOptions = {}): void {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  if (libc().lsetxattr(path, name, bytes, bytes.length, setFlags(options)) !== 0) {
    throw new SyscallError('lsetxattr', lastErrno(), path, `lsetxattr ${name} on ${path}`);
  }
}

export function lremovexattr(path: string, name: string): void {
  if (libc().lremovexattr(path, name) !== 0) {
    throw new SyscallError('lremovexattr', lastErrno(), path, `lremovexattr ${name} on ${path}`);
  }
}

/** Attribute names of `path` (only those the caller may see: `trusted.*` needs CAP_SYS_ADMIN). */
export function listxattr(path: string): string[] {
  return readNames('listxattr', path, (buf, size) => libc().listxattr(path, buf, size));
}

export function llistxattr(path: string): string[] {
  return readNames('llistxattr', path, (buf, size) => libc().llistxattr(path, buf, size));
}

function setFlags(options: SetXattrOptions): number {
  return (options.create ? XATTR_CREATE : 0) | (options.replace ? XATTR_REPLACE : 0);
}

type SizedRead = (buffer: Buffer | null, size: number) => number;

const ERANGE = 34;

/** Asks for the size first, then reads; retries if the value grew in between (ERANGE). */
function readSized(syscall: string, path: string, what: string, read: SizedRead): Buffer {
  for (let attempt = 0; ; attempt++) {
    const size = read(null, 0);
    if (size < 0) throw new SyscallError(syscall, lastErrno(), path, what);
    if (size === 0) return Buffer.alloc(0);
    const buffer = Buffer.alloc(size);
    const got = read(buffer, size);
    if (got >= 0) return buffer.subarray(0, got);
    const errno = lastErrno();
    if (errno !== ERANGE || attempt >= 8) throw new SyscallError(syscall, errno, path, what);
  }
}

function readXattr(syscall: string, path: string, name: string, read: SizedRead): Buffer {
  return readSized(syscall, path, `${syscall} ${name} on ${path}`, read);
}

function readNames(syscall: string, path: string, read: SizedRead): string[] {
  const list = readSized(syscall, path, `${syscall} ${path}`, read);
  return list.toString('utf8').split('\0').filter((name) => name.length > 0);
}
