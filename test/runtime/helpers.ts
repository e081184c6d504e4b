import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import {
  EventEnvelope,
  EventExchange,
  Exchange,
  loadPlugins,
  PluginRegistration,
  PluginSet,
  PluginType,
  RuntimeTask,
  TaskRuntime,
} from '@berth/core';
import { runtimeV2Plugin } from '@berth/runtime-v2';
import { mkfifo, mountPoints, umount } from '@berth/sys';

export const RUNTIME_URI = 'io.berth.runtime.v2.task';
const BUSYBOX_APPLETS = ['sh', 'echo', 'sleep', 'cat', 'true', 'false', 'id', 'ls', 'kill', 'ps', 'stty', 'hostname'];

/** A temp dir for one test file: root/, state/, a busybox rootfs and FIFOs. */
export interface RuntimeTestDirs {
  dir: string;
  root: string;
  state: string;
  rootfs: string;
}

export function makeTestDirs(prefix: string): RuntimeTestDirs {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const rootfs = path.join(dir, 'rootfs');
  makeBusyboxRootfs(rootfs);
  return { dir, root: path.join(dir, 'root'), state: path.join(dir, 'state'), rootfs };
}

/** A rootfs without images: the host's static busybox and applet symlinks. */
export function makeBusyboxRootfs(dir: string): void {
  for (const sub of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  for (const applet of BUSYBOX_APPLETS) fs.symlinkSync('busybox', path.join(dir, 'bin', applet));
}

export function rootfsMount(rootfs: string) {
  return { type: 'bind', source: rootfs, options: ['rbind', 'rw'] };
}

const ENV = ['PATH=/bin'];

/** A minimal OCI spec for runc: busybox `args`, own pid/mount/ipc/uts/net namespaces. */
export function minimalSpec(namespace: string, id: string, args: string[]): Record<string, unknown> {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ENV,
      cwd: '/',
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: id,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      cgroupsPath: `/${namespace}/${id}`,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
      maskedPaths: ['/proc/kcore', '/proc/keys', '/sys/firmware'],
      readonlyPaths: ['/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** An OCI Process for an exec. */
export function execProcess(args: string[]): Record<string, unknown> {
  return { terminal: false, user: { uid: 0, gid: 0 }, args, env: ENV, cwd: '/' };
}

/** An exchange plugin that records every envelope from the moment it exists (recovery publishes during init). */
export function recordingExchangePlugin(): { plugin: PluginRegistration; events: EventEnvelope[] } {
  const events: EventEnvelope[] = [];
  const plugin: PluginRegistration<unknown, EventExchange> = {
    type: PluginType.Event,
    id: 'exchange',
    init(ctx) {
      const exchange = new Exchange();
      void (async () => {
        for await (const envelope of exchange.subscribe([])) events.push(envelope);
      })();
      ctx.container.bind<EventExchange>(EventExchange).toConstantValue(exchange);
      return exchange;
    },
  };
  return { plugin: plugin as PluginRegistration, events };
}

export interface LoadedRuntime {
  plugins: PluginSet;
  runtime: TaskRuntime;
  exchange: EventExchange;
  events: EventEnvelope[];
  close(): Promise<void>;
}

/** The runtime plugin loaded through core's loader on `dirs`, with a recording exchange. */
export async function loadRuntime(dirs: RuntimeTestDirs, pluginConfig: Record<string, unknown> = {}): Promise<LoadedRuntime> {
  const { plugin, events } = recordingExchangePlugin();
  const plugins = await loadPlugins({
    registrations: [plugin, runtimeV2Plugin],
    root: dirs.root,
    state: dirs.state,
    pluginConfigs: { [RUNTIME_URI]: pluginConfig },
    requiredPlugins: [RUNTIME_URI],
  });
  return {
    plugins,
    runtime: plugins.container.get<TaskRuntime>(TaskRuntime),
    exchange: plugins.getSingle<EventExchange>(PluginType.Event),
    events,
    close: () => plugins.closeAll(),
  };
}

/** Waits until `predicate` holds, polling; fails with `what` after `timeoutMs`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A FIFO and its whole content, read until the writer (the shim) closes it. */
export function fifoReader(file: string): { path: string; text: Promise<string> } {
  mkfifo(file, 0o600);
  // Non-blocking read end: opening never waits, and EOF comes only after a writer has come and gone.
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const socket = new net.Socket({ fd, readable: true, writable: false });
  const text = new Promise<string>((resolve, reject) => {
    let out = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (out += chunk));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
  });
  return { path: file, text };
}

/** A FIFO the test writes a process's stdin into (opened read-write, so opening never blocks). */
export function fifoWriter(file: string): { path: string; write(text: string): void; close(): void } {
  mkfifo(file, 0o600);
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  return {
    path: file,
    write: (text) => void fs.writeSync(fd, text),
    close: () => fs.closeSync(fd),
  };
}

interface ProcEntry {
  pid: number;
  args: string[];
}

function processes(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const args = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean);
      out.push({ pid: Number(name), args });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function flagValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Pids of running shim daemons for tasks in `namespace` (optionally of one task id). */
export function shimPids(namespace: string, id?: string): number[] {
  return processes()
    .filter(
      (p) =>
        path.basename(p.args[0] ?? '').startsWith('containerd-shim') &&
        flagValue(p.args, '-namespace') === namespace &&
        (id === undefined || flagValue(p.args, '-id') === id) &&
        !p.args.includes('start') &&
        !p.args.includes('delete'),
    )
    .map((p) => p.pid);
}

/** Whether `pid` is a live (not zombie) process. */
export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Mount points at or under `dir`. */
export function mountsUnder(dir: string): string[] {
  return mountPoints().filter((p) => p === dir || p.startsWith(dir + path.sep));
}

export function bundlePath(dirs: RuntimeTestDirs, namespace: string, id: string): string {
  return path.join(dirs.state, RUNTIME_URI, namespace, id);
}

/** Kills and deletes a task whatever its state; for test cleanup. */
export async function removeTask(task: RuntimeTask): Promise<void> {
  try {
    const state = await task.state();
    if (state.status !== 'stopped') {
      if (state.status === 'paused') await task.resume().catch(() => undefined);
      await task.kill(9, true).catch(() => undefined);
      await task.wait();
    }
  } catch {
    // fall through to delete
  }
  await task.delete();
}

/**
 * Last-resort cleanup for a test file: SIGKILL our namespace's shims, remove
 * its runc containers, unmount what is left in the temp dir, remove it.
 * Everything here is ours: the namespace is unique to the test file.
 */
export function forceCleanup(namespace: string, dir: string): void {
  for (const pid of shimPids(namespace)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  const runcRoot = `/run/containerd/runc/${namespace}`;
  if (fs.existsSync(runcRoot)) {
    for (const id of fs.readdirSync(runcRoot)) {
      spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore' });
    }
    fs.rmSync(runcRoot, { recursive: true, force: true });
  }
  for (const point of mountsUnder(dir).sort((a, b) => b.length - a.length)) {
    try {
      umount(point, { detach: true });
    } catch {
      // already gone
    }
  }
  removeNamespaceCgroups(namespace);
  if (mountsUnder(dir).length === 0) fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * runc removes a task's cgroup (`/<namespace>/<id>`, as minimalSpec asks) but
 * not the namespace's parent; remove ours from every hierarchy (rmdir only,
 * which fails harmlessly while a cgroup still has processes).
 */
function removeNamespaceCgroups(namespace: string): void {
  const removeTree = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) removeTree(path.join(dir, entry.name));
    }
    try {
      fs.rmdirSync(dir);
    } catch {
      // busy or gone
    }
  };
  const cgroupRoot = '/sys/fs/cgroup';
  const hierarchies = fs.existsSync(path.join(cgroupRoot, 'cgroup.controllers'))
    ? [cgroupRoot]
    : fs.readdirSync(cgroupRoot).map((name) => path.join(cgroupRoot, name));
  for (const hierarchy of hierarchies) {
    const dir = path.join(hierarchy, namespace);
    if (fs.existsSync(dir)) removeTree(dir);
  }
}
