import { posix } from 'node:path';
import { InvalidArgumentError, type Mount } from '@berth/core';
import { currentCapabilities, DEFAULT_CAPABILITIES, normalizeCapability } from './capabilities';
import { DEFAULT_PATH_ENV, defaultSpec } from './defaults';
import { envKey, mergeEnv } from './env';
import { withReadonlyRootfs, type ReadonlyRootfsOptions } from './rootfs';
import { defaultSeccompProfile, seccompSupported } from './seccomp';
import { resolveUser } from './user';
import type { ImageRuntimeConfig, RuntimeSpec, SpecMount, SpecProcess, SpecRlimit, SpecUser } from './types';

/** Where user and group names are looked up: the image's root filesystem. */
export interface RootfsSource {
  /** A directory holding the rootfs (an unpacked or already mounted image). */
  rootfs?: string;
  /** Or the container's snapshot mounts, mounted read-only for the lookup only. */
  rootfsMounts?: readonly Mount[];
  /** Where that temporary mount point goes. */
  rootfsMountOptions?: ReadonlyRootfsOptions;
}

export interface GenerateSpecOptions extends RootfsSource {
  namespace: string;
  id: string;
  /** The image config's `config` section: Env, Entrypoint, Cmd, WorkingDir, User. */
  imageConfig?: ImageRuntimeConfig;
  /** The whole command line, replacing the image's Entrypoint and Cmd (as `ctr run IMAGE ID CMD...`). */
  args?: string[];
  /** `K=V` entries layered over the image's environment by name; a bare `K` unsets K. */
  env?: string[];
  /** Absolute working directory, overriding the image's. */
  cwd?: string;
  /** `name`, `uid`, `name:group`, `uid:gid`...; overrides the image's User. */
  user?: string;
  /** spec.root.path; `rootfs` (bundle-relative) by default. */
  rootPath?: string;
  hostname?: string;
  /** Added after the defaults; one at the same destination as an existing mount replaces it. */
  mounts?: SpecMount[];
  /** Allocate a terminal (and set TERM=xterm unless TERM is set). */
  terminal?: boolean;
  /** Share the host's network namespace, with its /etc/hosts and /etc/resolv.conf read-only. */
  hostNetwork?: boolean;
  readonlyRootfs?: boolean;
  /** Every capability we hold, no masked or read-only paths, writable /sys, all devices, no seccomp. */
  privileged?: boolean;
  /** Capability names (`NET_ADMIN` or `CAP_NET_ADMIN`), or `ALL`. */
  capAdd?: string[];
  /** Capability names, or `ALL`; applied before capAdd. */
  capDrop?: string[];
  /** Each replaces the limit of the same type (RLIMIT_NOFILE 1024 by default) or is added. */
  rlimits?: SpecRlimit[];
  annotations?: Record<string, string>;
  /** The default seccomp profile, when the kernel has seccomp; on unless false (or privileged). */
  seccomp?: boolean;
  /** Instead of `/<namespace>/<id>`. */
  cgroupsPath?: string;
  /** Memory limit in bytes. */
  memoryLimit?: number;
  /** CPU shares (relative weight, 2..262144). */
  cpuShares?: number;
}

/**
 * Builds a container's OCI runtime spec the way containerd's client does for
 * `ctr run`: the default spec and device rules, then the image config, args,
 * environment, working directory, user (looked up in the image's
 * /etc/passwd and /etc/group), terminal, host network, mounts, read-only
 * rootfs, privileges, capabilities, rlimits, resources, seccomp and
 * annotations. InvalidArgument names whatever option is wrong.
 */
export async function generateSpec(options: GenerateSpecOptions): Promise<RuntimeSpec> {
  const spec = defaultSpec(options.namespace, options.id);
  const proc = spec.process as SpecProcess;
  const linux = spec.linux ?? {};
  spec.linux = linux;
  const image = options.imageConfig;

  if (image) {
    proc.env = image.Env && image.Env.length > 0 ? [...image.Env] : [DEFAULT_PATH_ENV];
    proc.args = [...(image.Entrypoint ?? []), ...(image.Cmd ?? [])];
    proc.cwd = image.WorkingDir || '/';
  }
  if (options.args && options.args.length > 0) proc.args = [...options.args];
  if (proc.args && proc.args.length === 0) delete proc.args;
  if (options.env) proc.env = mergeEnv(proc.env ?? [], options.env);
  if (options.cwd !== undefined) proc.cwd = checkAbsolute(options.cwd, 'working directory');
  else checkAbsolute(proc.cwd, "image's working directory");

  if (options.hostname !== undefined) spec.hostname = options.hostname;
  if (options.terminal) {
    proc.terminal = true;
    if (!(proc.env ?? []).some((e) => envKey(e) === 'TERM')) proc.env = [...(proc.env ?? []), 'TERM=xterm'];
  }

  let mounts = spec.mounts ?? [];
  if (options.hostNetwork) {
    linux.namespaces = (linux.namespaces ?? []).filter((ns) => ns.type !== 'network');
    mounts = addMounts(mounts, [
      { destination: '/etc/hosts', type: 'bind', source: '/etc/hosts', options: ['rbind', 'ro'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: '/etc/resolv.conf', options: ['rbind', 'ro'] },
    ]);
  }
  if (options.mounts) mounts = addMounts(mounts, options.mounts.map(checkMount));
  spec.mounts = mounts;

  if (options.readonlyRootfs) spec.root = { ...(spec.root ?? { path: '' }), readonly: true };
  if (options.rootPath !== undefined) {
    if (options.rootPath === '') throw new InvalidArgumentError('root path must not be empty');
    spec.root = { ...(spec.root ?? {}), path: options.rootPath };
  }

  let capabilities = [...DEFAULT_CAPABILITIES];
  if (options.privileged) {
    capabilities = currentCapabilities();
    delete linux.maskedPaths;
    delete linux.readonlyPaths;
    for (const m of mounts) {
      if (m.type === 'sysfs' || m.type === 'cgroup') m.options = m.options?.map((o) => (o === 'ro' ? 'rw' : o));
    }
    linux.resources = { ...linux.resources, devices: [{ allow: true, access: 'rwm' }] };
  }
  capabilities = adjustCapabilities(capabilities, options.capAdd ?? [], options.capDrop ?? []);
  proc.capabilities = { bounding: capabilities, effective: [...capabilities], permitted: [...capabilities] };

  if (options.rlimits) proc.rlimits = setRlimits(proc.rlimits ?? [], options.rlimits);

  if (options.memoryLimit !== undefined) {
    linux.resources = { ...linux.resources, memory: { limit: positiveInteger(options.memoryLimit, 'memory limit') } };
  }
  if (options.cpuShares !== undefined) {
    linux.resources = { ...linux.resources, cpu: { shares: positiveInteger(options.cpuShares, 'cpu shares') } };
  }

  if (options.seccomp !== false && !options.privileged && seccompSupported()) {
    linux.seccomp = defaultSeccompProfile(capabilities);
  }
  if (options.cgroupsPath !== undefined) linux.cgroupsPath = options.cgroupsPath;
  if (options.annotations && Object.keys(options.annotations).length > 0) {
    spec.annotations = { ...spec.annotations, ...options.annotations };
  }

  // Last, so that a bad option fails before any rootfs gets mounted for the lookup.
  const user = options.user ?? image?.User;
  if (user !== undefined || image) proc.user = await lookupUser(user ?? '', options);
  return spec;
}

/** The container label in which containerd keeps an image's StopSignal (it is not part of the spec). */
export const STOP_SIGNAL_LABEL = 'io.containerd.image.config.stop-signal';

/** Labels to give a container made from an image: its stop signal, if the image names one. */
export function imageConfigLabels(config: ImageRuntimeConfig): Record<string, string> {
  return config.StopSignal ? { [STOP_SIGNAL_LABEL]: config.StopSignal } : {};
}

export interface ExecProcessOptions extends RootfsSource {
  args: string[];
  /** Layered over the container's environment, as for generateSpec. */
  env?: string[];
  cwd?: string;
  /** A user string (resolved like generateSpec's) or an already resolved user. */
  user?: string | SpecUser;
  terminal: boolean;
}

/**
 * The process for `tasks exec`: the container's own process (capabilities,
 * rlimits, environment, user...) with the command, terminal and any given
 * environment, working directory and user replaced, as `ctr tasks exec` does.
 */
export async function execProcessSpec(spec: RuntimeSpec, options: ExecProcessOptions): Promise<SpecProcess> {
  if (!spec.process) throw new InvalidArgumentError('the container spec has no process to base an exec on');
  if (options.args.length === 0) throw new InvalidArgumentError('an exec needs a command: args is empty');
  const proc = structuredClone(spec.process);
  proc.args = [...options.args];
  proc.terminal = options.terminal;
  if (options.env) proc.env = mergeEnv(proc.env ?? [], options.env);
  if (options.cwd !== undefined) proc.cwd = checkAbsolute(options.cwd, 'working directory');
  if (typeof options.user === 'string') {
    proc.user = await lookupUser(options.user, options);
  } else if (options.user) {
    proc.user = { ...options.user };
  }
  return proc;
}

/** Resolves `user` against whichever rootfs the options name. */
async function lookupUser(user: string, source: RootfsSource): Promise<SpecUser> {
  if (source.rootfs !== undefined && source.rootfsMounts !== undefined) {
    throw new InvalidArgumentError('give either a rootfs directory or rootfs mounts, not both');
  }
  if (source.rootfsMounts !== undefined && source.rootfsMounts.length > 0) {
    return withReadonlyRootfs(source.rootfsMounts, (dir) => resolveUser(dir, user), source.rootfsMountOptions);
  }
  return resolveUser(source.rootfs, user);
}

/** Appends `added`; each replaces any mount at the same destination (and a new /dev the ones below it). */
function addMounts(existing: SpecMount[], added: SpecMount[]): SpecMount[] {
  let mounts = existing;
  for (const mount of added) {
    const destination = cleanPath(mount.destination);
    mounts = mounts.filter((m) => {
      const at = cleanPath(m.destination);
      return at !== destination && !(destination === '/dev' && at.startsWith('/dev/'));
    });
    mounts.push(mount);
  }
  return mounts;
}

/** Like Go's filepath.Clean for absolute paths: no `.`, `..` or trailing slash. */
function cleanPath(path: string): string {
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

function checkMount(mount: SpecMount): SpecMount {
  if (!mount.destination || !posix.isAbsolute(mount.destination)) {
    throw new InvalidArgumentError(`mount destination ${JSON.stringify(mount.destination)} must be an absolute path`);
  }
  return { ...mount, ...(mount.options ? { options: [...mount.options] } : {}) };
}

/** `ALL` in capAdd starts from every capability we hold, `ALL` in capDrop from none. */
function adjustCapabilities(base: string[], capAdd: string[], capDrop: string[]): string[] {
  const add = capAdd.map(normalizeCapability);
  const drop = capDrop.map(normalizeCapability);
  let caps = add.includes('ALL') ? currentCapabilities() : base;
  if (drop.includes('ALL')) caps = [];
  caps = caps.filter((c) => !drop.includes(c));
  for (const cap of add) if (cap !== 'ALL' && !caps.includes(cap)) caps.push(cap);
  return caps;
}

function setRlimits(existing: SpecRlimit[], given: SpecRlimit[]): SpecRlimit[] {
  const result = existing.map((r) => ({ ...r }));
  for (const limit of given) {
    if (!/^RLIMIT_[A-Z]+$/.test(limit.type)) throw new InvalidArgumentError(`unknown rlimit type ${JSON.stringify(limit.type)}`);
    const soft = nonNegativeInteger(limit.soft, `${limit.type} soft limit`);
    const hard = nonNegativeInteger(limit.hard, `${limit.type} hard limit`);
    if (soft > hard) throw new InvalidArgumentError(`${limit.type}: soft limit ${soft} exceeds hard limit ${hard}`);
    const at = result.findIndex((r) => r.type === limit.type);
    const entry = { type: limit.type, hard, soft };
    if (at >= 0) result[at] = entry;
    else result.push(entry);
  }
  return result;
}

function checkAbsolute(path: string, what: string): string {
  if (!posix.isAbsolute(path)) throw new InvalidArgumentError(`${what} ${JSON.stringify(path)} must be an absolute path`);
  return path;
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidArgumentError(`${what} must be a positive integer, got ${value}`);
  return value;
}

function nonNegativeInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer, got ${value}`);
  return value;
}
