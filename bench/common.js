'use strict';
/*
 * What the side-by-side benchmarks share: cleanup of every child and temp dir on exit or
 * signal, timing of child processes, starting berthd and containerd 1.6 on fresh temp dirs,
 * Debian's docker-registry, deterministic image data, rounds of rotated jobs, and tables.
 * Used by content.js and unpack.js (foundation.js predates it and keeps its own copies).
 */

const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const { performance } = require('perf_hooks');
const grpc = require('@grpc/grpc-js');

const REPO = path.resolve(__dirname, '..');
const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// cleanup: every child (in its own process group) and temp dir is registered, and removed
// on exit, error or signal

const children = new Set();
const tempDirs = new Set();

function killGroup(child, signal) {
  try { process.kill(-child.pid, signal); } catch { /* gone, or not a group leader */ }
  try { process.kill(child.pid, signal); } catch { /* gone */ }
}

/** Mount points at or below `dir` (from /proc/self/mountinfo), deepest first. */
function mountsBelow(dir) {
  let text;
  try { text = fs.readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return []; }
  // Field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
  const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  const points = text.split('\n').filter(Boolean).map((line) => unescape(line.split(' ')[4]));
  return points.filter((p) => p === dir || p.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

/**
 * Lazily unmounts whatever is mounted at or below `dir`, one of this run's temp dirs (a
 * daemon killed mid-apply may leave a mount there). Nothing outside them is touched.
 */
function unmountBelow(dir) {
  for (const point of mountsBelow(dir)) spawnSync('umount', ['-l', point], { stdio: 'ignore' });
}

function cleanupSync() {
  for (const child of children) killGroup(child, 'SIGKILL');
  children.clear();
  for (const dir of tempDirs) {
    unmountBelow(dir);
    try { fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 }); } catch { /* best effort */ }
  }
  tempDirs.clear();
}

process.on('exit', cleanupSync);
for (const [sig, n] of Object.entries(SIGNALS)) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping daemons and the registry, removing temp dirs\n`);
    cleanupSync();
    process.exit(128 + n);
  });
}

/** Spawns in a new process group (so a shell's background jobs die with it) and tracks it. */
function spawnTracked(cmd, args, options) {
  const child = spawn(cmd, args, { ...options, detached: true });
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

function makeTempDir(parent, prefix = 'bc-') {
  const dir = fs.mkdtempSync(path.join(parent, prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  unmountBelow(dir);
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
}

/**
 * Removes big temp trees with `parallel` `rm -rf --one-file-system` at a time: deleting is
 * bound by the disk's latency here (ext4 with discard), and several at once go ~3x faster
 * than one after another. Throws if a tree is still there afterwards.
 */
async function removeTempDirs(dirs, { parallel = 4 } = {}) {
  const queue = [...dirs];
  const worker = async () => {
    for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) {
      unmountBelow(dir);
      await new Promise((resolve) => {
        const child = spawnTracked('rm', ['-rf', '--one-file-system', '--', dir], { stdio: 'ignore' });
        child.once('exit', resolve);
        child.once('error', resolve);
      });
      if (fs.existsSync(dir)) removeTempDir(dir); // whatever rm left, with its error
      tempDirs.delete(dir);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
}

// containerd 1.6's shims put sockets in /run/containerd/s whatever the state dir. Nothing
// here starts a shim, and neither daemon touches /run for fetch or ingest (checked with
// strace -e trace=%file). Other engineers' tests on this machine do create and use
// /run/containerd, so it is never deleted here: the run only records what it saw.
const RUN_CONTAINERD = '/run/containerd';
function runContainerdState() {
  try {
    const list = (dir) => fs.readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? [`${e.name}/`, ...list(path.join(dir, e.name)).map((x) => `${e.name}/${x}`)] : [e.name]));
    return list(RUN_CONTAINERD);
  } catch {
    return null; // absent
  }
}

// ---------------------------------------------------------------------------------------
// small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`${msg}\n`);

/** Linear interpolation between closest ranks (numpy's default). */
function quantile(samples, q) {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function stats(samples) {
  if (samples.length === 0) return null;
  const round = (x) => Math.round(x * 10000) / 10000;
  return {
    n: samples.length,
    median: round(quantile(samples, 0.5)),
    p90: round(quantile(samples, 0.9)),
    min: round(Math.min(...samples)),
    max: round(Math.max(...samples)),
    mean: round(samples.reduce((a, b) => a + b, 0) / samples.length),
    samples: samples.map(round),
  };
}

function isExecutable(file) {
  try { fs.accessSync(file, fs.constants.X_OK); return true; } catch { return false; }
}

function which(name) {
  for (const dir of (process.env.PATH || '/usr/bin:/bin').split(':')) {
    const f = path.join(dir, name);
    if (dir && isExecutable(f)) return f;
  }
  return null;
}

const sha256hex = (data) => crypto.createHash('sha256').update(data).digest('hex');

/** CLOCK_MONOTONIC in µs: the clock of V8's .cpuprofile timestamps (to cut out a sample's window). */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

const loadavg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

// ---------------------------------------------------------------------------------------
// processes

// Node-only settings of the calling shell don't belong to the programs under test
// (NODE_EXTRA_CA_CERTS with the system bundle adds ~40 ms to every node start here): as in
// foundation.js, berthd and the berth CLI run without them.
const NODE_ENV_VARS = ['NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS'];
let NODE_CHILD_ENV = process.env;
function setNodeChildEnv(inherit) {
  NODE_CHILD_ENV = { ...process.env };
  const removed = [];
  if (!inherit) {
    for (const k of NODE_ENV_VARS) {
      if (k in NODE_CHILD_ENV) { delete NODE_CHILD_ENV[k]; removed.push(k); }
    }
  }
  for (const k of ['BERTH_ADDRESS', 'BERTH_NAMESPACE']) delete NODE_CHILD_ENV[k];
  return removed;
}

/** The environment of berthd and the berth CLI (set by setNodeChildEnv). */
const nodeChildEnv = () => NODE_CHILD_ENV;

const CTR_ENV = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };
delete CTR_ENV.CONTAINERD_ADDRESS;
delete CTR_ENV.CONTAINERD_NAMESPACE;

/**
 * Wall time from spawn() until the process has exited and its output is read.
 * `stdin` is 'ignore' or a file descriptor. Keeps the last 8 KiB of each output.
 */
function timeSpawn(cmd, args, { env = CTR_ENV, stdin = 'ignore', cwd } = {}) {
  return new Promise((resolve) => {
    const fromUs = monotonicUs();
    const t0 = performance.now();
    const child = spawnTracked(cmd, args, { env, cwd, stdio: [stdin, 'pipe', 'pipe'] });
    const done = (r) => resolve({ ...r, pid: child.pid, fromUs, toUs: monotonicUs() });
    let stdout = '';
    let stderr = '';
    const keep = (s) => (s.length > 8192 ? s.slice(-8192) : s);
    child.stdout.setEncoding('utf8').on('data', (s) => { stdout = keep(stdout + s); });
    child.stderr.setEncoding('utf8').on('data', (s) => { stderr = keep(stderr + s); });
    child.once('error', (e) => done({ s: (performance.now() - t0) / 1000, code: -1, stdout, stderr: e.message }));
    child.once('close', (code, signal) => done({ s: (performance.now() - t0) / 1000, code: code ?? signal, stdout, stderr }));
  });
}

async function run(cmd, args, options) {
  const r = await timeSpawn(cmd, args, options);
  if (r.code !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed (${r.code}):\n${(r.stderr || r.stdout).trim()}`);
  return r;
}

// ---------------------------------------------------------------------------------------
// gRPC Version/Version, to know when a daemon serves (as in foundation.js)

const VersionClient = grpc.makeGenericClientConstructor(
  {
    Version: {
      path: '/containerd.services.version.v1.Version/Version',
      requestStream: false,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0),
      requestDeserialize: (b) => b,
      responseSerialize: (b) => b,
      responseDeserialize: (b) => b,
    },
  },
  'Version',
);

function versionOnce(sock, timeoutMs) {
  return new Promise((resolve, reject) => {
    const client = new VersionClient(`unix://${sock}`, grpc.credentials.createInsecure());
    client.Version(Buffer.alloc(0), { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}

// ---------------------------------------------------------------------------------------
// the two daemons (same config approach as foundation.js)

/** node flags for berthd and the berth CLI: --cpu-prof when asked. */
function cliNodeArgs(opts) {
  return opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : [];
}

function containerdConfig(dir, sock) {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "${sock}"

[ttrpc]
  address = "${sock}.ttrpc"

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
`;
}

const DAEMONS = {
  berthd: {
    prepare(dir, sock, opts) {
      return {
        cmd: process.execPath,
        args: [...cliNodeArgs(opts), opts.berthd, '--root', `${dir}/root`, '--state', `${dir}/state`, '--address', sock, '--log-level', opts.berthdLogLevel || 'warn'],
        env: NODE_CHILD_ENV,
      };
    },
  },
  containerd: {
    prepare(dir, sock, opts) {
      const cfg = path.join(dir, 'config.toml');
      fs.writeFileSync(cfg, containerdConfig(dir, sock));
      return {
        cmd: opts.containerd,
        args: ['--root', `${dir}/root`, '--state', `${dir}/state`, '--address', sock, '--config', cfg],
        env: process.env,
      };
    },
  },
};

/** Spawns a daemon on a fresh temp dir and waits until Version answers. */
async function startDaemon(kind, opts, { timeoutMs = 30000 } = {}) {
  const dir = makeTempDir(opts.tmp, opts.tempPrefix);
  const sock = path.join(dir, 'd.sock');
  const { cmd, args, env } = DAEMONS[kind].prepare(dir, sock, opts);
  const t0 = performance.now();
  const child = spawnTracked(cmd, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (s) => { output = (output + s).slice(-4096); };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  let exited = null;
  child.once('exit', (code, signal) => { exited = { code, signal }; });
  child.once('error', (e) => { exited = { error: e.message }; });
  const d = { kind, pid: child.pid, child, dir, sock, output: () => output };
  for (;;) {
    if (exited) {
      await stopDaemon(d).catch(() => {});
      throw new Error(`${kind} exited before answering Version (${JSON.stringify(exited)}):\n${output}`);
    }
    if (performance.now() - t0 > timeoutMs) {
      await stopDaemon(d).catch(() => {});
      throw new Error(`${kind} did not answer Version within ${timeoutMs} ms:\n${output}`);
    }
    if (fs.existsSync(sock)) {
      try {
        await versionOnce(sock, 2000);
        d.readyMs = performance.now() - t0;
        return d;
      } catch { /* not serving yet */ }
    }
    await sleep(5);
  }
}

/** Peak and current RSS of a process, MiB. */
function rssOf(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number((text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) || [])[1]) || null;
    return { hwmMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 };
  } catch {
    return null;
  }
}

/** SIGTERM, wait up to 10 s, then SIGKILL. The dir stays unless removeDir. */
async function stopDaemon(d, { removeDir = true } = {}) {
  const child = d.child;
  if (child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 10000);
    await gone;
    clearTimeout(timer);
  }
  if (removeDir) removeTempDir(d.dir);
}

// ---------------------------------------------------------------------------------------
// the image: 5 gzip layers of deterministic, realistically compressible tar data

/** A deterministic byte stream (AES-256-CTR keystream of a seed). */
function keystream(seed) {
  const cipher = crypto.createCipheriv('aes-256-ctr', crypto.createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

/**
 * ~8 MiB of log-like text (timestamps, levels, components, request ids, words drawn from a
 * skewed vocabulary): gzip -6 takes it to ~22 %. Files are built from slices of it at
 * random offsets; repeats further apart than gzip's 32 KiB window aren't seen, so the
 * slices compress like the text itself.
 */
function textPool(size) {
  const bytes = keystream('berth-bench-text');
  let r = bytes(MiB);
  let ri = 0;
  const u16 = () => {
    if (ri > r.length - 2) { r = bytes(MiB); ri = 0; }
    const v = r[ri] | (r[ri + 1] << 8);
    ri += 2;
    return v;
  };
  const zipf = (n) => { const u = u16() / 65536; return Math.floor(n * u * u * u); };
  const word = () => {
    let w = '';
    for (let j = 2 + (u16() % 8); j > 0; j--) w += String.fromCharCode(97 + (u16() % 26));
    return w;
  };
  const words = Array.from({ length: 2048 }, word);
  const components = Array.from({ length: 24 }, () => `${word()}.${word()}`);
  const templates = Array.from({ length: 300 }, () =>
    Array.from({ length: 3 + (u16() % 7) }, () => (u16() % 4 === 0 ? '%' : words[zipf(2048)])).join(' '));
  const levels = ['INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'DEBUG', 'WARN', 'ERROR'];
  const lines = [];
  let n = 0;
  let ts = 1795000000000;
  let id = 100000;
  while (n < size) {
    ts += u16() % 200;
    id += 1 + (u16() % 3);
    const msg = templates[zipf(300)].replace(/%/g, () => (u16() % 2 ? String(u16() % 1000) : words[zipf(2048)]));
    const line = `${new Date(ts).toISOString()} ${levels[u16() % 8]} ${components[zipf(24)]} [req ${id}] ${msg}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join(''));
}

/**
 * A ustar header. Type '0' file, '5' directory, '2' symlink, '1' hard link (`linkname`).
 * Mode (0755 for directories, 0644 otherwise), owner (0:0 root) and mtime (0) can be
 * given. Names over 100 bytes are split into ustar's prefix field at a slash.
 */
function tarHeader(name, size, type = '0', { mode, uid = 0, gid = 0, mtime = 0, linkname = '', uname = 'root', gname = 'root' } = {}) {
  const h = Buffer.alloc(512);
  const put = (s, off, len) => h.write(s, off, len, 'utf8');
  const oct = (v, len) => v.toString(8).padStart(len - 1, '0');
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (cut < 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar name too long for ustar: ${prefix}/${name}`);
  }
  put(name, 0, 100);
  put(oct(mode ?? (type === '5' ? 0o755 : 0o644), 8), 100, 8);
  put(oct(uid, 8), 108, 8);
  put(oct(gid, 8), 116, 8);
  put(oct(size, 12), 124, 12);
  put(oct(mtime, 12), 136, 12);
  put('        ', 148, 8);
  put(type, 156, 1);
  put(linkname, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put(uname, 265, 32);
  put(gname, 297, 32);
  if (prefix) put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

const gzip = (buf) => new Promise((resolve, reject) =>
  zlib.gzip(buf, { level: 6 }, (err, out) => (err ? reject(err) : resolve(out))));

const OCI = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

/** Writes an OCI layout with `big` (5 layers) and `tiny` (1 small layer, for pre-warming). */
// ---------------------------------------------------------------------------------------
// the registry: Debian's docker-registry on 127.0.0.1, plain HTTP (as test/harness/registry.ts)

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function probe(url) {
  return new Promise((resolve) => {
    const req = http.get(`${url}/v2/`, { timeout: 1000 }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
  });
}

async function startRegistry(dir, registryBin) {
  const storage = path.join(dir, 'storage');
  fs.mkdirSync(storage, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = path.join(dir, 'config.yml');
    fs.writeFileSync(config, [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(storage)}`,
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: berth-bench-secret',
      '',
    ].join('\n'));
    const child = spawnTracked(registryBin, ['serve', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s) => { output += s; });
    child.stderr.setEncoding('utf8').on('data', (s) => { output += s; });
    let exited = false;
    child.once('exit', () => { exited = true; });
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10000;
    while (!exited && Date.now() < deadline) {
      if ((await probe(url)) !== undefined) {
        return { child, port, url, host: `127.0.0.1:${port}`, output: () => output };
      }
      await sleep(15);
    }
    killGroup(child, 'SIGKILL');
    if (attempt < 3 && /address already in use/.test(output)) continue;
    throw new Error(`docker-registry did not start on port ${port}:\n${output}`);
  }
}

async function stopRegistry(reg) {
  if (reg.child.exitCode !== null || reg.child.signalCode !== null) return;
  const gone = new Promise((r) => reg.child.once('exit', r));
  reg.child.kill('SIGTERM');
  const timer = setTimeout(() => killGroup(reg.child, 'SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------
// jobs: each returns { s, extra } for one sample; `warm` samples are discarded

/** A fresh daemon, optionally pre-warmed by `prewarm(d)`, then `timed(d)`; stopped after. */
async function withFreshDaemon(kind, ctx, prewarm, timed) {
  const d = await startDaemon(kind, ctx.opts);
  try {
    if (ctx.opts.prewarm) await prewarm(d);
    const r = await timed(d);
    r.daemonPeak = rssOf(d.pid);
    r.readyMs = d.readyMs;
    return r;
  } finally {
    await stopDaemon(d, { removeDir: ctx.opts.deleteAsWeGo });
  }
}

/** Who ran when: lets cpuprofile-top.js cut a daemon's profile down to the timed sample. */
function windowOf(d, r) {
  return { daemon: d.kind, daemonPid: d.pid, clientPid: r.pid, fromUs: r.fromUs, toUs: r.toUs };
}

function checkOk(r, what) {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r;
}

function windowsOf(extras) {
  const out = [];
  for (const [job, list] of Object.entries(extras)) for (const e of list) if (e.window) out.push({ job, ...e.window });
  return out;
}

async function withFd(file, fn) {
  const fd = fs.openSync(file, 'r');
  try {
    return await fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Runs warm-up + timed rounds of `jobs`; every round runs each job once, rotated so that
 * each job takes each position equally often. A failing job with `optional` set (berth's
 * jobs) is left out for the rest of the phase and the run goes on; any other failure fails
 * the run. `between()`, if given, runs after every job, outside its timing.
 */
async function runRounds(name, jobs, ctx, { between } = {}) {
  const { opts } = ctx;
  const samples = Object.fromEntries(jobs.map((j) => [j.key, []]));
  const extras = Object.fromEntries(jobs.map((j) => [j.key, []]));
  const rounds = [];
  const failed = {};
  const total = opts.warmup + opts.samples;
  for (let round = 0; round < total; round++) {
    const warm = round < opts.warmup;
    const live = jobs.filter((j) => !failed[j.key]);
    const order = live.map((_, i) => live[(i + round) % live.length]);
    const roundInfo = { round, warm, loadavg: loadavg(), order: order.map((j) => j.key), s: {} };
    for (const job of order) {
      if (failed[job.key]) continue;
      let r;
      try {
        r = await job.run();
      } catch (e) {
        if (!job.optional) throw e;
        failed[job.key] = e.message;
        log(`  ${job.label} failed: ${e.message.split('\n').slice(0, 6).join('\n    ')}\n  (leaving it out from here on)`);
        continue;
      }
      roundInfo.s[job.key] = r.s;
      if (!warm) {
        samples[job.key].push(r.s);
        const { s, ...rest } = r;
        extras[job.key].push(rest);
      }
      if (between) await between(job);
      else if (opts.deleteAsWeGo) await sleep(300);
    }
    rounds.push(roundInfo);
    log(`  ${name} round ${round + 1}/${total}${warm ? ' (warm-up, discarded)' : ''}, load ${roundInfo.loadavg[0].toFixed(2)}: ${jobs
      .map((j) => `${j.key} ${roundInfo.s[j.key] !== undefined ? roundInfo.s[j.key].toFixed(2) + ' s' : '-'}`).join(', ')}`);
  }
  return { samples, extras, rounds, failed };
}

// ---------------------------------------------------------------------------------------
// output

function fmt(x, digits = 2) {
  return x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(digits);
}

function ratioStr(a, b) {
  if ([a, b].some((x) => x === null || x === undefined || Number.isNaN(x)) || b === 0) return '—';
  return `${(a / b).toFixed(2)}x`;
}

function renderTable(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((c) => c[i].length)));
  const line = (c) => c.map((s, i) => (i === 0 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join('   ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('   '), ...rows.map(line)].join('\n');
}

/** Per-job median, p90 (p10 for MB/s), min, max, n. */
function detailTable(title, jobs, st, unit) {
  const head = [title, 'median', unit === 'MB/s' ? 'p10' : 'p90', 'min', 'max', 'n'];
  const rows = jobs.filter((j) => st[j.key]).map((j) => {
    const s = st[j.key];
    const conv = unit === 'MB/s' ? (x) => j.mb / x : (x) => x;
    const cells = unit === 'MB/s'
      ? [conv(s.median), conv(s.p90), conv(s.max), conv(s.min)] // the slow end of time is the low end of MB/s
      : [s.median, s.p90, s.min, s.max];
    return [j.label, ...cells.map((x) => fmt(x, unit === 'MB/s' ? 0 : 2)), String(s.n)];
  });
  return renderTable(head, rows);
}

// ---------------------------------------------------------------------------------------
// run facts

/** HEAD and how many paths differ from it, when the repo is a git checkout. */
function gitInfo() {
  const git = (...a) => spawnSync('git', ['-C', REPO, ...a], { encoding: 'utf8' });
  const head = git('rev-parse', 'HEAD');
  if (head.status !== 0) return null;
  const dirty = git('status', '--porcelain', '--untracked-files=no').stdout.split('\n').filter(Boolean);
  return { head: head.stdout.trim(), modifiedTracked: dirty.length };
}


module.exports = {
  REPO, SIGNALS, MiB,
  // cleanup
  killGroup, cleanupSync, spawnTracked, makeTempDir, removeTempDir, removeTempDirs, tempDirs, mountsBelow, unmountBelow, runContainerdState,
  // small helpers
  sleep, log, quantile, stats, isExecutable, which, sha256hex, monotonicUs, loadavg,
  // processes and daemons
  setNodeChildEnv, nodeChildEnv, CTR_ENV, timeSpawn, run, versionOnce, cliNodeArgs, containerdConfig,
  startDaemon, stopDaemon, rssOf,
  // image data
  keystream, textPool, tarHeader, gzip, OCI,
  // registry
  freePort, probe, startRegistry, stopRegistry,
  // rounds
  withFreshDaemon, windowOf, checkOk, windowsOf, withFd, runRounds,
  // output
  fmt, ratioStr, renderTable, detailTable, gitInfo,
};
