/**
 * The parts of the OCI runtime spec (config.json, runtime-spec 1.0.2) that
 * berth generates or reads. Field names are the spec's JSON names.
 *
 * Object shapes are `type` aliases rather than interfaces on purpose: an alias
 * is assignable to `Record<string, unknown>`, which is how @berth/core's task
 * API carries a spec, so a RuntimeSpec passes there without a cast.
 */

export type RuntimeSpec = {
  ociVersion: string;
  process?: SpecProcess;
  root?: SpecRoot;
  hostname?: string;
  domainname?: string;
  mounts?: SpecMount[];
  hooks?: SpecHooks;
  annotations?: Record<string, string>;
  linux?: SpecLinux;
};

/** The container's init process, or an exec'd one. */
export type SpecProcess = {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: SpecUser;
  args?: string[];
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: SpecCapabilities;
  rlimits?: SpecRlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
};

export type SpecUser = {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  /** Windows only in the spec; berth never sets it for Linux. */
  username?: string;
};

export type SpecCapabilities = {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
};

export type SpecRlimit = {
  /** `RLIMIT_NOFILE`, `RLIMIT_NPROC`, ... */
  type: string;
  hard: number;
  soft: number;
};

export type SpecRoot = {
  /** Relative to the bundle, or absolute. */
  path: string;
  readonly?: boolean;
};

export type SpecMount = {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
};

export type SpecHook = {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
};

export type SpecHooks = {
  prestart?: SpecHook[];
  createRuntime?: SpecHook[];
  createContainer?: SpecHook[];
  startContainer?: SpecHook[];
  poststart?: SpecHook[];
  poststop?: SpecHook[];
};

export type SpecNamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';

export type SpecNamespace = {
  type: SpecNamespaceType;
  /** Join this existing namespace instead of creating one. */
  path?: string;
};

export type SpecIdMapping = {
  containerID: number;
  hostID: number;
  size: number;
};

export type SpecDevice = {
  type: string;
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
};

/** One device cgroup rule; absent major/minor mean any. */
export type SpecDeviceCgroup = {
  allow: boolean;
  /** `c`, `b` or `a`; absent means all. */
  type?: string;
  major?: number;
  minor?: number;
  /** Some of `r`, `w`, `m`. */
  access?: string;
};

export type SpecMemory = {
  limit?: number;
  reservation?: number;
  swap?: number;
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
};

export type SpecCpu = {
  shares?: number;
  quota?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
};

export type SpecResources = {
  devices?: SpecDeviceCgroup[];
  memory?: SpecMemory;
  cpu?: SpecCpu;
  pids?: { limit: number };
};

export type SeccompAction =
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_LOG';

export type SeccompOperator =
  | 'SCMP_CMP_NE'
  | 'SCMP_CMP_LT'
  | 'SCMP_CMP_LE'
  | 'SCMP_CMP_EQ'
  | 'SCMP_CMP_GE'
  | 'SCMP_CMP_GT'
  | 'SCMP_CMP_MASKED_EQ';

export type SpecSyscallArg = {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOperator;
};

export type SpecSyscall = {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: SpecSyscallArg[];
};

export type SpecSeccomp = {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  /** libseccomp names, e.g. `SCMP_ARCH_X86_64`. */
  architectures?: string[];
  flags?: string[];
  syscalls?: SpecSyscall[];
};

export type SpecLinux = {
  namespaces?: SpecNamespace[];
  uidMappings?: SpecIdMapping[];
  gidMappings?: SpecIdMapping[];
  devices?: SpecDevice[];
  cgroupsPath?: string;
  resources?: SpecResources;
  rootfsPropagation?: string;
  seccomp?: SpecSeccomp;
  sysctl?: Record<string, string>;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
};

/**
 * The `config` section of an OCI image config (or Docker schema2 config): what
 * an image says about how to run it. Names are the JSON's.
 */
export interface ImageRuntimeConfig {
  User?: string;
  ExposedPorts?: Record<string, unknown>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, unknown>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
}
