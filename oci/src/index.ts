/**
 * @berth/oci: OCI runtime specs (a bundle's config.json) generated the way
 * containerd's client builds them for `ctr run` and `ctr tasks exec`: the
 * default Linux spec, then the image config, args, env, user (from the
 * image's /etc/passwd and /etc/group), mounts, host network, privileges,
 * capabilities and a default seccomp profile.
 */
export {
  ALL_CAPABILITIES,
  DEFAULT_CAPABILITIES,
  currentCapabilities,
  normalizeCapability,
} from './capabilities';
export {
  DEFAULT_MASKED_PATHS,
  DEFAULT_PATH_ENV,
  DEFAULT_READONLY_PATHS,
  DEFAULT_ROOTFS_PATH,
  OCI_VERSION,
  defaultCgroupsPath,
  defaultDeviceRules,
  defaultMounts,
  defaultSpec,
} from './defaults';
export { envKey, mergeEnv } from './env';
export {
  STOP_SIGNAL_LABEL,
  execProcessSpec,
  generateSpec,
  imageConfigLabels,
  type ExecProcessOptions,
  type GenerateSpecOptions,
  type RootfsSource,
} from './generate';
export { withReadonlyRootfs, type ReadonlyRootfsOptions } from './rootfs';
export { defaultSeccompProfile, seccompSupported } from './seccomp';
export {
  parseGroup,
  parsePasswd,
  readFileInRoot,
  resolveInRoot,
  resolveUser,
  type GroupEntry,
  type PasswdEntry,
} from './user';
export type {
  ImageRuntimeConfig,
  RuntimeSpec,
  SeccompAction,
  SeccompOperator,
  SpecCapabilities,
  SpecCpu,
  SpecDevice,
  SpecDeviceCgroup,
  SpecHook,
  SpecHooks,
  SpecIdMapping,
  SpecLinux,
  SpecMemory,
  SpecMount,
  SpecNamespace,
  SpecNamespaceType,
  SpecProcess,
  SpecResources,
  SpecRlimit,
  SpecRoot,
  SpecSeccomp,
  SpecSyscall,
  SpecSyscallArg,
  SpecUser,
} from './types';
