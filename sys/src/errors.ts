import { constants } from 'node:os';
import { BerthError, type ErrorKind } from '@berth/core';
import { libc } from './libc';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

/** `EINVAL` for 22; `errno 1234` for numbers libc has no name for. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

// Only errnos whose meaning is the same whatever the syscall; the rest stay 'unknown'
// so callers decide (EBUSY from umount means something else than from mount).
const errnoKinds: Record<string, ErrorKind> = {
  ENOENT: 'not-found',
  EEXIST: 'already-exists',
  ENOTEMPTY: 'failed-precondition',
  EINVAL: 'invalid-argument',
  ENOTDIR: 'invalid-argument',
  ENAMETOOLONG: 'invalid-argument',
  ELOOP: 'invalid-argument',
  E2BIG: 'invalid-argument',
  EPERM: 'permission-denied',
  EACCES: 'permission-denied',
  EROFS: 'permission-denied',
  EBUSY: 'unavailable',
  ENOSPC: 'resource-exhausted',
  ENOMEM: 'resource-exhausted',
  EMFILE: 'resource-exhausted',
  ENFILE: 'resource-exhausted',
  ENODEV: 'not-implemented',
  ENOSYS: 'not-implemented',
  EOPNOTSUPP: 'not-implemented',
  ENOTSUP: 'not-implemented',
  ENODATA: 'not-found',
};

/**
 * A failed syscall. The message reads like `mount overlay on /x: EINVAL (Invalid
 * argument)`; `code` is the errno name, as on Node's own fs errors, so code that
 * already checks `err.code === 'ENOENT'` keeps working.
 */
export class SyscallError extends BerthError {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  readonly path: string;

  constructor(syscall: string, errno: number, path: string, what: string = `${syscall} ${path}`) {
    const code = errnoName(errno);
    super(errnoKinds[code] ?? 'unknown', `${what}: ${code} (${describeErrno(errno)})`);
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
    this.path = path;
  }
}

function describeErrno(errno: number): string {
  try {
    return libc().strerror(errno);
  } catch {
    return 'unknown error';
  }
}
