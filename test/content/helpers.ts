import { type ChildProcess, execFileSync, spawn } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { berthBin, type BerthdHandle } from '../harness/daemon';
import { type FixtureDescriptor, OCI } from '../harness/images';
import type { RunResult } from '../harness/process';

/** Shared by the test/content suites: raw-byte CLI runs and output parsing. */

export function sha256Hex(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface BinaryRunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** berth's CLI with stdout kept as bytes (`content get`), and optional stdin bytes (`content ingest`). */
export function berthRaw(address: string, args: string[], input?: Buffer): Promise<BinaryRunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [berthBin, '-a', address, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    // A CLI that fails before reading all of its input closes the pipe: that is its answer, not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** stdout of a command that must succeed; otherwise fails with what it printed. */
export function ok(r: RunResult): string {
  if (r.code !== 0) throw new Error(`command failed (${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/** Parsed `--format json` output of a command that must succeed. */
export function json<T = Record<string, unknown>[]>(r: RunResult): T {
  return JSON.parse(ok(r)) as T;
}

/** Non-empty lines of stdout (e.g. `-q` listings), sorted. */
export function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .sort();
}

/** The single error line of a failed CLI run: exit code 1 and one `berth: ...` line on stderr. */
export function errorLine(r: RunResult): string {
  const errLines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  if (r.code !== 1 || errLines.length !== 1 || !errLines[0].startsWith('berth: ')) {
    throw new Error(`expected exit 1 with one "berth: " line, got ${r.code}:\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return errLines[0];
}

/**
 * Rows of ctr's and berth's tables (header dropped), split on runs of
 * whitespace. Columns that hold spaces (ctr's AGE) sit between the first and
 * the last columns, so callers read `row[0]` and `row.at(-1)`.
 */
export function tableRows(text: string): string[][] {
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => l.split(/\s+/));
}

/** `a=1,b=2` → { a: '1', b: '2' }; `-` or '' → {}. */
export function parseLabels(text: string | undefined): Record<string, string> {
  if (!text || text === '-') return {};
  const out: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Polls `probe` until it returns something other than undefined. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A relay in front of a registry that holds matching requests until `open()`:
 * it makes "a download is in progress" last as long as a test needs, so
 * concurrency is exercised for real rather than by luck. Put the harness's
 * registry proxy in front of it to count requests.
 */
export interface GateHandle {
  url: string;
  /** Requests it holds now. */
  waiting(): number;
  /** Which requests to hold; undefined holds none. */
  hold: ((method: string, url: string) => boolean) | undefined;
  /** Lets held requests through (and later ones, until `hold` is set again). */
  open(): void;
  stop(): Promise<void>;
}

export async function startGate(upstream: string): Promise<GateHandle> {
  const target = new URL(upstream);
  let queue: (() => void)[] = [];
  const forward = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = http.createServer((req, res) => {
    if (handle.hold?.(req.method ?? 'GET', req.url ?? '/')) {
      req.pause();
      queue.push(() => forward(req, res));
    } else {
      forward(req, res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const handle: GateHandle = {
    url: `http://127.0.0.1:${port}`,
    hold: undefined,
    waiting: () => queue.length,
    open() {
      handle.hold = undefined;
      const held = queue;
      queue = [];
      for (const go of held) go();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        queue = [];
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return handle;
}

export interface PushedImage {
  /** `127.0.0.1:<port>/<repo>:<tag>` on the registry it was pushed to. */
  ref: string;
  manifest: FixtureDescriptor;
  config: FixtureDescriptor;
  /** One gzip layer holding a file of random bytes. */
  layer: FixtureDescriptor;
}

async function registryRequest(url: string, init: RequestInit, expected: number): Promise<Response> {
  const res = await fetch(url, init);
  if (res.status !== expected) throw new Error(`${init.method} ${url}: HTTP ${res.status} ${await res.text()}`);
  return res;
}

async function uploadBlob(registryUrl: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256Hex(data);
  const started = await registryRequest(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' }, 202);
  const location = new URL(started.headers.get('location')!, registryUrl);
  location.searchParams.set('digest', digest);
  await registryRequest(
    location.toString(),
    { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } },
    201,
  );
  return digest;
}

/**
 * Pushes a new linux/amd64 image whose one layer no other image shares (a tar
 * of `layerBytes` random bytes, gzipped) to a plain-HTTP registry, so a test
 * gets a blob no daemon has seen: content is shared across namespaces, and a
 * blob already on disk is linked, not downloaded.
 */
export async function pushRandomImage(registryUrl: string, repoAndTag: string, layerBytes = 2 * 1024 * 1024): Promise<PushedImage> {
  const [repo, tag] = repoAndTag.split(':');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rnd-'));
  let tar: Buffer;
  try {
    fs.mkdirSync(path.join(dir, 'root'));
    fs.writeFileSync(path.join(dir, 'root', 'random.bin'), randomBytes(layerBytes));
    const out = path.join(dir, 'layer.tar');
    execFileSync('tar', ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', path.join(dir, 'root'), '-cf', out, 'random.bin'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    tar = fs.readFileSync(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const gz = zlib.gzipSync(tar, { level: 1 });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/random.bin'] },
      rootfs: { type: 'layers', diff_ids: [sha256Hex(tar)] },
    }),
  );
  const [layerDigest, configDigest] = await Promise.all([uploadBlob(registryUrl, repo, gz), uploadBlob(registryUrl, repo, config)]);
  const layer = { mediaType: OCI.layerGzip, digest: layerDigest, size: gz.length };
  const configDesc = { mediaType: OCI.config, digest: configDigest, size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.manifest, config: configDesc, layers: [layer] }));
  await registryRequest(
    `${registryUrl}/v2/${repo}/manifests/${tag}`,
    { method: 'PUT', body: manifest, headers: { 'content-type': OCI.manifest } },
    201,
  );
  const host = new URL(registryUrl).host;
  return {
    ref: `${host}/${repo}:${tag}`,
    manifest: { mediaType: OCI.manifest, digest: sha256Hex(manifest), size: manifest.length },
    config: configDesc,
    layer,
  };
}

/** berth's CLI as a child the test can signal; `done` settles like `run`. */
export function berthChild(address: string, args: string[]): { child: ChildProcess; done: Promise<RunResult> } {
  const child = spawn(process.execPath, [berthBin, '-a', address, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<RunResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

/** Fails with the end of berthd's output if it is no longer running (a crash, not a refusal). */
export function expectAlive(daemon: BerthdHandle): void {
  const { exitCode, signalCode } = daemon.process;
  if (exitCode === null && signalCode === null) return;
  const tail = daemon.output.split('\n').slice(-25).join('\n');
  throw new Error(`berthd exited (code ${exitCode}, signal ${signalCode}); the end of its output:\n${tail}`);
}
