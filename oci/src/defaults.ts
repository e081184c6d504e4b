import { posix } from 'node:path';
import { InvalidArgumentError } from '@berth/core';
import { DEFAULT_CAPABILITIES } from './capabilities';
import type { RuntimeSpec, SpecDeviceCgroup, SpecMount } from './types';

/** The runtime-spec version containerd 1.6 writes (and runc 1.1 reports). */
export const OCI_VERSION = '1.0.2-dev';

/** The environment a container gets when its image sets none. */
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Bundle-relative rootfs directory, where the shim mounts the snapshot. */
export const DEFAULT_ROOTFS_PATH = 'rootfs';

/** containerd's default Linux mounts, in order. */
export function defaultMounts(): SpecMount[] {
  const devTmpfs = ['nosuid', 'strictatime', 'mode=755', 'size=65536k'];
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: [...devTmpfs] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: [...devTmpfs] },
  ];
}

/** Paths containerd hides from a container (bind-mounted over with nothing). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
];

/** Paths containerd makes read-only inside a container. */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

/**
 * The device cgroup: deny everything, then allow the character devices every
 * container needs (containerd's WithDefaultUnixDevices, which `ctr run` applies).
 */
export function defaultDeviceRules(): SpecDeviceCgroup[] {
  const allowChar = (major: number, minor?: number): SpecDeviceCgroup =>
    minor === undefined
      ? { allow: true, type: 'c', major, access: 'rwm' }
      : { allow: true, type: 'c', major, minor, access: 'rwm' };
  return [
    { allow: false, access: 'rwm' },
    allowChar(1, 3), // /dev/null
    allowChar(1, 8), // /dev/random
    allowChar(1, 7), // /dev/full
    allowChar(5, 0), // /dev/tty
    allowChar(1, 5), // /dev/zero
    allowChar(1, 9), // /dev/urandom
    allowChar(5, 1), // /dev/console
    allowChar(136), // /dev/pts/*
    allowChar(5, 2), // /dev/ptmx
  ];
}

/** containerd's client puts each container in cgroup `/<namespace>/<id>`. */
export function defaultCgroupsPath(namespace: string, id: string): string {
  return posix.join('/', namespace, id);
}

/**
 * containerd's default Linux spec for container `id` in `namespace`: root
 * with the default capabilities, the default mounts and namespaces (network
 * included), masked and read-only /proc paths and the default device rules.
 * No args: an image config or the caller supplies them.
 */
export function defaultSpec(namespace: string, id: string): RuntimeSpec {
  if (!namespace) throw new InvalidArgumentError('a namespace is required to generate a spec');
  if (!id) throw new InvalidArgumentError('a container id is required to generate a spec');
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      env: [DEFAULT_PATH_ENV],
      cwd: '/',
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: DEFAULT_ROOTFS_PATH },
    mounts: defaultMounts(),
    linux: {
      resources: { devices: defaultDeviceRules() },
      cgroupsPath: defaultCgroupsPath(namespace, id),
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
}
