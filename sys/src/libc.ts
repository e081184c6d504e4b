import * as koffi from 'koffi';
import { NotImplementedError } from '@berth/core';

/**
 * The libc entry points berth calls, bound once on first use. Binding is lazy so
 * that importing @berth/sys on a host without glibc (or without koffi's prebuilt
 * binary) fails only when a syscall is actually wanted, and plugins can turn that
 * into a PluginSkipError.
 */
export interface Libc {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): number;
  umount2(target: string, flags: number): number;
  mkfifo(path: string, mode: number): number;
  /** prctl is variadic: each extra argument goes as a (type, value) pair. */
  prctl(option: number, ...typedArgs: (string | number | Buffer)[]): number;
  setns(fd: number, nstype: number): number;
  unshare(flags: number): number;
  getxattr(path: string, name: string, value: Buffer | null, size: number): number;
  lgetxattr(path: string, name: string, value: Buffer | null, size: number): number;
  setxattr(path: string, name: string, value: Buffer, size: number, flags: number): number;
  lsetxattr(path: string, name: string, value: Buffer, size: number, flags: number): number;
  listxattr(path: string, list: Buffer | null, size: number): number;
  llistxattr(path: string, list: Buffer | null, size: number): number;
  lremovexattr(path: string, name: string): number;
  strerror(errnum: number): string;
  sysconf(name: number): number;
}

let bound: Libc | undefined;

export function libc(): Libc {
  if (bound) return bound;
  if (process.platform !== 'linux') {
    throw new NotImplementedError(`@berth/sys needs Linux (this is ${process.platform})`);
  }
  let lib: koffi.LibraryHandle;
  try {
    lib = koffi.load('libc.so.6');
  } catch (err) {
    throw new NotImplementedError(`@berth/sys: cannot load libc.so.6: ${(err as Error).message}`, { cause: err });
  }
  // ssize_t and size_t are 64-bit on every Linux berth targets; `long` keeps that true on 32-bit too.
  bound = {
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    mkfifo: lib.func('int mkfifo(const char *path, uint32_t mode)'),
    prctl: lib.func('int prctl(int option, ...)'),
    setns: lib.func('int setns(int fd, int nstype)'),
    unshare: lib.func('int unshare(int flags)'),
    getxattr: lib.func('long getxattr(const char *path, const char *name, void *value, unsigned long size)'),
    lgetxattr: lib.func('long lgetxattr(const char *path, const char *name, void *value, unsigned long size)'),
    setxattr: lib.func('int setxattr(const char *path, const char *name, const void *value, unsigned long size, int flags)'),
    lsetxattr: lib.func('int lsetxattr(const char *path, const char *name, const void *value, unsigned long size, int flags)'),
    listxattr: lib.func('long listxattr(const char *path, void *list, unsigned long size)'),
    llistxattr: lib.func('long llistxattr(const char *path, void *list, unsigned long size)'),
    lremovexattr: lib.func('int lremovexattr(const char *path, const char *name)'),
    strerror: lib.func('const char *strerror(int errnum)'),
    sysconf: lib.func('long sysconf(int name)'),
  };
  return bound;
}

/** errno of the last libc call on this thread (koffi saves it right after the call). */
export function lastErrno(): number {
  return koffi.errno();
}
