import { SyscallError } from './errors';
import { lastErrno, libc } from './libc';

/** mkfifo(3). `mode` is filtered by the umask, as with mkdir. */
export function mkfifo(path: string, mode: number = 0o600): void {
  if (libc().mkfifo(path, mode) !== 0) throw new SyscallError('mkfifo', lastErrno(), path, `mkfifo ${path}`);
}

const PR_SET_CHILD_SUBREAPER = 36;
const PR_GET_CHILD_SUBREAPER = 37;

/**
 * Makes this process adopt orphaned descendants (PR_SET_CHILD_SUBREAPER), so a
 * shim whose container's parent exits still gets the SIGCHLD and exit status.
 */
export function prctlSetChildSubreaper(enable: boolean = true): void {
  const rc = libc().prctl(
    PR_SET_CHILD_SUBREAPER,
    'unsigned long', enable ? 1 : 0,
    'unsigned long', 0,
    'unsigned long', 0,
    'unsigned long', 0,
  );
  if (rc !== 0) throw new SyscallError('prctl', lastErrno(), '', 'prctl(PR_SET_CHILD_SUBREAPER)');
}

/** Whether this process is a child subreaper. */
export function prctlGetChildSubreaper(): boolean {
  const out = Buffer.alloc(4);
  const rc = libc().prctl(
    PR_GET_CHILD_SUBREAPER,
    'void *', out,
    'unsigned long', 0,
    'unsigned long', 0,
    'unsigned long', 0,
  );
  if (rc !== 0) throw new SyscallError('prctl', lastErrno(), '', 'prctl(PR_GET_CHILD_SUBREAPER)');
  return out.readInt32LE(0) !== 0;
}

/** `CLONE_NEW*` namespace kinds for setns(2) and unshare(2). */
export const namespaceFlags = {
  mount: 0x00020000,
  uts: 0x04000000,
  ipc: 0x08000000,
  user: 0x10000000,
  pid: 0x20000000,
  network: 0x40000000,
  cgroup: 0x02000000,
  time: 0x00000080,
} as const;

export type NamespaceKind = keyof typeof namespaceFlags;

function namespaceBits(kinds: readonly NamespaceKind[]): number {
  return kinds.reduce((bits, kind) => bits | namespaceFlags[kind], 0);
}

/**
 * setns(2) on the calling thread: in Node that is the main JS thread only, not
 * libuv's pool, so file operations run there would not follow. Meant for a
 * short-lived helper process that does one thing inside a namespace.
 */
export function setns(fd: number, kind?: NamespaceKind): void {
  if (libc().setns(fd, kind ? namespaceFlags[kind] : 0) !== 0) {
    throw new SyscallError('setns', lastErrno(), `fd ${fd}`, `setns(fd ${fd}${kind ? `, ${kind}` : ''})`);
  }
}

/**
 * unshare(2) of the calling thread. The same caveat as setns applies, and the
 * kernel refuses `user` in a multithreaded process, which every Node process is.
 */
export function unshare(kinds: readonly NamespaceKind[]): void {
  if (libc().unshare(namespaceBits(kinds)) !== 0) {
    throw new SyscallError('unshare', lastErrno(), '', `unshare(${kinds.join(', ')})`);
  }
}
