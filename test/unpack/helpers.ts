import { type ChildProcess, spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { llistxattr, lgetxattr } from '@berth/sys';
import { ctr } from '../harness/daemon';
import type { RunResult } from '../harness/process';

/** stdout of a command that must succeed; otherwise fails with what it printed. */
export function ok(r: RunResult): string {
  if (r.code !== 0) throw new Error(`command failed (${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/** The chain ID of every prefix of `diffIDs`, straight from the OCI image spec. */
export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const diffID of diffIDs) {
    const parent = out[out.length - 1];
    out.push(parent === undefined ? diffID : `sha256:${createHash('sha256').update(`${parent} ${diffID}`).digest('hex')}`);
  }
  return out;
}

/** Rows of a `snapshots ls` table: KEY PARENT KIND, cut at the header's columns (keys may hold spaces). */
export function snapshotRows(table: string): { key: string; parent: string; kind: string }[] {
  const [header, ...rows] = table.split('\n');
  const parentAt = header.indexOf('PARENT');
  const kindAt = header.indexOf('KIND');
  return rows
    .filter((l) => l.trim() !== '')
    .map((l) => ({ key: l.slice(0, parentAt).trim(), parent: l.slice(parentAt, kindAt).trim(), kind: l.slice(kindAt).trim() }))
    .sort((a, b) => a.key.localeCompare(b.key));
}

export async function waitFor<T>(what: string | (() => string), probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function isMountPoint(dir: string): boolean {
  const target = path.resolve(dir);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === target);
}

/**
 * What a tree holds, in a form two unpackers can be compared by: for every
 * path its type, mode, owner, mtime, content digest or symlink target or
 * device numbers, xattrs (overlayfs's own excepted), and which paths share
 * an inode (hard links).
 */
export function treeFacts(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const firstPathOfInode = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const full = path.join(root, childRel);
      const st = fs.lstatSync(full, { bigint: true });
      const facts = [`mode=${(Number(st.mode) & 0o7777).toString(8)}`, `owner=${st.uid}:${st.gid}`];
      let kind: string;
      if (st.isDirectory()) kind = 'dir';
      else if (st.isSymbolicLink()) kind = `symlink->${fs.readlinkSync(full)}`;
      else if (st.isFile()) kind = `file sha=${createHash('sha256').update(fs.readFileSync(full)).digest('hex').slice(0, 16)} size=${st.size}`;
      else if (st.isCharacterDevice() || st.isBlockDevice()) kind = `${st.isCharacterDevice() ? 'char' : 'block'} ${st.rdev}`;
      else if (st.isFIFO()) kind = 'fifo';
      else kind = 'other';
      if (!st.isSymbolicLink()) facts.push(`mtime=${st.mtimeMs / 1000n}`);
      if (!st.isDirectory() && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = firstPathOfInode.get(key);
        if (first) facts.push(`link=${first}`);
        else firstPathOfInode.set(key, childRel);
      }
      for (const attr of llistxattr(full).sort()) {
        if (attr.startsWith('trusted.overlay.') || attr.startsWith('user.overlay.')) continue;
        facts.push(`xattr ${attr}=${lgetxattr(full, attr)?.toString('base64')}`);
      }
      out[childRel] = `${kind} ${facts.join(' ')}`;
      if (st.isDirectory()) walk(childRel);
    }
  };
  walk('');
  return out;
}

/** containerd 1.6 on temp dirs and sockets (CRI off), as bench/foundation.js starts it. */
export interface ContainerdHandle {
  dir: string;
  address: string;
  ctr(...args: string[]): Promise<RunResult>;
  stop(): Promise<void>;
}

export async function startContainerd(): Promise<ContainerdHandle> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctrd-'));
  const address = path.join(dir, 'c.sock');
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(
    config,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '  level = "warn"',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      '',
    ].join('\n'),
  );
  let output = '';
  const child: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`containerd exited:\n${output}`);
    if (fs.existsSync(address) && (await ctr(address, 'version')).code === 0) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`containerd did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { dir, address, ctr: (...args) => ctr(address, ...args), stop };
}
