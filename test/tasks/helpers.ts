import { execFile, spawn, type ChildProcess } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { RunResult } from '../harness/process';
import { run } from '../harness/process';

/** A namespace (or id) no other test file or helper uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** stdout of a command that must succeed; otherwise fails with what it printed. */
export function ok(r: RunResult): string {
  if (r.code !== 0) throw new Error(`command failed (${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/** containerd's own ctr against `address` in `namespace`. */
export function ctrIn(address: string, namespace: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return run('ctr', ['-a', address, '-n', namespace, ...args], {
    env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
    timeoutMs,
  });
}

/** A host tool run with no stdin (run() writes stdin, which races tools that exit at once). */
export function host(command: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code === 'string') return reject(err);
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, signal: null, stdout, stderr });
    });
  });
}

/** The chain ID of every prefix of `diffIds` (OCI image spec). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const parent = out.at(-1);
    out.push(parent === undefined ? diffId : `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`);
  }
  return out;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface TaskRow {
  id: string;
  pid: number;
  status: string;
}

/** Rows of `ctr tasks ls`: TASK PID STATUS. */
export function parseTaskList(stdout: string): TaskRow[] {
  const [header, ...lines] = stdout.trimEnd().split('\n');
  if (!/^TASK\s+PID\s+STATUS\s*$/.test(header ?? '')) throw new Error(`unexpected tasks ls header: ${header}`);
  return lines
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [id, pid, status] = l.trim().split(/\s+/);
      return { id: id!, pid: Number(pid), status: status! };
    });
}

/** Command line of a live process, or undefined when it is gone (or a zombie). */
export function cmdlineOf(pid: number): string[] | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw ? raw.replace(/\0$/, '').split('\0') : undefined;
  } catch {
    return undefined;
  }
}

/** Pids of v2 shims started for `namespace` (their command line names it), with their `-id`. */
export function shimsOf(namespace: string): { pid: number; id: string }[] {
  const found: { pid: number; id: string }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const args = cmdlineOf(Number(entry));
    if (!args || !path.basename(args[0] ?? '').startsWith('containerd-shim')) continue;
    const ns = args[args.indexOf('-namespace') + 1];
    if (args.includes('-namespace') && ns === namespace) found.push({ pid: Number(entry), id: args[args.indexOf('-id') + 1] ?? '' });
  }
  return found;
}

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = path.resolve(dir);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((target): target is string => !!target && (target === prefix || target.startsWith(`${prefix}/`)))
    .sort((a, b) => b.length - a.length);
}

/** Every directory called `name` under `dir`, down to `depth` levels. */
export function dirsNamed(dir: string, name: string, depth = 5): string[] {
  const found: string[] = [];
  const walk = (at: string, level: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(at, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const full = path.join(at, e.name);
      if (e.name === name) found.push(full);
      if (level < depth) walk(full, level + 1);
    }
  };
  walk(dir, 1);
  return found;
}

/** Lines of `ctr events`: `<date> <time> <zone> <zone> <namespace> <topic> <json>`. */
export interface SeenEvent {
  namespace: string;
  topic: string;
  event: Record<string, unknown>;
}

/** `ctr events` running in the background, collecting what it prints. */
export class EventWatcher {
  private readonly child: ChildProcess;
  private text = '';

  constructor(address: string, filters: string[]) {
    this.child = spawn('ctr', ['-a', address, 'events', ...filters], {
      env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.text += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.text += d));
  }

  get events(): SeenEvent[] {
    return this.text
      .split('\n')
      .map((line) => /^\S+ \S+ \S+ \S+ (\S+) (\S+) (.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ namespace: m[1]!, topic: m[2]!, event: JSON.parse(m[3]!) as Record<string, unknown> }));
  }

  get output(): string {
    return this.text;
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
  }
}

/**
 * Removes whatever a test left in `namespace` of the daemon at `address`:
 * tasks (killed), containers, then shims of that namespace still alive and
 * mounts under `dir`. Only things this test file started carry its namespace.
 */
export async function cleanupNamespace(address: string, namespace: string, dir: string): Promise<void> {
  const ctr = (...args: string[]) => ctrIn(address, namespace, args, 20_000).catch(() => undefined);
  const tasks = await ctr('tasks', 'ls', '-q');
  for (const id of tasks?.code === 0 ? tasks.stdout.split('\n').filter(Boolean) : []) {
    await ctr('tasks', 'kill', '-a', '-s', 'SIGKILL', id);
    await ctr('tasks', 'rm', '-f', id);
  }
  const containers = await ctr('containers', 'ls', '-q');
  for (const id of containers?.code === 0 ? containers.stdout.split('\n').filter(Boolean) : []) {
    await ctr('containers', 'rm', id);
  }
  killShims(namespace);
  killCgroupProcesses(namespace);
  await new Promise((r) => setTimeout(r, 200));
  for (const target of mountsUnder(dir)) await host('umount', ['-l', target]);
  removeCgroups(namespace);
}

/** SIGKILLs the shims started for `namespace`; a unique namespace makes them this test's own. */
export function killShims(namespace: string): void {
  for (const { pid } of shimsOf(namespace)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** SIGKILLs processes left in the namespace's container cgroups (`/<namespace>/<id>`, as ctr asks runc). */
export function killCgroupProcesses(namespace: string): void {
  const dir = path.join('/sys/fs/cgroup', 'pids', namespace);
  let children: string[] = [];
  try {
    children = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const child of children) {
    let procs: string[] = [];
    try {
      procs = fs.readFileSync(path.join(dir, child, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    } catch {
      continue;
    }
    for (const pid of procs) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** The per-namespace cgroup directories runc leaves (as containerd does), when empty. */
export function removeCgroups(namespace: string): void {
  let controllers: string[] = [];
  try {
    controllers = fs.readdirSync('/sys/fs/cgroup');
  } catch {
    return;
  }
  for (const controller of [...controllers, '']) {
    const dir = path.join('/sys/fs/cgroup', controller, namespace);
    try {
      for (const child of fs.readdirSync(dir, { withFileTypes: true })) {
        if (child.isDirectory()) fs.rmdirSync(path.join(dir, child.name));
      }
      fs.rmdirSync(dir);
    } catch {
      // absent, or still in use
    }
  }
}
