import { type ChildProcess, spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import type { SnapshotInfo } from '@berth/core';
import { ProxySnapshotter } from '@berth/snapshotter-proxy';
import { unmountAll } from '@berth/sys';
import { berthBin } from '../harness/daemon';

/** A process the test started, with its output, stopped by SIGTERM. */
export class Spawned {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves with how it ended. */
  async stop(graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

export function connectable(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Waits until `sock` accepts connections; throws with the process's output if it exits or times out first. */
export async function waitForSocket(proc: Spawned, sock: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!proc.running) throw new Error(`${proc.name} exited before ${sock} was ready:\n${proc.output}`);
    if (fs.existsSync(sock) && (await connectable(sock))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  await proc.stop(1000);
  throw new Error(`${proc.name} did not listen on ${sock} within ${timeoutMs} ms:\n${proc.output}`);
}

/** `berth snapshotter serve <type> --root <root> --address <sock>` from the built CLI, ready to answer. */
export async function startSnapshotterServer(type: 'overlayfs' | 'native', root: string, sock: string): Promise<Spawned> {
  const child = spawn(
    process.execPath,
    [berthBin, 'snapshotter', 'serve', type, '--root', root, '--address', sock, '--log-level', 'debug'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const proc = new Spawned(`berth snapshotter serve ${type}`, child);
  await waitForSocket(proc, sock);
  return proc;
}

/** What the snapshotter behind `sock` holds, asked directly (raw keys, as the backend stores them). */
export async function rawSnapshots(sock: string): Promise<SnapshotInfo[]> {
  const sn = await ProxySnapshotter.connect(sock, 'test', { timeoutMs: 5000 });
  try {
    const out: SnapshotInfo[] = [];
    for await (const info of sn.walk()) out.push(info);
    return out.sort((a, b) => a.name.localeCompare(b.name));
  } finally {
    await sn.close();
  }
}

/** Mount points under `dir`, deepest first, from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  const points: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = line.split(' ')[4];
    if (!point) continue;
    const decoded = point.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (decoded === dir || decoded.startsWith(`${dir}/`)) points.push(decoded);
  }
  return points.reverse();
}

/** Detaches every mount left under `dir`; returns what was there. */
export async function unmountLeftovers(dir: string): Promise<string[]> {
  const leftover = mountsUnder(dir);
  for (const point of leftover) await unmountAll(point, { detach: true }).catch(() => undefined);
  return leftover;
}

/** Pids of live processes whose command line names `needle` (e.g. a leftover shim naming our temp dir). */
export function processesNaming(needle: string, command?: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (cmdline.includes(needle) && (command === undefined || cmdline.includes(command))) pids.push(Number(entry));
  }
  return pids;
}

/** Where containerd 1.6 puts the socket of the shim for container `id`: /run/containerd/s/sha256(<address>/<ns>/<id>). */
export const SHIM_SOCKET_DIR = '/run/containerd/s';
export function shimSocketPath(containerdAddress: string, namespace: string, id: string): string {
  const hash = createHash('sha256').update(path.join(containerdAddress, namespace, id)).digest('hex');
  return path.join(SHIM_SOCKET_DIR, hash);
}

export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
