/**
 * @berth/sys: the Linux syscalls Node lacks, behind a small typed API
 * (koffi FFI into glibc). Failures throw SyscallError, a BerthError whose kind
 * follows the errno and whose message names the call, the path and the errno.
 */
export { SyscallError, errnoName } from './errors';
export {
  compactLowerdirOption,
  isMountPoint,
  mount,
  mountAll,
  mountFlagBits,
  mountFlags,
  mountPoints,
  pageSize,
  parseMountOptions,
  umount,
  unmountAll,
  type MountFlag,
  type MountSpec,
  type ParsedMountOptions,
  type UnmountOptions,
} from './mount';
export {
  mkfifo,
  namespaceFlags,
  prctlGetChildSubreaper,
  prctlSetChildSubreaper,
  setns,
  unshare,
  type NamespaceKind,
} from './process';
export {
  getxattr,
  lgetxattr,
  listxattr,
  llistxattr,
  lremovexattr,
  lsetxattr,
  setxattr,
  type SetXattrOptions,
} from './xattr';
export {
  createProcessIO,
  DEFAULT_FIFO_ROOT,
  openProcessIO,
  removeProcessIO,
  type CreateProcessIOOptions,
  type ProcessIOHandle,
} from './fifo-io';
