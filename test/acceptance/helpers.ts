import { spawn, spawnSync, type ChildProcess } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { type Berth, connect } from '@berth/core';
import { deleteTask, removeContainer } from '@berth/builtins';
import { mountPoints, umount } from '@berth/sys';
import { berthBin, type BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import { type FixtureImages, fixtureImages } from '../harness/images';
import type { RunResult } from '../harness/process';
import { type RegistryHandle, startRegistry } from '../harness/registry';

/** The runtime plugin's id: its state dir is `<berthd state>/<this>`, bundles `<that>/<namespace>/<id>`. */
export const RUNTIME_PLUGIN_URI = 'io.berth.runtime.v2.task';

/** Where berth's CLI puts FIFO dirs by default when it runs as root. */
export const DEFAULT_FIFO_ROOT = '/run/berth/fifo';

/** Where containerd-shim-runc-v2 keeps runc's state unless its options say otherwise. */
const RUNC_ROOT = '/run/containerd/runc';

/** A name no other test file or helper uses at the same time. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

/** stdout of a command that had to succeed; otherwise an error with everything it printed. */
export function ok(result: RunResult, what = 'command'): string {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}, signal ${result.signal}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result.stdout;
}

export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ---- processes -------------------------------------------------------------

/** Command line of `pid`, or undefined when it is gone or a zombie (zombies hold no cmdline). */
export function cmdlineOf(pid: number): string[] | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw ? raw.replace(/\0$/, '').split('\0') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is a live process. A zombie counts as gone: pid 1 on this
 * machine does not reap what is reparented to it.
 */
export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function liveProcesses(): { pid: number; args: string[] }[] {
  const found: { pid: number; args: string[] }[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const args = cmdlineOf(pid);
    if (args && isAlive(pid)) found.push({ pid, args });
  }
  return found;
}

function flag(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

/** Live containerd-shim-runc-v2 processes (daemons or start/delete runs) for `namespace`, optionally one task id. */
export function shimPids(namespace: string, id?: string): number[] {
  return liveProcesses()
    .filter(
      (p) =>
        path.basename(p.args[0] ?? '') === 'containerd-shim-runc-v2' &&
        flag(p.args, '-namespace') === namespace &&
        (id === undefined || flag(p.args, '-id') === id),
    )
    .map((p) => p.pid);
}

/** Pids of the live processes in the cgroup `/<namespace>/<id>` (the cgroup path berth's specs use). */
export function cgroupPids(namespace: string, id: string): number[] {
  const file = path.join('/sys/fs/cgroup/pids', namespace, id, 'cgroup.procs');
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter(isAlive);
  } catch {
    return [];
  }
}

// ---- files and mounts --------------------------------------------------------

/** Mount points at or under `dir`, from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  return mountPoints().filter((p) => p === dir || p.startsWith(dir + path.sep));
}

/** FIFOs of processes named `ids` (`<id>-stdin|stdout|stderr`) in FIFO dirs under `root`. */
export function fifosOf(root: string, ids: string[]): string[] {
  const found: string[] = [];
  const list = (dir: string) => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  };
  for (const dir of list(root)) {
    for (const name of list(path.join(root, dir))) {
      if (ids.some((id) => name === `${id}-stdin` || name === `${id}-stdout` || name === `${id}-stderr`)) found.push(path.join(root, dir, name));
    }
  }
  return found;
}

/** Entries of a directory, [] when it does not exist. */
export function entries(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

export function runtimeStateDir(daemon: BerthdHandle, namespace: string, id?: string): string {
  return path.join(daemon.state, RUNTIME_PLUGIN_URI, namespace, ...(id === undefined ? [] : [id]));
}

export function runtimeRootDir(daemon: BerthdHandle, namespace: string, id?: string): string {
  return path.join(daemon.root, RUNTIME_PLUGIN_URI, namespace, ...(id === undefined ? [] : [id]));
}

/** The chain ID of every prefix of `diffIds` (OCI image spec): an unpacked image's committed snapshots. */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const parent = out.at(-1);
    out.push(parent === undefined ? diffId : `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`);
  }
  return out;
}

// ---- CLI output ----------------------------------------------------------------

export interface TaskRow {
  id: string;
  pid: number;
  status: string;
}

/** Rows of `berth tasks ls` / `ctr tasks ls`: TASK PID STATUS. */
export function parseTaskTable(stdout: string): TaskRow[] {
  const [header, ...lines] = stdout.trimEnd().split('\n');
  if (!/^TASK\s+PID\s+STATUS\s*$/.test(header ?? '')) throw new Error(`unexpected tasks ls header: ${JSON.stringify(header)}`);
  return lines
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id, pid, status] = line.trim().split(/\s+/);
      return { id: id!, pid: Number(pid), status: status! };
    });
}

/** One entry of `berth --format json tasks ls`. */
export interface TaskJson {
  id: string;
  pid: number;
  status: string;
  exitStatus: number;
}

/** Rows of `berth snapshots ls`: KEY PARENT KIND. */
export function parseSnapshotTable(stdout: string): { key: string; parent: string; kind: string }[] {
  const [header, ...lines] = stdout.trimEnd().split('\n');
  if (!/^KEY\s+PARENT\s+KIND\s*$/.test(header ?? '')) throw new Error(`unexpected snapshots ls header: ${JSON.stringify(header)}`);
  const parentAt = header!.indexOf('PARENT');
  const kindAt = header!.indexOf('KIND');
  return lines.map((line) => ({
    key: line.slice(0, parentAt).trim(),
    parent: line.slice(parentAt, kindAt).trim(),
    kind: line.slice(kindAt).trim(),
  }));
}

// ---- events ----------------------------------------------------------------------

const PROBE_TOPIC = '/acceptance/probe';

export interface PrintedEvent {
  timestamp: string;
  namespace: string;
  topic: string;
  type: string;
  event: Record<string, unknown>;
}

/**
 * A `berth --format json events` process watching `topics` in `namespace`.
 * `start` returns once it is known to be live: probe events are published
 * (through `client`) until the CLI prints one, so nothing after is missed.
 */
export class EventsWatcher {
  readonly events: PrintedEvent[] = [];
  private output = '';
  private stderr = '';
  private child?: ChildProcess;

  private constructor(
    private readonly address: string,
    private readonly namespace: string,
    private readonly topics: string[],
  ) {}

  static async start(address: string, namespace: string, topics: string[], client: Berth): Promise<EventsWatcher> {
    const watcher = new EventsWatcher(address, namespace, topics);
    watcher.spawn();
    let probes = 0;
    await eventually(
      `berth events to print a probe (stderr: ${watcher.stderr})`,
      async () => {
        if (watcher.events.some((e) => e.topic === PROBE_TOPIC)) return true;
        if (probes++ % 5 === 0) await client.events.publish(PROBE_TOPIC, { typeUrl: 'berth.acceptance.Probe', value: Buffer.alloc(0) });
        return undefined;
      },
      20_000,
    );
    return watcher;
  }

  private spawn(): void {
    const filters = [...this.topics, PROBE_TOPIC].map((topic) => `topic==${JSON.stringify(topic)}`);
    const child = spawn(process.execPath, [berthBin, '-a', this.address, '-n', this.namespace, '--format', 'json', 'events', ...filters], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.output += chunk;
      let newline: number;
      while ((newline = this.output.indexOf('\n')) >= 0) {
        const line = this.output.slice(0, newline);
        this.output = this.output.slice(newline + 1);
        if (line.trim()) this.events.push(JSON.parse(line) as PrintedEvent);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.child = child;
  }

  /** Events on `topic` (probes left out). */
  on(topic: string): PrintedEvent[] {
    return this.events.filter((e) => e.topic === topic);
  }

  waitFor(what: string, predicate: (e: PrintedEvent) => boolean, timeoutMs = 15_000): Promise<PrintedEvent> {
    return eventually(`${what} (saw ${JSON.stringify(this.events.filter((e) => e.topic !== PROBE_TOPIC))}; stderr ${this.stderr})`, () =>
      this.events.find(predicate),
    timeoutMs);
  }

  stop(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * Events less repeats of one envelope. A shim whose Forward is not answered
 * within 5 s (a daemon starved of CPU) sends the same envelope again, as
 * containerd's shims do: delivery is at least once. A repeat carries the
 * shim's original timestamp and payload; a second event (another exit) does not.
 */
export function distinctEvents(events: PrintedEvent[]): PrintedEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => {
    const key = JSON.stringify([e.namespace, e.topic, e.timestamp, e.event]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// ---- one daemon with the fixture image, and its cleanup ------------------------------

/** A registry with the fixture images, a berthd, and busybox pulled into each of `namespaces`. */
export interface AcceptanceSetup {
  fixtures: FixtureImages;
  registry: RegistryHandle;
  daemon: BerthdHandle;
  /** The busybox image's reference on the registry. */
  image: string;
  /** A FIFO root private to this file (for runs that pass --fifo-dir). */
  fifoRoot: string;
}

/** berthd without scheduled collections: what the tests see in snapshots ls is what they did. */
export const ACCEPTANCE_CONFIG = 'version = 2\n[plugins."io.berth.gc.v1.scheduler"]\ninterval_ms = 0\nschedule_delay_ms = 600000\n';

export async function startSetup(namespaces: string[]): Promise<AcceptanceSetup> {
  const [fixtures, registry] = await Promise.all([fixtureImages(), startRegistry()]);
  const daemon = await startBerthd({ config: ACCEPTANCE_CONFIG });
  const image = registry.ref('busybox:latest');
  const fifoRoot = path.join(daemon.dir, 'fifo');
  fs.mkdirSync(fifoRoot, { mode: 0o700 });
  for (const namespace of namespaces) {
    ok(await daemon.berth('-n', namespace, 'images', 'pull', '--plain-http', image), `pull into ${namespace}`);
  }
  return { fixtures, registry, daemon, image, fifoRoot };
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([work.catch(() => undefined), new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
  return result;
}

/** Kills and deletes every task and container in `namespaces` through the running daemon. */
async function removeThroughDaemon(address: string, namespaces: string[]): Promise<void> {
  for (const namespace of namespaces) {
    const client = await withTimeout(connect(address, { namespace }), 5_000);
    if (!client) continue;
    try {
      const tasks = (await withTimeout(client.tasks.list(), 5_000)) ?? [];
      await Promise.all(tasks.map((t) => withTimeout(deleteTask(client, t.id, { force: true }), 15_000)));
      const containers = (await withTimeout(client.containers.list(), 5_000)) ?? [];
      await Promise.all(containers.map((c) => withTimeout(removeContainer(client, c.id, { force: true }), 15_000)));
    } finally {
      await withTimeout(client.close(), 5_000);
    }
  }
}

/**
 * Tears everything down, whatever state a failed test left: tasks and
 * containers through the daemon while it answers, then the daemon; then, by
 * force, this file's shims, runc state, mounts, cgroups and FIFOs, and the
 * temp dirs. Everything touched is this file's: its namespaces are unique.
 */
export async function teardown(setup: Partial<AcceptanceSetup> & { daemon?: BerthdHandle }, namespaces: string[], fifoIds: string[] = []): Promise<void> {
  const { daemon, registry } = setup;
  if (daemon) {
    const running = daemon.process.exitCode === null && daemon.process.signalCode === null;
    if (running) await removeThroughDaemon(daemon.address, namespaces).catch(() => undefined);
    await daemon.stop();
  }
  for (const namespace of namespaces) {
    for (const pid of shimPids(namespace)) {
      // A killed shim leaves its socket file behind; find it first.
      const sockets = shimSocketPaths(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
      for (const socket of sockets) fs.rmSync(socket, { force: true });
    }
    const runcRoot = path.join(RUNC_ROOT, namespace);
    for (const id of entries(runcRoot)) spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore' });
    fs.rmSync(runcRoot, { recursive: true, force: true });
    removeCgroups(namespace);
  }
  if (daemon) {
    for (const point of mountsUnder(daemon.dir).sort((a, b) => b.length - a.length)) {
      try {
        umount(point, { detach: true });
      } catch {
        // already gone
      }
    }
    if (mountsUnder(daemon.dir).length === 0) removeDir(daemon.dir);
  }
  for (const fifo of fifosOf(DEFAULT_FIFO_ROOT, fifoIds)) fs.rmSync(path.dirname(fifo), { recursive: true, force: true });
  await registry?.stop();
}

/** Where containerd-shim-runc-v2 makes its sockets. */
const SHIM_SOCKET_DIR = '/run/containerd/s';

/** The socket containerd-shim-runc-v2 makes for task `id` of a daemon at `address`: sha256 of `<address>/<ns>/<id>`. */
export function shimSocketPath(address: string, namespace: string, id: string): string {
  return path.join(SHIM_SOCKET_DIR, createHash('sha256').update(path.join(address, namespace, id)).digest('hex'));
}

/** The socket files a shim process serves on. */
export function shimSocketPaths(pid: number): string[] {
  return [...new Set(listeningSocketPaths(pid).filter((p) => p.startsWith(SHIM_SOCKET_DIR + path.sep)))];
}

/** Paths of the unix sockets that process `pid` holds (from its fds and /proc/net/unix). */
function listeningSocketPaths(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of entries(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const paths: string[] = [];
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length >= 8 && inodes.has(fields[6]!)) paths.push(fields[7]!);
  }
  return paths;
}

/** rmdir of `/<namespace>` cgroups (and below) in every v1 hierarchy, or the v2 one; busy ones stay. */
function removeCgroups(namespace: string): void {
  const removeTree = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeTree(path.join(dir, entry.name));
    try {
      fs.rmdirSync(dir);
    } catch {
      // busy or gone
    }
  };
  const root = '/sys/fs/cgroup';
  const hierarchies = fs.existsSync(path.join(root, 'cgroup.controllers')) ? [root] : entries(root).map((name) => path.join(root, name));
  for (const hierarchy of hierarchies) {
    const dir = path.join(hierarchy, namespace);
    if (fs.existsSync(dir)) removeTree(dir);
  }
}
