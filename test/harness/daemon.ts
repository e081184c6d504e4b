import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { run, RunResult } from './process';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const berthdBin = path.join(repoRoot, 'cmd', 'berthd', 'lib', 'main.js');
export const berthBin = path.join(repoRoot, 'cmd', 'berth', 'lib', 'main.js');

/** A temp dir removed by `cleanup`; short, because unix socket paths are capped at 108 bytes. */
export function makeTempDir(prefix = 'berth-t-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface DaemonOptions {
  /** TOML text written to a config file passed with --config. */
  config?: string;
  /** Reuse dirs (restart tests). */
  dir?: string;
  extraArgs?: string[];
  /** Wait until the socket answers (default true). */
  waitReady?: boolean;
}

export class BerthdHandle {
  private exitPromise: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output = '';

  constructor(
    readonly dir: string,
    readonly root: string,
    readonly state: string,
    readonly address: string,
    readonly process: ChildProcess,
  ) {
    process.stdout!.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    process.stderr!.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    this.exitPromise = new Promise((resolve) => process.on('exit', (code, signal) => resolve({ code, signal })));
  }

  get exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exitPromise;
  }

  /** SIGTERM and wait for a clean exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 10_000);
    const result = await this.exitPromise;
    clearTimeout(timer);
    return result;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.process.kill(signal);
  }

  ctr(...args: string[]): Promise<RunResult> {
    return ctr(this.address, ...args);
  }

  berth(...args: string[]): Promise<RunResult> {
    return berth(this.address, ...args);
  }
}

function connectable(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Starts berthd on temp dirs and waits until its socket accepts connections. */
export async function startBerthd(options: DaemonOptions = {}): Promise<BerthdHandle> {
  const dir = options.dir ?? makeTempDir();
  const root = path.join(dir, 'root');
  const state = path.join(dir, 'state');
  const address = path.join(dir, 'berth.sock');
  const args = [berthdBin, '--root', root, '--state', state, '--address', address, '--log-level', 'debug'];
  if (options.config !== undefined) {
    const configPath = path.join(dir, 'config.toml');
    fs.writeFileSync(configPath, options.config);
    args.push('--config', configPath);
  }
  args.push(...(options.extraArgs ?? []));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const handle = new BerthdHandle(dir, root, state, address, child);
  if (options.waitReady === false) return handle;
  const deadline = Date.now() + 20_000;
  let exited = false;
  void handle.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`berthd exited before it was ready:\n${handle.output}`);
    if (fs.existsSync(address) && (await connectable(address))) return handle;
    await new Promise((r) => setTimeout(r, 25));
  }
  handle.kill();
  throw new Error(`berthd did not become ready in 20s:\n${handle.output}`);
}

/** containerd's own ctr (Debian's containerd package) against `address`. */
export function ctr(address: string, ...args: string[]): Promise<RunResult> {
  return run('ctr', ['-a', address, ...args], {
    env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
  });
}

/** berth's CLI against `address`. */
export function berth(address: string, ...args: string[]): Promise<RunResult> {
  return run(process.execPath, [berthBin, '-a', address, ...args]);
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
