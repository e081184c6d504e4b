#!/usr/bin/env node
'use strict';
/*
 * berth foundation benchmark: berthd and containerd 1.6 side by side, in one run.
 *
 *   1. cold start to ready: spawn the daemon on fresh temp dirs, time until a gRPC
 *      containerd.services.version.v1.Version/Version call answers (polled every ~5 ms
 *      from this process with @grpc/grpc-js, the same way for both daemons);
 *   2. `ctr -a SOCK version` and `ctr -a SOCK namespaces ls` against one long-running
 *      instance of each daemon, plus the floor: `true` spawned the same way;
 *   3. idle RSS of each daemon process after warm-up (VmRSS from /proc/<pid>/status).
 *
 * Samples of A (berth) and B (containerd) are taken alternately, with the order
 * swapped every round. Plain CommonJS, no build step:  node bench/foundation.js [--quick]
 * See bench/README.md.
 */

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { performance } = require('perf_hooks');
const grpc = require('@grpc/grpc-js');

const REPO = path.resolve(__dirname, '..');
const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };

// ---------------------------------------------------------------------------------------
// options

function usage() {
  return `usage: node bench/foundation.js [options]

  --quick             fewer samples (smoke test): 3 cold starts, 20 ctr samples, 1 s idle
  --starts N          cold starts per daemon (default 10)
  --ctr-samples N     samples per ctr command and for the floor (default 200)
  --idle-ms N         idle time before reading RSS (default 5000)
  --berthd FILE       berthd entry point (default cmd/berthd/lib/main.js)
  --containerd FILE   containerd binary (default /usr/bin/containerd)
  --ctr FILE          ctr binary (default /usr/bin/ctr)
  --skip-berth        measure containerd only (berth columns empty)
  --inherit-node-env  keep NODE_OPTIONS / NODE_EXTRA_CA_CERTS for berthd (removed by default)
  --tmp DIR           parent of the temp dirs (default /tmp; keep it short: socket paths)
  --out FILE          JSON result file (default bench/results/foundation-<timestamp>.json)
  -h, --help          this text
`;
}

function parseArgs(argv) {
  const o = {
    quick: false,
    starts: undefined,
    ctrSamples: undefined,
    idleMs: undefined,
    berthd: path.join(REPO, 'cmd/berthd/lib/main.js'),
    containerd: '/usr/bin/containerd',
    ctr: '/usr/bin/ctr',
    skipBerth: false,
    inheritNodeEnv: false,
    tmp: '/tmp',
    out: undefined,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} wants a positive integer, got ${v}`);
    return n;
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--starts': o.starts = num(a, next()); break;
      case '--ctr-samples': o.ctrSamples = num(a, next()); break;
      case '--idle-ms': o.idleMs = num(a, next()); break;
      case '--berthd': o.berthd = path.resolve(next()); break;
      case '--containerd': o.containerd = path.resolve(next()); break;
      case '--ctr': o.ctr = path.resolve(next()); break;
      case '--skip-berth': o.skipBerth = true; break;
      case '--inherit-node-env': o.inheritNodeEnv = true; break;
      case '--tmp': o.tmp = path.resolve(next()); break;
      case '--out': o.out = path.resolve(next()); break;
      case '-h': case '--help': process.stdout.write(usage()); process.exit(0); break;
      default: throw new Error(`unknown option ${a}\n${usage()}`);
    }
  }
  o.starts ??= o.quick ? 3 : 10;
  o.ctrSamples ??= o.quick ? 20 : 200;
  o.idleMs ??= o.quick ? 1000 : 5000;
  o.warmStarts = 1; // discarded cold starts per daemon (page cache, first-run costs)
  o.warmCtr = o.quick ? 3 : 10; // discarded ctr rounds
  return o;
}

// ---------------------------------------------------------------------------------------
// cleanup: every child and temp dir is registered, and removed on exit, error or signal

const children = new Set();
const tempDirs = new Set();

function cleanupSync() {
  for (const child of children) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  children.clear();
  for (const dir of tempDirs) {
    try { fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 }); } catch { /* best effort */ }
  }
  tempDirs.clear();
}

process.on('exit', cleanupSync);
for (const [sig, n] of Object.entries(SIGNALS)) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping daemons, removing temp dirs\n`);
    cleanupSync();
    process.exit(128 + n);
  });
}

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function makeTempDir(parent) {
  const dir = fs.mkdtempSync(path.join(parent, 'bb-'));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
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
  const round = (x) => Math.round(x * 1000) / 1000;
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

/** Keeps the last `max` bytes of a stream, for error messages. */
function tail(stream, max = 4096) {
  const t = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    t.text += d;
    if (t.text.length > max) t.text = t.text.slice(-max);
  });
  return t;
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

// ---------------------------------------------------------------------------------------
// gRPC: Version/Version with hand-written (de)serializers; no proto files needed

const VersionClient = grpc.makeGenericClientConstructor(
  {
    Version: {
      path: '/containerd.services.version.v1.Version/Version',
      requestStream: false,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0), // google.protobuf.Empty
      requestDeserialize: (b) => b,
      responseSerialize: (b) => b,
      responseDeserialize: (b) => b, // raw VersionResponse bytes
    },
  },
  'Version',
);

/** VersionResponse { string version = 1; string revision = 2; } from raw bytes. */
function decodeVersion(buf) {
  const out = { version: '', revision: '' };
  let i = 0;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++];
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  try {
    while (i < buf.length) {
      const key = varint();
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (wire === 2) {
        const len = varint();
        const s = buf.subarray(i, i + len).toString('utf8');
        i += len;
        if (field === 1) out.version = s;
        if (field === 2) out.revision = s;
      } else if (wire === 0) varint();
      else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else break;
    }
  } catch { /* leave what was decoded */ }
  return out;
}

/** One Version call on a fresh channel; rejects fast when nothing listens yet. */
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
// the two daemons

function containerdConfig(dir, sock) {
  // Everything under `dir`: gRPC and ttrpc sockets, no debug socket, no metrics listener,
  // the opt plugin's directory (default /opt/containerd); CRI off.
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

// Node-only settings of the calling shell don't belong to the daemon under test: e.g.
// NODE_EXTRA_CA_CERTS pointing at the system bundle adds ~40 ms and ~2 MiB to every node
// start here. Both daemons (and the `node -e ''` reference) get the same environment.
const NODE_ENV_VARS = ['NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS'];
let DAEMON_ENV = process.env;
function setDaemonEnv(inherit) {
  DAEMON_ENV = { ...process.env };
  const removed = [];
  if (!inherit) {
    for (const k of NODE_ENV_VARS) {
      if (k in DAEMON_ENV) { delete DAEMON_ENV[k]; removed.push(k); }
    }
  }
  return removed;
}

const DAEMONS = {
  berth: {
    label: 'berth',
    prepare(dir, sock, opts) {
      return {
        cmd: process.execPath,
        args: [opts.berthd, '--root', `${dir}/root`, '--state', `${dir}/state`, '--address', sock, '--log-level', 'warn'],
      };
    },
  },
  containerd: {
    label: 'containerd',
    prepare(dir, sock, opts) {
      const cfg = path.join(dir, 'config.toml');
      fs.writeFileSync(cfg, containerdConfig(dir, sock));
      return {
        cmd: opts.containerd,
        args: ['--root', `${dir}/root`, '--state', `${dir}/state`, '--address', sock, '--config', cfg],
      };
    },
  },
};

/**
 * Spawns a daemon on a fresh temp dir and polls Version every ~5 ms until it answers.
 * Returns { kind, pid, child, dir, sock, readyMs, version, stderr }.
 */
async function startDaemon(kind, opts, { timeoutMs = 30000 } = {}) {
  const dir = makeTempDir(opts.tmp);
  const sock = path.join(dir, 'd.sock');
  const { cmd, args } = DAEMONS[kind].prepare(dir, sock, opts);

  const t0 = performance.now();
  const child = track(spawn(cmd, args, { cwd: dir, env: DAEMON_ENV, stdio: ['ignore', 'pipe', 'pipe'] }));
  const out = tail(child.stdout);
  const err = tail(child.stderr);
  let exited = null;
  child.once('exit', (code, signal) => { exited = { code, signal }; });
  child.once('error', (e) => { exited = { error: e.message }; });

  const d = { kind, pid: child.pid, child, dir, sock, out, err };
  for (;;) {
    if (exited) {
      await stopDaemon(d).catch(() => {});
      throw new Error(`${kind} exited before answering Version (${JSON.stringify(exited)}):\n${err.text || out.text}`);
    }
    if (performance.now() - t0 > timeoutMs) {
      await stopDaemon(d).catch(() => {});
      throw new Error(`${kind} did not answer Version within ${timeoutMs} ms:\n${err.text || out.text}`);
    }
    // The gRPC attempt needs the socket; checking for it first costs far less than a
    // channel and is the same for both daemons.
    if (fs.existsSync(sock)) {
      try {
        const res = await versionOnce(sock, 2000);
        d.readyMs = performance.now() - t0;
        d.version = decodeVersion(res);
        return d;
      } catch { /* not serving yet */ }
    }
    await sleep(5);
  }
}

/** SIGTERM, wait up to 10 s, then SIGKILL; removes the temp dir. */
async function stopDaemon(d, { keepDir = false } = {}) {
  const child = d.child;
  if (child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await gone;
    clearTimeout(timer);
  }
  if (!keepDir) removeTempDir(d.dir);
}

// ---------------------------------------------------------------------------------------
// process measurements

const CTR_ENV = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };
delete CTR_ENV.CONTAINERD_ADDRESS;
delete CTR_ENV.CONTAINERD_NAMESPACE;

/** Wall time from spawn() until the process has exited and its output is read. */
function timeSpawn(cmd, args, env = CTR_ENV) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = track(spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s) => { stderr += s; });
    child.once('error', (e) => resolve({ ms: performance.now() - t0, code: -1, stdout, stderr: e.message }));
    child.once('close', (code, signal) => resolve({ ms: performance.now() - t0, code: code ?? signal, stdout, stderr }));
  });
}

function readStatus(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => {
    const m = text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : null;
  };
  const threads = text.match(/^Threads:\s+(\d+)/m);
  let pssKb = null;
  try {
    const m = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+) kB/m);
    if (m) pssKb = Number(m[1]);
  } catch { /* older kernels */ }
  return {
    vmRssKb: kb('VmRSS'),
    vmHwmKb: kb('VmHWM'),
    rssAnonKb: kb('RssAnon'),
    rssFileKb: kb('RssFile'),
    pssKb,
    threads: threads ? Number(threads[1]) : null,
  };
}

/** Direct children of pid (a daemon that forks helpers would hide memory there). */
function childPids(pid) {
  const out = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch { /* raced */ }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// the phases

/** Alternates A and B; the order flips every round (ABBA...). */
function roundOrder(kinds, round) {
  return round % 2 === 0 ? kinds : [...kinds].reverse();
}

async function phaseColdStart(kinds, opts, skipped) {
  const samples = Object.fromEntries(kinds.map((k) => [k, []]));
  samples.node = [];
  const versions = {};
  const total = opts.warmStarts + opts.starts;
  for (let round = 0; round < total; round++) {
    const warm = round < opts.warmStarts;
    const order = roundOrder(kinds.filter((k) => !skipped[k]), round);
    // Node's own start-up (`node -e ''` until exit), taken in the same rounds so that it
    // sees the same machine load: a reference for reading berthd's cold start.
    order.splice(round % (order.length + 1), 0, 'node');
    for (const kind of order) {
      if (kind === 'node') {
        const r = await timeSpawn(process.execPath, ['-e', ''], DAEMON_ENV);
        if (!warm && r.code === 0) samples.node.push(r.ms);
        continue;
      }
      let d;
      try {
        d = await startDaemon(kind, opts);
      } catch (e) {
        skipped[kind] = `cold start failed: ${e.message.trim()}`;
        log(`  ${kind}: ${skipped[kind]}\n  (skipping ${kind} from here on)`);
        continue;
      }
      if (!warm) samples[kind].push(d.readyMs);
      versions[kind] = d.version;
      await stopDaemon(d);
      await sleep(100);
    }
    log(`  cold start round ${round + 1}/${total}${warm ? ' (warm-up, discarded)' : ''}: ${[...kinds, 'node']
      .map((k) => `${k} ${samples[k].length && !warm ? samples[k][samples[k].length - 1].toFixed(1) + ' ms' : '-'}`)
      .join(', ')}`);
  }
  return { samples, versions };
}

async function phaseCtr(daemons, opts) {
  const jobs = [];
  for (const [kind, d] of Object.entries(daemons)) {
    jobs.push({ key: `${kind}.version`, cmd: opts.ctr, args: ['-a', d.sock, 'version'] });
    jobs.push({ key: `${kind}.namespaces_ls`, cmd: opts.ctr, args: ['-a', d.sock, 'namespaces', 'ls'] });
  }
  jobs.push({ key: 'floor.true', cmd: opts.trueBin, args: [] });

  const samples = Object.fromEntries(jobs.map((j) => [j.key, []]));
  const firstOutput = {};
  const failures = {};
  const total = opts.warmCtr + opts.ctrSamples;
  for (let round = 0; round < total; round++) {
    const warm = round < opts.warmCtr;
    // rotate so that every job takes every position equally often
    const order = jobs.map((_, i) => jobs[(i + round) % jobs.length]);
    for (const job of order) {
      const r = await timeSpawn(job.cmd, job.args);
      if (r.code !== 0) {
        failures[job.key] = (failures[job.key] || 0) + 1;
        if (failures[job.key] === 1) log(`  ${job.key} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
        continue;
      }
      if (!(job.key in firstOutput)) firstOutput[job.key] = r.stdout;
      if (!warm) samples[job.key].push(r.ms);
    }
    if ((round + 1) % Math.max(1, Math.floor(total / 5)) === 0 || round === total - 1) {
      log(`  ctr round ${round + 1}/${total}`);
    }
  }
  return { samples, firstOutput, failures };
}

async function phaseRss(daemons, opts) {
  log(`  idle ${opts.idleMs} ms, then 5 VmRSS readings 200 ms apart`);
  await sleep(opts.idleMs);
  const readings = Object.fromEntries(Object.keys(daemons).map((k) => [k, []]));
  for (let i = 0; i < 5; i++) {
    for (const kind of roundOrder(Object.keys(daemons), i)) readings[kind].push(readStatus(daemons[kind].pid));
    await sleep(200);
  }
  const result = {};
  for (const [kind, rs] of Object.entries(readings)) {
    const pick = (key) => quantile(rs.map((r) => r[key]).filter((x) => x !== null), 0.5);
    result[kind] = {
      vmRssMiB: pick('vmRssKb') / 1024,
      vmHwmMiB: pick('vmHwmKb') / 1024,
      rssAnonMiB: pick('rssAnonKb') / 1024,
      rssFileMiB: pick('rssFileKb') / 1024,
      pssMiB: pick('pssKb') / 1024,
      threads: pick('threads'),
      childPids: childPids(daemons[kind].pid),
      readings: rs,
    };
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// output

function fmt(x, digits = 1) {
  return x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(digits);
}

function ratio(a, b) {
  if (a === null || b === null || a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b) || b === 0) return '—';
  return `${(a / b).toFixed(2)}x`;
}

function renderTable(rows) {
  const head = ['', 'berth', 'containerd', 'ratio b/c'];
  const cells = rows.map((r) => [r.label, r.berth, r.containerd, r.ratio]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => c.map((s, i) => (i === 0 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join('   ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('   '), ...cells.map(line)].join('\n');
}

function buildRows(results) {
  const rows = [];
  const pair = (label, b, c, digits = 1, showRatio = true) =>
    rows.push({ label, berth: fmt(b, digits), containerd: fmt(c, digits), ratio: showRatio ? ratio(b, c) : '—', b, c });
  const cs = results.coldStart;
  pair('cold start to ready, median (ms)', cs.berth?.median, cs.containerd?.median);
  pair('cold start to ready, p90 (ms)', cs.berth?.p90, cs.containerd?.p90);
  const ctr = results.ctr;
  const floor = ctr.floor?.median;
  pair('ctr version, median (ms)', ctr.berth?.version?.median, ctr.containerd?.version?.median);
  pair('ctr namespaces ls, median (ms)', ctr.berth?.namespaces_ls?.median, ctr.containerd?.namespaces_ls?.median);
  const net = (x) => (x === undefined || floor === undefined ? undefined : x - floor);
  pair('ctr version - floor (ms)', net(ctr.berth?.version?.median), net(ctr.containerd?.version?.median));
  pair('ctr namespaces ls - floor (ms)', net(ctr.berth?.namespaces_ls?.median), net(ctr.containerd?.namespaces_ls?.median));
  pair('floor: `true` spawned the same way (ms)', floor, floor, 1, false);
  pair("reference: `node -e ''` until exit (ms)", results.nodeStart?.median, undefined, 1, false);
  pair('idle RSS, VmRSS (MiB)', results.rss.berth?.vmRssMiB, results.rss.containerd?.vmRssMiB);
  pair('idle RSS, anonymous part (MiB)', results.rss.berth?.rssAnonMiB, results.rss.containerd?.rssAnonMiB);
  return rows;
}

// ---------------------------------------------------------------------------------------
// main

async function main() {
  const opts = parseArgs(process.argv);
  opts.trueBin = which('true') || '/bin/true';

  for (const [name, f] of [['containerd', opts.containerd], ['ctr', opts.ctr]]) {
    if (!isExecutable(f)) throw new Error(`${name} not found at ${f} (apt-get install containerd)`);
  }
  const removedEnv = setDaemonEnv(opts.inheritNodeEnv);
  if (removedEnv.length) log(`daemons run without ${removedEnv.join(', ')} (--inherit-node-env keeps them)`);
  const skipped = {};
  if (opts.skipBerth) skipped.berth = '--skip-berth';
  else if (!fs.existsSync(opts.berthd)) skipped.berth = `${opts.berthd} does not exist (build first: npm run build)`;
  if (skipped.berth) log(`berth skipped: ${skipped.berth}`);
  const socketLen = path.join(opts.tmp, 'bb-XXXXXX', 'd.sock.ttrpc').length;
  if (socketLen > 100) throw new Error(`--tmp ${opts.tmp} is too long for unix socket paths`);
  if (fs.existsSync('/etc/berth/config.toml')) log('note: /etc/berth/config.toml exists and berthd will read it');

  const kinds = ['berth', 'containerd'];
  const started = new Date();
  const meta = {
    benchmark: 'foundation',
    startedAt: started.toISOString(),
    quick: opts.quick,
    host: {
      hostname: os.hostname(),
      kernel: os.release(),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
      loadavgAtStart: os.loadavg(),
    },
    node: process.version,
    berthd: opts.berthd,
    containerd: opts.containerd,
    ctr: opts.ctr,
    floor: opts.trueBin,
    daemonEnvRemoved: removedEnv,
    samples: { coldStarts: opts.starts, warmStarts: opts.warmStarts, ctr: opts.ctrSamples, warmCtr: opts.warmCtr, idleMs: opts.idleMs },
    method: {
      coldStart: 'spawn on fresh temp dirs until a Version call on a fresh @grpc/grpc-js channel answers; socket polled every ~5 ms; ABBA order',
      ctr: 'wall time from spawn() to close of `ctr -a SOCK ...` (CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1), `true` spawned the same way; jobs rotated every round',
      nodeStart: '`node -e ""` spawned the same way until exit, in the cold-start rounds',
      rss: 'VmRSS of the daemon process (node itself for berthd), median of 5 readings after idle',
      quantiles: 'linear interpolation between closest ranks',
    },
  };

  // 1. cold start
  log(`1/3 cold start to ready: ${opts.starts} starts each (+${opts.warmStarts} warm-up), alternating`);
  const cold = await phaseColdStart(kinds, opts, skipped);
  meta.serverVersions = cold.versions;
  const active = kinds.filter((k) => !skipped[k]);
  if (!active.includes('containerd')) throw new Error(`containerd could not start: ${skipped.containerd}`);

  // 2. ctr against one long-running instance each
  log(`2/3 ctr: ${opts.ctrSamples} samples each (+${opts.warmCtr} warm-up rounds), alternating with the floor`);
  const daemons = {};
  for (const kind of active) {
    try {
      daemons[kind] = await startDaemon(kind, opts);
    } catch (e) {
      skipped[kind] = `long-running start failed: ${e.message.trim()}`;
      log(`  ${kind}: ${skipped[kind]}`);
    }
  }
  const rssAfterStart = Object.fromEntries(Object.entries(daemons).map(([k, d]) => [k, readStatus(d.pid).vmRssKb / 1024]));
  // the same one namespace on both, so `namespaces ls` returns one row each
  for (const [kind, d] of Object.entries(daemons)) {
    const r = await timeSpawn(opts.ctr, ['-a', d.sock, 'namespaces', 'create', 'bench', 'purpose=benchmark']);
    if (r.code !== 0) log(`  ${kind}: ctr namespaces create failed: ${(r.stderr || r.stdout).trim()}`);
  }
  const ctr = await phaseCtr(daemons, opts);

  // 3. idle RSS
  log('3/3 idle RSS');
  const rss = await phaseRss(daemons, opts);
  for (const [kind, r] of Object.entries(rss)) r.vmRssMiBAfterStart = rssAfterStart[kind];

  for (const d of Object.values(daemons)) await stopDaemon(d);

  // results
  const ctrStats = {};
  for (const kind of kinds) {
    if (!daemons[kind]) continue;
    ctrStats[kind] = {
      version: stats(ctr.samples[`${kind}.version`]),
      namespaces_ls: stats(ctr.samples[`${kind}.namespaces_ls`]),
    };
  }
  ctrStats.floor = stats(ctr.samples['floor.true']);
  const results = {
    coldStart: Object.fromEntries(kinds.map((k) => [k, stats(cold.samples[k])])),
    nodeStart: stats(cold.samples.node),
    ctr: ctrStats,
    rss,
  };
  const rows = buildRows(results);
  meta.finishedAt = new Date().toISOString();
  meta.host.loadavgAtEnd = os.loadavg();
  meta.skipped = skipped;
  meta.ctrFailures = ctr.failures;
  meta.ctrFirstOutput = ctr.firstOutput;

  const table = renderTable(rows);
  const title = `berth foundation benchmark${opts.quick ? ' (--quick)' : ''}: ${opts.starts} cold starts, ${opts.ctrSamples} ctr samples; ${meta.host.cpus} CPUs, load ${meta.host.loadavgAtStart.map((x) => x.toFixed(2)).join(' ')}`;
  process.stdout.write(`\n${title}\n\n${table}\n`);
  if (removedEnv.length) process.stdout.write(`\ndaemons and the node reference ran without ${removedEnv.join(', ')} (see --inherit-node-env)\n`);
  for (const [k, why] of Object.entries(skipped)) process.stdout.write(`\n${k} skipped: ${why.split('\n')[0]}\n`);
  if (Object.keys(ctr.failures).length) process.stdout.write(`\nctr failures: ${JSON.stringify(ctr.failures)}\n`);

  const out = opts.out ?? path.join(__dirname, 'results', `foundation-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(
    out,
    `${JSON.stringify({ meta, table: rows.map(({ label, b, c, ratio: r }) => ({ label, berth: b ?? null, containerd: c ?? null, ratio: r })), results }, null, 2)}\n`,
  );
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), out) || out}\n`);
}

main().then(
  () => { cleanupSync(); process.exit(0); },
  (err) => {
    process.stderr.write(`foundation benchmark failed: ${err && err.stack ? err.stack : err}\n`);
    cleanupSync();
    process.exit(1);
  },
);
