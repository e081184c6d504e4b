import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { BerthError, InvalidArgumentError, NotImplementedError } from '@berth/core';
import { SyscallError } from './errors';
import { lastErrno, libc } from './libc';

/** Linux `MS_*` mount flags, named without the prefix. */
export const mountFlagBits = {
  rdonly: 0x1,
  nosuid: 0x2,
  nodev: 0x4,
  noexec: 0x8,
  synchronous: 0x10,
  remount: 0x20,
  mandlock: 0x40,
  dirsync: 0x80,
  nosymfollow: 0x100,
  noatime: 0x400,
  nodiratime: 0x800,
  bind: 0x1000,
  move: 0x2000,
  rec: 0x4000,
  silent: 0x8000,
  unbindable: 1 << 17,
  private: 1 << 18,
  slave: 1 << 19,
  shared: 1 << 20,
  relatime: 1 << 21,
  strictatime: 1 << 24,
  lazytime: 1 << 25,
} as const;

export type MountFlag = keyof typeof mountFlagBits;

const MS = mountFlagBits;
const propagationBits = MS.shared | MS.private | MS.slave | MS.unbindable;

/** umount2 flags. */
const MNT_FORCE = 1;
const MNT_DETACH = 2;
const MNT_EXPIRE = 4;
const UMOUNT_NOFOLLOW = 8;

/** ORs flag names together; a number passes through unchanged. */
export function mountFlags(flags: readonly MountFlag[] | number): number {
  if (typeof flags === 'number') return flags;
  let bits = 0;
  for (const flag of flags) {
    const bit = mountFlagBits[flag];
    if (bit === undefined) throw new InvalidArgumentError(`unknown mount flag ${JSON.stringify(flag)}`);
    bits |= bit;
  }
  return bits;
}

/**
 * mount(2). Synchronous like `fs.*Sync`: the syscall takes microseconds for a
 * bind and a few milliseconds for an overlay, and a thread hop would lose errno.
 * Throws SyscallError, e.g. `mount overlay on /x: EINVAL (Invalid argument)`.
 */
export function mount(
  source: string,
  target: string,
  fstype: string,
  flags: readonly MountFlag[] | number,
  data?: string,
): void {
  const bits = mountFlags(flags);
  const rc = libc().mount(source, target, fstype || null, bits, data ? data : null);
  if (rc !== 0) throw new SyscallError('mount', lastErrno(), target, describeMount(source, target, fstype, bits));
}

function describeMount(source: string, target: string, fstype: string, bits: number): string {
  if (bits & MS.remount) return `remount ${target}`;
  if ((bits & propagationBits) !== 0 && !(bits & MS.bind)) return `change propagation of ${target}`;
  if (bits & MS.move) return `move mount ${source} to ${target}`;
  if (bits & MS.bind) return `bind mount ${source} on ${target}`;
  const kind = fstype && fstype !== source ? `${fstype} ` : '';
  return `mount ${kind}${source} on ${target}`;
}

export interface UnmountOptions {
  /** MNT_DETACH: lazy unmount, detaching now and cleaning up once no longer busy. */
  detach?: boolean;
  /** MNT_FORCE (only some filesystems, e.g. NFS, honour it). */
  force?: boolean;
  /** MNT_EXPIRE: mark for expiry; a second call unmounts if unused meanwhile. */
  expire?: boolean;
  /** UMOUNT_NOFOLLOW: do not follow a symlink at `target`. */
  noFollow?: boolean;
}

/** umount2(2). Throws SyscallError (`EINVAL` when `target` is not a mount point). */
export function umount(target: string, options: UnmountOptions = {}): void {
  const rc = libc().umount2(target, umountFlags(options));
  if (rc !== 0) throw new SyscallError('umount2', lastErrno(), target, `unmount ${target}`);
}

function umountFlags(options: UnmountOptions): number {
  return (
    (options.detach ? MNT_DETACH : 0) |
    (options.force ? MNT_FORCE : 0) |
    (options.expire ? MNT_EXPIRE : 0) |
    (options.noFollow ? UMOUNT_NOFOLLOW : 0)
  );
}

/**
 * A mount as containerd describes it: what `mount(8)` would be given.
 * Structurally the same as @berth/core's snapshot `Mount`, so snapshotter
 * results pass straight in.
 */
export interface MountSpec {
  /** `bind`, `overlay`, `tmpfs`, ... */
  type: string;
  source: string;
  /** Sub-path under the target to mount at (containerd 1.7+); usually absent. */
  target?: string;
  options: readonly string[];
}

/** What a containerd option list means to mount(2). */
export interface ParsedMountOptions {
  /** MS_* flags, propagation bits included. */
  flags: number;
  /** Filesystem-specific options, in order, for the data argument. */
  data: string[];
}

/** Options containerd's mount package turns into flags: [set?, bits]. */
const optionFlags: Record<string, [boolean, number]> = {
  async: [false, MS.synchronous],
  atime: [false, MS.noatime],
  bind: [true, MS.bind],
  defaults: [true, 0],
  dev: [false, MS.nodev],
  diratime: [false, MS.nodiratime],
  dirsync: [true, MS.dirsync],
  exec: [false, MS.noexec],
  mand: [true, MS.mandlock],
  noatime: [true, MS.noatime],
  nodev: [true, MS.nodev],
  nodiratime: [true, MS.nodiratime],
  noexec: [true, MS.noexec],
  nomand: [false, MS.mandlock],
  norelatime: [false, MS.relatime],
  nostrictatime: [false, MS.strictatime],
  nosuid: [true, MS.nosuid],
  nosymfollow: [true, MS.nosymfollow],
  rbind: [true, MS.bind | MS.rec],
  relatime: [true, MS.relatime],
  remount: [true, MS.remount],
  ro: [true, MS.rdonly],
  rw: [false, MS.rdonly],
  strictatime: [true, MS.strictatime],
  suid: [false, MS.nosuid],
  sync: [true, MS.synchronous],
  lazytime: [true, MS.lazytime],
  nolazytime: [false, MS.lazytime],
  private: [true, MS.private],
  rprivate: [true, MS.private | MS.rec],
  shared: [true, MS.shared],
  rshared: [true, MS.shared | MS.rec],
  slave: [true, MS.slave],
  rslave: [true, MS.slave | MS.rec],
  unbindable: [true, MS.unbindable],
  runbindable: [true, MS.unbindable | MS.rec],
};

/**
 * Splits containerd-style options into flags and filesystem data, as
 * containerd's parseMountOptions does: known words set or clear flags, `X-*`
 * (userspace hints) are dropped, everything else is data. `loop` is refused:
 * berth sets up no loop devices.
 */
export function parseMountOptions(options: readonly string[]): ParsedMountOptions {
  let flags = 0;
  const data: string[] = [];
  for (const option of options) {
    const known = Object.prototype.hasOwnProperty.call(optionFlags, option) ? optionFlags[option] : undefined;
    if (known) {
      const [set, bits] = known;
      flags = set ? flags | bits : flags & ~bits;
    } else if (option === 'loop') {
      throw new NotImplementedError('mount option "loop" is not supported');
    } else if (!option.startsWith('X-')) {
      data.push(option);
    }
  }
  return { flags, data };
}

let cachedPageSize: number | undefined;

/** The kernel copies at most one page of mount data. */
export function pageSize(): number {
  const _SC_PAGESIZE = 30;
  cachedPageSize ??= libc().sysconf(_SC_PAGESIZE) > 0 ? libc().sysconf(_SC_PAGESIZE) : 4096;
  return cachedPageSize;
}

/**
 * Mounts `mounts` on `target` in order, stacking them as containerd's
 * MountAll does (`Mount.target` is a sub-path of `target`). If one fails,
 * the ones already mounted are unmounted before the error is thrown.
 */
export async function mountAll(mounts: readonly MountSpec[], target: string): Promise<void> {
  const done: string[] = [];
  try {
    for (const m of mounts) {
      const at = m.target ? subPath(target, m.target) : target;
      await mountSpec(m, at);
      done.push(at);
    }
  } catch (err) {
    for (const at of done.reverse()) {
      try {
        umount(at, { detach: true });
      } catch {
        // The original error is the one worth reporting.
      }
    }
    throw err;
  }
}

/**
 * Unmounts everything mounted on `target`, top first, until it is no longer a
 * mount point (containerd's UnmountAll). EBUSY is retried for a while, as
 * containerd does, since a just-exited process may still hold the mount.
 * A missing target counts as unmounted.
 */
export async function unmountAll(target: string, options: UnmountOptions = {}): Promise<void> {
  let busyRetries = 50;
  for (let unmounted = 0; unmounted < 1024; ) {
    try {
      umount(target, options);
      unmounted++;
    } catch (err) {
      const code = (err as SyscallError).code;
      if (code === 'EINVAL' || code === 'ENOENT') return;
      if (code === 'EBUSY' && busyRetries-- > 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      throw err;
    }
  }
  throw new BerthError('internal', `unmount ${target}: still a mount point after 1024 unmounts`);
}

function subPath(target: string, sub: string): string {
  const at = join(target, sub);
  const rel = relative(target, at);
  if (rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) {
    throw new InvalidArgumentError(`mount target ${JSON.stringify(sub)} is outside ${target}`);
  }
  return at;
}

/** Mounts one record the way containerd's Mount.mount does. */
async function mountSpec(m: MountSpec, target: string): Promise<void> {
  const limit = pageSize();
  if (m.type === 'overlay' && optionsSize(m.options) >= limit - 512) {
    const compacted = compactLowerdirOption(m.options);
    if (compacted) return mountCompactedOverlay(m, compacted, target, limit);
  }
  mountWithOptions(m.source, m.type, m.options, target, limit);
}

function mountWithOptions(source: string, type: string, options: readonly string[], target: string, limit: number): void {
  const { flags, data } = parseMountOptions(options);
  checkDataSize(data, limit, target);
  const plainFlags = flags & ~propagationBits;
  // A remount without data only changes flags, done by the bind-ro step below.
  if (!(flags & MS.remount) || data.length > 0) {
    mount(source, target, type, plainFlags, data.join(','));
  }
  if (flags & propagationBits) {
    mount('', target, '', flags & (propagationBits | MS.rec | MS.silent));
  }
  // The kernel ignores MS_RDONLY on the initial bind: a second call applies it.
  if ((plainFlags & (MS.bind | MS.rdonly)) === (MS.bind | MS.rdonly)) {
    mount('', target, '', plainFlags | MS.remount);
  }
}

/**
 * An overlay whose lowerdir list overflows a page. First choice: name the
 * lowerdirs' common parent through a descriptor of this process
 * (`/proc/self/fd/N/<id>/fs`), which the kernel resolves at mount time, so the
 * syscall stays in-process. When even that is too long (hundreds of layers),
 * containerd's way: paths relative to the common dir, mounted by a child
 * process whose working directory it is.
 */
async function mountCompactedOverlay(
  m: MountSpec,
  compacted: { dir: string; options: string[] },
  target: string,
  limit: number,
): Promise<void> {
  const fd = openDirectory(compacted.dir);
  try {
    const viaFd = compacted.options.map((o) =>
      o.startsWith('lowerdir=')
        ? 'lowerdir=' + o.slice('lowerdir='.length).split(':').map((d) => `/proc/self/fd/${fd}/${d}`).join(':')
        : o,
    );
    if (dataSize(parseMountOptions(viaFd).data) <= limit) {
      mountWithOptions(m.source, m.type, viaFd, target, limit);
      return;
    }
  } finally {
    closeSync(fd);
  }
  checkDataSize(parseMountOptions(compacted.options).data, limit, target);
  return mountFromDir(m, compacted.options, compacted.dir, target);
}

function openDirectory(path: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).errno;
    if (typeof errno !== 'number') throw err;
    throw new SyscallError('open', Math.abs(errno), path, `open ${path}`);
  }
}

function optionsSize(options: readonly string[]): number {
  return options.reduce((n, o) => n + o.length + 1, 0);
}

/** Bytes the kernel copies for this data, its terminating NUL included. */
function dataSize(data: readonly string[]): number {
  return Buffer.byteLength(data.join(',')) + 1;
}

function checkDataSize(data: string[], limit: number, target: string): void {
  const size = dataSize(data);
  if (size > limit) {
    throw new InvalidArgumentError(
      `mount on ${target}: options are ${size} bytes, more than the kernel's ${limit}-byte page`,
    );
  }
}

/**
 * containerd's compactLowerdirOption: rewrites `lowerdir=` relative to the
 * lowerdirs' common parent directory, so the data fits in a page when the
 * paths are resolved from that directory. Undefined when there is nothing in
 * common to strip.
 */
export function compactLowerdirOption(
  options: readonly string[],
): { dir: string; options: string[] } | undefined {
  const index = options.findIndex((o) => o.startsWith('lowerdir='));
  if (index < 0) return undefined;
  const lowerdirs = options[index].slice('lowerdir='.length).split(':');
  if (lowerdirs.length < 2 || !lowerdirs.every((d) => isAbsolute(d))) return undefined;
  const dir = commonParent(lowerdirs);
  if (dir === '/' || dir === '') return undefined;
  const relativeDirs = lowerdirs.map((d) => relative(dir, d));
  // The lowerdir option goes last, where containerd puts it too.
  const rest = options.filter((_, i) => i !== index);
  return { dir, options: [...rest, `lowerdir=${relativeDirs.join(':')}`] };
}

/** The deepest directory containing every path, compared by whole components. */
function commonParent(paths: readonly string[]): string {
  const split = paths.map((p) => resolve(p).split(sep));
  const shortest = Math.min(...split.map((parts) => parts.length));
  let common = 0;
  while (common < shortest && split.every((parts) => parts[common] === split[0][common])) common++;
  // Every lowerdir must stay strictly below the common dir.
  if (common === shortest) common--;
  return split[0].slice(0, common).join(sep) || '/';
}

/**
 * Mounts from a child process whose working directory is `dir`, for lowerdir
 * lists too long for one page. The working directory is process-wide in Node
 * (process.chdir would move every concurrent file operation of a daemon), and
 * containerd's per-thread unshare(CLONE_FS) trick has no safe equivalent on
 * libuv's shared thread pool, so the chdir happens in `mount(8)`.
 */
function mountFromDir(m: MountSpec, options: string[], dir: string, target: string): Promise<void> {
  const args = ['-n', '-i', '-t', m.type, '-o', options.join(','), m.source, resolve(target)];
  return new Promise((resolvePromise, reject) => {
    const child = spawn('mount', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) =>
      reject(new NotImplementedError(`mount ${m.type} on ${target}: cannot run mount(8): ${err.message}`, { cause: err })),
    );
    child.on('close', (code, signal) => {
      if (code === 0) return resolvePromise();
      const why = stderr.trim() || (signal ? `killed by ${signal}` : `exit status ${code}`);
      reject(new BerthError('unknown', `mount ${m.type} on ${target} (from ${dir}): ${why}`));
    });
  });
}

/** Mount points of this process's mount namespace, from /proc/self/mountinfo. */
export function mountPoints(): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  const points: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 4) points.push(unescapeMountinfo(fields[4]));
  }
  return points;
}

/** Whether `path` (absolute) is currently a mount point. */
export function isMountPoint(path: string): boolean {
  const wanted = resolve(path);
  return mountPoints().includes(wanted);
}

// mountinfo escapes space, tab, newline and backslash as \ooo octal.
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
