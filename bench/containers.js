#!/usr/bin/env node
'use strict';
/*
 * berth containers benchmark: berthd and containerd 1.6 side by side, in one run, with the
 * same busybox image (scripts/demo-image.js, imported into both and unpacked into overlayfs).
 *
 *   1. `run --rm IMAGE ID true`, one at a time: the berth CLI → berthd, ctr → berthd,
 *      ctr → containerd, and plain `runc run` of a prepared bundle as the floor;
 *   2. N (20) of those at once, with distinct ids: wall time until all have exited;
 *   3. memory with N containers running (`ctr run -d IMAGE ID sleep 600` on fresh daemons):
 *      the daemon's VmRSS, the sum over its shims (containerd-shim-runc-v2 processes with
 *      `-address` its socket) and over the containers' init processes; the floor is N
 *      `runc run -d` of the same rootfs (the containers' own memory, no daemon, no shim).
 *
 * Jobs alternate, rotated every round. Plain CommonJS, no build step of its own (berth must
 * be built):   node bench/containers.js [--quick]          See bench/README.md.
 */

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { performance } = require('perf_hooks');
const {
  REPO, SIGNALS, MiB, killGroup, spawnTracked, makeTempDir, removeTempDir, tempDirs, mountsBelow,
  sleep, log, quantile, stats, isExecutable,
  setNodeChildEnv, nodeChildEnv, CTR_ENV, startDaemon, stopDaemon, runRounds,
  fmt, ratioStr, renderTable, detailTable, gitInfo, cleanupSync,
} = require('./common');

// ---------------------------------------------------------------------------------------
// options

function usage() {
  return `usage: node bench/containers.js [options]

  --quick               smoke test: 3 samples, 5 at once (1 round), 5 running containers
  --samples N           timed \`run --rm\` per job, one at a time (default 20)
  --warmup N            discarded rounds before them (default 2)
  --concurrency N       containers started at once in phase 2 (default 20)
  --conc-rounds N       timed rounds of phase 2 (default 3; 1 more is discarded)
  --containers N        running containers per side for the memory phase (default 20)
  --settle-ms N         wait after the last start before reading memory (default 3000)
  --only serial|concurrent|memory   run one phase (serial and concurrent share daemons)
  --skip-berth          containerd and the floor only
  --berthd FILE         berthd entry point (default cmd/berthd/lib/main.js)
  --berth FILE          berth CLI entry point (default cmd/berth/lib/main.js)
  --containerd FILE     containerd binary (default /usr/bin/containerd)
  --ctr FILE            ctr binary (default /usr/bin/ctr)
  --runc FILE           runc binary for the floor (default: runc on PATH)
  --inherit-node-env    keep NODE_OPTIONS / NODE_EXTRA_CA_CERTS for berthd and the berth CLI
  --tmp DIR             parent of the temp dirs (default /tmp; keep it short: socket paths)
  --out FILE            JSON result file (default bench/results/containers-<timestamp>.json)
  -h, --help            this text
`;
}

function whichRunc() {
  for (const dir of (process.env.PATH || '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/usr/bin'])) {
    const f = path.join(dir, 'runc');
    if (dir && isExecutable(f)) return f;
  }
  return null;
}

function parseArgs(argv) {
  const o = {
    quick: false,
    samples: undefined,
    warmup: undefined,
    concurrency: undefined,
    concRounds: undefined,
    containers: undefined,
    settleMs: 3000,
    only: null,
    skipBerth: false,
    berthd: path.join(REPO, 'cmd/berthd/lib/main.js'),
    berth: path.join(REPO, 'cmd/berth/lib/main.js'),
    containerd: '/usr/bin/containerd',
    ctr: '/usr/bin/ctr',
    runc: whichRunc(),
    inheritNodeEnv: false,
    tmp: '/tmp',
    out: undefined,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} wants a non-negative number, got ${v}`);
    return Math.round(n);
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--samples': o.samples = Math.max(1, num(a, next())); break;
      case '--warmup': o.warmup = num(a, next()); break;
      case '--concurrency': o.concurrency = Math.max(1, num(a, next())); break;
      case '--conc-rounds': o.concRounds = Math.max(1, num(a, next())); break;
      case '--containers': o.containers = Math.max(1, num(a, next())); break;
      case '--settle-ms': o.settleMs = num(a, next()); break;
      case '--only': o.only = next(); if (!['serial', 'concurrent', 'memory'].includes(o.only)) throw new Error('--only serial|concurrent|memory'); break;
      case '--skip-berth': o.skipBerth = true; break;
      case '--berthd': o.berthd = path.resolve(next()); break;
      case '--berth': o.berth = path.resolve(next()); break;
      case '--containerd': o.containerd = path.resolve(next()); break;
      case '--ctr': o.ctr = path.resolve(next()); break;
      case '--runc': o.runc = path.resolve(next()); break;
      case '--inherit-node-env': o.inheritNodeEnv = true; break;
      case '--tmp': o.tmp = path.resolve(next()); break;
      case '--out': o.out = path.resolve(next()); break;
      case '-h': case '--help': process.stdout.write(usage()); process.exit(0); break;
      default: throw new Error(`unknown option ${a}\n${usage()}`);
    }
  }
  o.samples ??= o.quick ? 3 : 20;
  o.warmup ??= o.quick ? 1 : 2;
  o.concurrency ??= o.quick ? 5 : 20;
  o.concRounds ??= o.quick ? 1 : 3;
  o.containers ??= o.quick ? 5 : 20;
  o.tempPrefix = 'bk-';
  return o;
}

const readLoadavg = () => {
  try { return fs.readFileSync('/proc/loadavg', 'utf8').trim(); } catch { return null; }
};

// ---------------------------------------------------------------------------------------
// what this run creates, so that it can be removed even after a crash or a signal: one
// namespace of its own (the same name on both daemons; container ids are distinct per
// side, because both shims keep runc state in /run/containerd/runc/<namespace>), the
// daemons' sockets (their shims are found by `-address SOCK`), the floor's runc root

const RUNC_STATE = '/run/containerd/runc';
const SHIM_SOCKETS = '/run/containerd/s';
const CGROUP_ROOT = '/sys/fs/cgroup';

const live = {
  namespace: `bench-ctrs-${crypto.randomBytes(4).toString('hex')}`,
  socks: new Set(),
  daemons: new Set(), // handles from startDaemon
  ids: new Map(), // sock → Set of container ids created through it
  floorRoot: null,
  runc: null,
};

function trackId(sock, id) {
  if (!live.ids.has(sock)) live.ids.set(sock, new Set());
  live.ids.get(sock).add(id);
}

function cmdlineOf(pid) {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw ? raw.replace(/\0$/, '').split('\0') : null;
  } catch {
    return null;
  }
}

/** pids of the v2 shims serving daemon socket `sock` (their `-address` is the socket). */
function shimsOf(sock) {
  const pids = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv = cmdlineOf(name);
    if (!argv || !path.basename(argv[0]).startsWith('containerd-shim')) continue;
    const at = argv.indexOf('-address');
    if (at >= 0 && (argv[at + 1] === sock || argv[at + 1] === `unix://${sock}`)) pids.push(Number(name));
  }
  return pids;
}

/** The shim's socket as containerd-shim-runc-v2 1.6 names it (a SIGKILLed shim leaves it). */
function shimSocketOf(sock, namespace, id) {
  return path.join(SHIM_SOCKETS, crypto.createHash('sha256').update(path.join(sock, namespace, id)).digest('hex'));
}

/** rmdir of `dir` and every directory below it, deepest first; a cgroup still in use stays. */
function rmdirTree(dir) {
  let entries;
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
  for (const e of entries) if (e.isDirectory()) rmdirTree(path.join(dir, e.name));
  try { fs.rmdirSync(dir); } catch { /* in use, or not empty */ }
}

/**
 * Synchronous last resort, before common.js removes the temp dirs (and unmounts what is
 * mounted there): SIGKILL of this run's daemons still running, `runc delete -f` of every
 * container left in this run's runc state dirs, SIGKILL of the shims still serving this
 * run's daemons (by pid), their sockets, this namespace's cgroups.
 * Returns what it had to remove (nothing after a clean run).
 */
function removeLeftoversSync() {
  // cgroupDirs: the namespace's parent cgroups, which containerd leaves behind too
  const removed = { containers: [], shims: [], shimSockets: [], cgroupDirs: [] };
  if (!live.runc) return removed;
  // the daemons first: a live one reacts to its shims' deaths by running runc again
  for (const d of live.daemons) {
    if (d.child.exitCode === null && d.child.signalCode === null) killGroup(d.child, 'SIGKILL');
  }
  const roots = [path.join(RUNC_STATE, live.namespace), live.floorRoot].filter(Boolean);
  for (const root of roots) {
    let ids = [];
    try { ids = fs.readdirSync(root); } catch { continue; }
    for (const id of ids) {
      spawnSync(live.runc, ['--root', root, 'delete', '-f', id], { stdio: 'ignore', timeout: 15000 });
      removed.containers.push(`${root}/${id}`);
    }
  }
  for (const sock of live.socks) {
    for (const pid of shimsOf(sock)) {
      try { process.kill(pid, 'SIGKILL'); removed.shims.push(pid); } catch { /* gone */ }
    }
    for (const id of live.ids.get(sock) || []) {
      const s = shimSocketOf(sock, live.namespace, id);
      if (fs.existsSync(s)) { try { fs.rmSync(s, { force: true }); removed.shimSockets.push(s); } catch { /* best effort */ } }
    }
  }
  try { fs.rmdirSync(path.join(RUNC_STATE, live.namespace)); } catch { /* absent or not empty */ }
  // cgroup v1 has one hierarchy per controller, v2 one: the namespace's dir in each
  let hierarchies = [];
  try { hierarchies = fs.readdirSync(CGROUP_ROOT).map((c) => path.join(CGROUP_ROOT, c)); } catch { /* no cgroupfs */ }
  for (const dir of [CGROUP_ROOT, ...hierarchies].map((h) => path.join(h, live.namespace))) {
    if (fs.existsSync(dir)) { rmdirTree(dir); removed.cgroupDirs.push(dir); }
  }
  return removed;
}

let leftoversDone = false;
function removeLeftoversOnce() {
  if (leftoversDone) return;
  leftoversDone = true;
  try { removeLeftoversSync(); } catch (e) { process.stderr.write(`removing leftovers: ${e.message}\n`); }
}
// prepended: common.js's own handlers (kill the daemons, unmount, remove the temp dirs) come after
process.prependListener('exit', removeLeftoversOnce);
for (const sig of Object.keys(SIGNALS)) process.prependListener(sig, removeLeftoversOnce);

// ---------------------------------------------------------------------------------------
// processes

/**
 * Wall time from spawn() until the process has exited and its output is read; killed
 * (with its process group) after `timeoutMs`. `output: false` gives it /dev/null, for a
 * `runc run -d` whose container would otherwise hold the pipes open.
 */
function spawnTimed(cmd, args, { env = CTR_ENV, timeoutMs = 120000, output = true } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawnTracked(cmd, args, { env, stdio: ['ignore', output ? 'pipe' : 'ignore', output ? 'pipe' : 'ignore'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const keep = (s) => (s.length > 8192 ? s.slice(-8192) : s);
    if (output) {
      child.stdout.setEncoding('utf8').on('data', (s) => { stdout = keep(stdout + s); });
      child.stderr.setEncoding('utf8').on('data', (s) => { stderr = keep(stderr + s); });
    }
    const timer = setTimeout(() => { timedOut = true; killGroup(child, 'SIGKILL'); }, timeoutMs);
    const done = (r) => { clearTimeout(timer); resolve({ ...r, pid: child.pid }); };
    child.once('error', (e) => done({ s: (performance.now() - t0) / 1000, code: -1, stdout, stderr: e.message }));
    child.once('close', (code, signal) => done({
      s: (performance.now() - t0) / 1000,
      code: timedOut ? `timeout after ${timeoutMs} ms` : (code ?? signal),
      stdout,
      stderr,
    }));
  });
}

function mustOk(r, what) {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r;
}

/** The clients: each takes a daemon handle (or nothing, for runc) and returns [cmd, args, env]. */
function clients(opts) {
  const ns = live.namespace;
  return {
    berth: (d, args) => [process.execPath, [opts.berth, '-a', d.sock, '-n', ns, ...args], nodeChildEnv()],
    ctr: (d, args) => [opts.ctr, ['-a', d.sock, '-n', ns, ...args], CTR_ENV],
    runc: (args) => [opts.runc, ['--root', live.floorRoot, ...args], process.env],
  };
}

const exec = ([cmd, args, env], options = {}) => spawnTimed(cmd, args, { env, ...options });

/** Rows of `ctr tasks ls`: TASK PID STATUS. */
function parseTaskList(stdout) {
  const [header, ...lines] = stdout.trimEnd().split('\n');
  if (!/^TASK\s+PID\s+STATUS\s*$/.test(header || '')) throw new Error(`unexpected tasks ls output: ${stdout.slice(0, 200)}`);
  return lines.filter((l) => l.trim()).map((l) => {
    const [id, pid, status] = l.trim().split(/\s+/);
    return { id, pid: Number(pid), status };
  });
}

/** Memory of one process from /proc: VmRSS, RssAnon, Pss (smaps_rollup), MiB. */
function memOf(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (text, key) => Number((text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) || [])[1]);
    let pss = NaN;
    try { pss = kb(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss'); } catch { /* old kernel */ }
    return { rss: kb(status, 'VmRSS') / 1024, anon: kb(status, 'RssAnon') / 1024, pss: pss / 1024 };
  } catch {
    return null; // gone
  }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** User + system CPU time of a process so far, in seconds (clock-tick resolution). */
function cpuSecondsOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

function sumMem(pids) {
  const mems = pids.map(memOf).filter(Boolean);
  const sum = (k) => mems.reduce((a, m) => a + m[k], 0);
  return { n: mems.length, rss: sum('rss'), anon: sum('anon'), pss: sum('pss') };
}

/** The filesystem type of a process's `/` (from its mountinfo): overlay for both daemons. */
function rootFsTypeOf(pid) {
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f[4] === '/') return f[f.indexOf('-') + 1];
    }
  } catch { /* gone */ }
  return null;
}

async function pool(items, width, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); }
  }));
  return out;
}

// ---------------------------------------------------------------------------------------
// the image and the floor's bundles

/** `node scripts/demo-image.js`: an OCI layout tar of busybox, built offline and cached. */
function demoImage(workDir) {
  const r = spawnSync(process.execPath, [path.join(REPO, 'scripts/demo-image.js')], { encoding: 'utf8', env: nodeChildEnv() });
  if (r.status !== 0) throw new Error(`scripts/demo-image.js failed: ${r.stderr || r.stdout}`);
  const tar = r.stdout.trim().split('\n').pop();
  // the layer's diff ID is the snapshot key to look for after the import (one layer: chain ID = diff ID)
  const layout = path.join(workDir, 'layout');
  fs.mkdirSync(layout);
  const x = spawnSync('tar', ['-xf', tar, '-C', layout], { encoding: 'utf8' });
  if (x.status !== 0) throw new Error(`tar -xf ${tar}: ${x.stderr}`);
  const blob = (digest) => path.join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const desc = index.manifests[0];
  const manifest = JSON.parse(fs.readFileSync(blob(desc.digest), 'utf8'));
  const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), 'utf8'));
  const ref = (desc.annotations || {})['io.containerd.image.name'] || 'docker.io/library/berth-demo:latest';
  if (config.rootfs.diff_ids.length !== 1) throw new Error('expected a one-layer demo image');
  return { tar, layout, ref, manifestDigest: desc.digest, layers: manifest.layers, chainId: config.rootfs.diff_ids[0], blob };
}

/** The image's rootfs in a plain dir for the floor's bundles: read-only, shared by all. */
function floorRootfs(image, dir) {
  fs.mkdirSync(dir);
  for (const layer of image.layers) {
    const x = spawnSync('tar', ['-xzf', image.blob(layer.digest), '-C', dir], { encoding: 'utf8' });
    if (x.status !== 0) throw new Error(`extracting ${layer.digest}: ${x.stderr}`);
  }
  // mount points runc can't make under a read-only root
  for (const d of ['proc', 'dev', 'sys']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  return dir;
}

/** `runc spec`'s defaults (namespaces, capabilities, masked paths...), once. */
function baseSpec(runc, dir) {
  fs.mkdirSync(dir);
  const r = spawnSync(runc, ['spec'], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`runc spec failed: ${r.stderr}`);
  return JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
}

/** A bundle for container `id` running `args`: its cgroup under this run's namespace. */
function writeBundle(ctx, id, args) {
  const dir = path.join(ctx.bundles, id);
  fs.mkdirSync(dir, { recursive: true });
  const spec = JSON.parse(JSON.stringify(ctx.spec));
  spec.process.terminal = false;
  spec.process.args = args;
  spec.root = { path: ctx.rootfs, readonly: true };
  spec.hostname = id;
  spec.linux.cgroupsPath = `/${live.namespace}/${id}`;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

// ---------------------------------------------------------------------------------------
// daemons

async function startSide(kind, ctx) {
  const d = await startDaemon(kind, ctx.opts);
  live.socks.add(d.sock);
  live.daemons.add(d);
  const c = ctx.clients;
  const t0 = performance.now();
  const imp = kind === 'berthd'
    ? await exec(c.berth(d, ['images', 'import', ctx.image.tar]), { timeoutMs: 180000 })
    : await exec(c.ctr(d, ['images', 'import', ctx.image.tar]), { timeoutMs: 180000 });
  mustOk(imp, `${kind}: images import`);
  d.importS = (performance.now() - t0) / 1000;
  // unpacked into overlayfs: the layer's snapshot is there, committed
  const snaps = mustOk(await exec(c.ctr(d, ['snapshots', '--snapshotter', 'overlayfs', 'ls'])), `${kind}: snapshots ls`).stdout;
  if (!snaps.split('\n').some((l) => l.startsWith(`${ctx.image.chainId} `) && /Committed/.test(l))) {
    throw new Error(`${kind}: the image was not unpacked into overlayfs (no committed ${ctx.image.chainId}):\n${snaps}`);
  }
  return d;
}

/** Deletes every task (forced) and container of this run's namespace on daemon `d`. */
async function emptyDaemon(ctx, d) {
  const c = ctx.clients;
  const tasks = parseTaskList(mustOk(await exec(c.ctr(d, ['tasks', 'ls'])), 'tasks ls').stdout);
  if (tasks.length) mustOk(await exec(c.ctr(d, ['tasks', 'delete', '-f', ...tasks.map((t) => t.id)]), { timeoutMs: 300000 }), 'tasks delete -f');
  const containers = mustOk(await exec(c.ctr(d, ['containers', 'ls', '-q'])), 'containers ls').stdout.split('\n').filter(Boolean);
  if (containers.length) mustOk(await exec(c.ctr(d, ['containers', 'delete', ...containers]), { timeoutMs: 300000 }), 'containers delete');
  return { tasks: tasks.map((t) => t.id), containers };
}

/** Stops a daemon after its shims are gone (waits up to 10 s for them, then SIGKILLs them). */
async function stopSide(d) {
  const killed = [];
  for (let i = 0; i < 100 && shimsOf(d.sock).length; i++) await sleep(100);
  for (const pid of shimsOf(d.sock)) { try { process.kill(pid, 'SIGKILL'); killed.push(pid); } catch { /* gone */ } }
  await stopDaemon(d);
  return { shimsKilled: killed };
}

async function floorLeftovers(ctx) {
  const r = mustOk(await exec(ctx.clients.runc(['list', '-q'])), 'runc list');
  return r.stdout.split('\n').filter(Boolean);
}

// ---------------------------------------------------------------------------------------
// phases 1 and 2: run --rm ... true

/** The four ways of running one `true`, each with a fresh id per call. */
function runJobs(ctx, sides, phase) {
  const c = ctx.clients;
  const { berthd, containerd } = sides;
  const seq = { n: 0 };
  const idFor = (letter) => `${letter}-${phase}-${++seq.n}`;
  const jobs = [];
  if (berthd) {
    jobs.push({ key: 'berth', label: 'berth CLI → berthd', optional: true, daemon: berthd, one: () => {
      const id = idFor('b'); trackId(berthd.sock, id);
      return exec(c.berth(berthd, ['run', '--rm', ctx.image.ref, id, 'true']));
    } });
    jobs.push({ key: 'ctr_berthd', label: 'ctr → berthd', optional: true, daemon: berthd, one: () => {
      const id = idFor('b'); trackId(berthd.sock, id);
      return exec(c.ctr(berthd, ['run', '--rm', ctx.image.ref, id, 'true']));
    } });
  }
  jobs.push({ key: 'containerd', label: 'ctr → containerd', daemon: containerd, one: () => {
    const id = idFor('c'); trackId(containerd.sock, id);
    return exec(c.ctr(containerd, ['run', '--rm', ctx.image.ref, id, 'true']));
  } });
  jobs.push({ key: 'floor_runc', label: 'floor: runc run (bundle, no daemon)', one: () => {
    const id = idFor('f');
    const bundle = writeBundle(ctx, id, ['true']);
    return exec(c.runc(['run', '--bundle', bundle, id]));
  } });
  return jobs;
}

/**
 * Phase 1's jobs, and `version` through each CLI against its own daemon: what the client's
 * start-up and one round trip cost, to read the berth CLI's row against.
 */
function serialJobs(ctx, sides) {
  const c = ctx.clients;
  const jobs = runJobs(ctx, sides, 's');
  if (sides.berthd) jobs.push({ key: 'berth_version', label: 'berth CLI → berthd: version', optional: true, one: () => exec(c.berth(sides.berthd, ['version'])) });
  jobs.push({ key: 'ctr_version', label: 'ctr → containerd: version', one: () => exec(c.ctr(sides.containerd, ['version'])) });
  return jobs.map((j) => ({
    ...j,
    run: async () => {
      const cpu0 = j.daemon ? cpuSecondsOf(j.daemon.pid) : null;
      const r = await j.one();
      mustOk(r, j.label);
      return { s: r.s, daemonCpuS: j.daemon ? cpuSecondsOf(j.daemon.pid) - cpu0 : null };
    },
  }));
}

function concurrentJobs(ctx, sides, n) {
  return runJobs(ctx, sides, 'p').map((j) => ({
    ...j,
    run: async () => {
      const cpu0 = j.daemon ? cpuSecondsOf(j.daemon.pid) : null;
      const t0 = performance.now();
      const all = await Promise.all(Array.from({ length: n }, () => j.one()));
      const s = (performance.now() - t0) / 1000;
      const daemonCpuS = j.daemon ? (cpuSecondsOf(j.daemon.pid) - cpu0) / n : null;
      const failed = all.filter((r) => r.code !== 0);
      if (failed.length) throw new Error(`${j.label}: ${failed.length} of ${n} failed, e.g. (exit ${failed[0].code}) ${(failed[0].stderr || failed[0].stdout).trim().slice(-1000)}`);
      return { s, daemonCpuS, each: stats(all.map((r) => r.s)) };
    },
  }));
}

/** The daemon's CPU time per container run, mean over the timed samples, per job (ms). */
function daemonCpuMs(extras) {
  const out = {};
  for (const [k, list] of Object.entries(extras)) {
    const xs = list.map((e) => e.daemonCpuS).filter((x) => typeof x === 'number' && !Number.isNaN(x));
    if (xs.length) out[k] = Math.round((1000 * xs.reduce((a, b) => a + b, 0)) / xs.length * 10) / 10;
  }
  return out;
}

/** After a phase: nothing may be left; anything that is gets removed and reported. */
async function checkEmpty(ctx, sides) {
  const left = {};
  for (const [name, d] of Object.entries(sides)) {
    if (!d) continue;
    const r = await emptyDaemon(ctx, d);
    if (r.tasks.length || r.containers.length) left[name] = r;
  }
  const floor = await floorLeftovers(ctx);
  if (floor.length) {
    for (const id of floor) await exec(ctx.clients.runc(['delete', '-f', id]));
    left.floor = floor;
  }
  if (Object.keys(left).length) log(`  left behind (now removed): ${JSON.stringify(left)}`);
  return left;
}

// ---------------------------------------------------------------------------------------
// phase 3: memory with N running containers

async function memoryPhase(ctx) {
  const { opts, clients: c } = ctx;
  const n = opts.containers;
  const sides = {};
  if (!ctx.skipped.berth) {
    try {
      sides.berthd = await startSide('berthd', ctx);
    } catch (e) {
      ctx.skipped.berth = `berthd failed to start or import: ${e.message}`;
      log(`  ${ctx.skipped.berth}`);
    }
  }
  sides.containerd = await startSide('containerd', ctx);
  const result = { n, idleBefore: {}, startS: {}, readings: [], failed: {} };
  for (const [k, d] of Object.entries(sides)) result.idleBefore[k] = memOf(d.pid);

  const kinds = [...Object.keys(sides), 'floor'];
  const times = Object.fromEntries(kinds.map((k) => [k, []]));
  const floorIds = [];
  const cpu0 = Object.fromEntries(Object.entries(sides).map(([k, d]) => [k, cpuSecondsOf(d.pid)]));
  for (let i = 0; i < n; i++) {
    // rotated, so that no side always starts first
    const order = kinds.map((_, j) => kinds[(i + j) % kinds.length]);
    for (const k of order) {
      if (result.failed[k]) continue;
      let r;
      if (k === 'floor') {
        const id = `f-m-${i}`;
        const bundle = writeBundle(ctx, id, ['sleep', '600']);
        r = await exec(c.runc(['run', '--detach', '--bundle', bundle, id]), { output: false });
        if (r.code === 0) floorIds.push(id);
      } else {
        const id = `${k === 'berthd' ? 'b' : 'c'}-m-${i}`;
        trackId(sides[k].sock, id);
        r = await exec(c.ctr(sides[k], ['run', '-d', ctx.image.ref, id, 'sleep', '600']));
      }
      if (r.code !== 0) {
        const why = `${k}: run -d failed (exit ${r.code}): ${(r.stderr || r.stdout || '').trim().slice(-1000)}`;
        if (k !== 'berthd') throw new Error(why);
        result.failed[k] = why;
        ctx.skipped['memory.berthd'] = why;
        log(`  ${why}\n  (leaving berthd out of the memory phase)`);
        continue;
      }
      times[k].push(r.s);
    }
  }
  for (const k of kinds) result.startS[k] = stats(times[k]);
  result.daemonCpuMsPerStart = Object.fromEntries(Object.entries(sides).map(([k, d]) => [k, Math.round((cpuSecondsOf(d.pid) - cpu0[k]) * 1000 / n)]));
  log(`  ${n} containers running per side (load ${readLoadavg()}); settling ${opts.settleMs} ms`);
  await sleep(opts.settleMs);

  // whose processes: the daemon, its shims (by -address), its tasks' init pids
  const pidsOf = {};
  for (const [k, d] of Object.entries(sides)) {
    if (result.failed[k]) continue;
    const tasks = parseTaskList(mustOk(await exec(c.ctr(d, ['tasks', 'ls'])), `${k}: tasks ls`).stdout);
    const notRunning = tasks.filter((t) => t.status !== 'RUNNING');
    if (tasks.length !== n || notRunning.length) throw new Error(`${k}: expected ${n} running tasks, got ${JSON.stringify(tasks)}`);
    pidsOf[k] = { daemon: d.pid, shims: shimsOf(d.sock), inits: tasks.map((t) => t.pid) };
    result[`${k}RootFs`] = [...new Set(pidsOf[k].inits.map(rootFsTypeOf))];
    if (result[`${k}RootFs`].join() !== 'overlay') log(`  note: ${k}'s containers have / on ${result[`${k}RootFs`].join(', ')}, not overlay`);
  }
  const floorState = JSON.parse(mustOk(await exec(c.runc(['list', '--format', 'json'])), 'runc list').stdout || '[]') || [];
  const floorRunning = floorState.filter((s) => floorIds.includes(s.id) && s.status === 'running');
  if (floorRunning.length !== n) throw new Error(`floor: expected ${n} running containers, got ${JSON.stringify(floorState.map((s) => [s.id, s.status]))}`);
  pidsOf.floor = { inits: floorRunning.map((s) => s.pid) };
  result.pids = pidsOf;

  // 5 readings 300 ms apart; the median of each figure
  for (let i = 0; i < 5; i++) {
    const reading = {};
    for (const [k, p] of Object.entries(pidsOf)) {
      reading[k] = {
        daemon: p.daemon ? memOf(p.daemon) : null,
        shims: p.shims ? sumMem(p.shims) : null,
        inits: sumMem(p.inits),
      };
    }
    result.readings.push(reading);
    if (i < 4) await sleep(300);
  }
  const med = (k, part, field) => {
    const xs = result.readings.map((r) => r[k]?.[part]?.[field]).filter((x) => typeof x === 'number' && !Number.isNaN(x));
    return xs.length ? quantile(xs, 0.5) : null;
  };
  result.median = {};
  for (const k of Object.keys(pidsOf)) {
    const m = {};
    for (const part of ['daemon', 'shims', 'inits']) {
      for (const field of ['rss', 'anon', 'pss']) m[`${part}_${field}`] = med(k, part, field);
    }
    m.shimCount = pidsOf[k].shims ? pidsOf[k].shims.length : 0;
    result.median[k] = m;
  }
  log(`  memory read (load ${readLoadavg()}); removing the containers`);

  // cleanup: through each daemon, then the floor's, then the daemons
  result.cleanup = {};
  for (const [k, d] of Object.entries(sides)) {
    const t0 = performance.now();
    result.cleanup[k] = await emptyDaemon(ctx, d).catch((e) => ({ error: e.message }));
    result.cleanup[k].s = (performance.now() - t0) / 1000;
  }
  for (const id of floorIds) mustOk(await exec(c.runc(['delete', '-f', id])), `runc delete -f ${id}`);
  const floorLeft = await floorLeftovers(ctx);
  if (floorLeft.length) result.cleanup.floorLeft = floorLeft;
  for (const [k, d] of Object.entries(sides)) Object.assign(result.cleanup[k], await stopSide(d));
  return result;
}

// ---------------------------------------------------------------------------------------
// output

function buildRows(res, opts) {
  const rows = [];
  const push = (label, b, c, floor, { digits = 2, ratio = true, floorOf = 'berth' } = {}) => {
    const fr = floorOf === 'berth' ? b : floorOf === 'containerd' ? c : undefined;
    rows.push({
      label,
      berth: b ?? null,
      containerd: c ?? null,
      ratio: ratio ? ratioStr(b, c) : '—',
      floor: floor ?? null,
      berthToFloor: fr === undefined ? '—' : ratioStr(fr, floor),
      cells: [label, fmt(b, digits), fmt(c, digits), ratio ? ratioStr(b, c) : '—', fmt(floor, digits), fr === undefined ? '—' : ratioStr(fr, floor)],
    });
  };
  const sectionRows = (phase, what) => {
    if (!phase) return;
    const m = (k, q = 'median') => phase.stats[k]?.[q];
    push(`${what}: berth CLI / ctr → own daemon, median (s)`, m('berth'), m('containerd'), m('floor_runc'));
    push(`${what}: berth CLI / ctr → own daemon, p90 (s)`, m('berth', 'p90'), m('containerd', 'p90'), m('floor_runc', 'p90'));
    push(`${what}: ctr → berthd / containerd, median (s)`, m('ctr_berthd'), m('containerd'), m('floor_runc'));
    push(`${what}: ctr → berthd / containerd, p90 (s)`, m('ctr_berthd', 'p90'), m('containerd', 'p90'), m('floor_runc', 'p90'));
    push(`${what}: containerd ÷ floor (last column)`, undefined, m('containerd'), m('floor_runc'), { ratio: false, floorOf: 'containerd' });
    const cpu = phase.daemonCpuMs || {};
    push(`${what}: daemon CPU/run, berth CLI / ctr (ms)`, cpu.berth, cpu.containerd, undefined, { digits: 0, floorOf: null });
    push(`${what}: daemon CPU/run, ctr / ctr (ms)`, cpu.ctr_berthd, cpu.containerd, undefined, { digits: 0, floorOf: null });
    if (phase.stats.ctr_version) push('client `version` round trip, berth CLI / ctr, median (s)', m('berth_version'), m('ctr_version'), undefined, { floorOf: null });
  };
  sectionRows(res.serial, 'run --rm, 1 at a time');
  sectionRows(res.concurrent, `run --rm, ${opts.concurrency} at once (wall)`);
  const mem = res.memory;
  if (mem) {
    const b = mem.median.berthd || {};
    const c = mem.median.containerd || {};
    const f = mem.median.floor || {};
    const n = mem.n;
    const opt = { digits: 1 };
    push('daemon idle, image imported, no containers: VmRSS (MiB)', mem.idleBefore.berthd?.rss, mem.idleBefore.containerd?.rss, undefined, { ...opt, floorOf: null });
    push(`with ${n} running: daemon VmRSS (MiB)`, b.daemon_rss, c.daemon_rss, undefined, { ...opt, floorOf: null });
    push(`with ${n} running: daemon RssAnon (MiB)`, b.daemon_anon, c.daemon_anon, undefined, { ...opt, floorOf: null });
    push(`with ${n} running: shims' VmRSS, sum (MiB)`, b.shims_rss, c.shims_rss, undefined, { ...opt, floorOf: null });
    push(`with ${n} running: daemon + shims, VmRSS (MiB)`, sum(b.daemon_rss, b.shims_rss), sum(c.daemon_rss, c.shims_rss), undefined, { ...opt, floorOf: null });
    push(`with ${n} running: daemon + shims, PSS (MiB)`, sum(b.daemon_pss, b.shims_pss), sum(c.daemon_pss, c.shims_pss), undefined, { ...opt, floorOf: null });
    push(`with ${n} running: containers' init VmRSS, sum (MiB)`, b.inits_rss, c.inits_rss, f.inits_rss, opt);
    const tb = sum(b.daemon_rss, b.shims_rss, b.inits_rss);
    const tc = sum(c.daemon_rss, c.shims_rss, c.inits_rss);
    push(`with ${n} running: total, daemon + shims + containers (MiB)`, tb, tc, f.inits_rss, opt);
    push('  above the floor: total − floor (MiB)', diff(tb, f.inits_rss), diff(tc, f.inits_rss), undefined, { ...opt, floorOf: null });
    push('  containerd\'s total ÷ floor (last column)', undefined, tc, f.inits_rss, { ...opt, ratio: false, floorOf: 'containerd' });
    push(`starting them: \`ctr run -d\` / \`runc run -d\`, median (s)`, mem.startS.berthd?.median, mem.startS.containerd?.median, mem.startS.floor?.median);
    push('starting them: daemon CPU per `ctr run -d` (ms)', mem.daemonCpuMsPerStart?.berthd, mem.daemonCpuMsPerStart?.containerd, undefined, { digits: 0, floorOf: null });
  }
  if (res.longRunning) {
    push('daemon VmRSS after phases 1–2, idle (MiB)', res.longRunning.berthd?.rss, res.longRunning.containerd?.rss, undefined, { digits: 1, floorOf: null });
  }
  return rows;
}

function sum(...xs) {
  return xs.some((x) => typeof x !== 'number' || Number.isNaN(x)) ? null : xs.reduce((a, b) => a + b, 0);
}

function diff(a, b) {
  return typeof a !== 'number' || typeof b !== 'number' ? null : a - b;
}

/** The figures that matter, on one line. */
function summaryLine(meta, res) {
  const r2 = (x) => (typeof x === 'number' && !Number.isNaN(x) ? Math.round(x * 1000) / 1000 : null);
  const phase = (p) => p && Object.fromEntries(Object.entries(p.stats).filter(([, s]) => s).map(([k, s]) => [k, { median: r2(s.median), p90: r2(s.p90) }]));
  const ratios = (p) => p && {
    berthCli: r2(p.stats.berth?.median / p.stats.containerd?.median),
    ctrToBerthd: r2(p.stats.ctr_berthd?.median / p.stats.containerd?.median),
  };
  const mem = res.memory && Object.fromEntries(Object.entries(res.memory.median).map(([k, m]) => [k, Object.fromEntries(Object.entries(m).map(([f, v]) => [f, r2(v)]))]));
  return JSON.stringify({
    benchmark: 'containers',
    at: meta.startedAt,
    loadavg: { start: meta.loadavgAtStart, end: meta.loadavgAtEnd },
    serial: phase(res.serial),
    serialRatio: ratios(res.serial),
    serialDaemonCpuMs: res.serial?.daemonCpuMs,
    concurrent: phase(res.concurrent),
    concurrentRatio: ratios(res.concurrent),
    concurrentDaemonCpuMs: res.concurrent?.daemonCpuMs,
    memoryMiB: mem,
  });
}

// ---------------------------------------------------------------------------------------
// main

async function main() {
  const opts = parseArgs(process.argv);
  for (const [name, f] of Object.entries({ containerd: opts.containerd, ctr: opts.ctr, runc: opts.runc })) {
    if (!f || !isExecutable(f)) throw new Error(`${name} not found${f ? ` at ${f}` : ''} (apt-get install containerd runc)`);
  }
  if (!isExecutable('/usr/bin/containerd-shim-runc-v2') && !fs.existsSync(path.join(path.dirname(opts.containerd), 'containerd-shim-runc-v2'))) {
    log('note: containerd-shim-runc-v2 not found next to containerd; runs will probably fail');
  }
  if (process.getuid && process.getuid() !== 0) log('note: containers need root; this will probably fail');
  if (path.join(opts.tmp, 'bk-XXXXXX', 'd.sock.ttrpc').length > 100) throw new Error(`--tmp ${opts.tmp} is too long for unix socket paths`);
  if (fs.existsSync('/etc/berth/config.toml')) log('note: /etc/berth/config.toml exists and berthd will read it');
  live.runc = opts.runc;

  const removedEnv = setNodeChildEnv(opts.inheritNodeEnv);
  if (removedEnv.length) log(`berthd and the berth CLI run without ${removedEnv.join(', ')} (--inherit-node-env keeps them)`);
  const skipped = {};
  if (opts.skipBerth) skipped.berth = '--skip-berth';
  else {
    for (const f of [opts.berthd, opts.berth]) {
      if (!fs.existsSync(f)) { skipped.berth = `${f} does not exist (build first: npx tsc -b tsconfig.build.json)`; break; }
    }
  }
  if (skipped.berth) log(`berth skipped: ${skipped.berth}`);

  const started = new Date();
  const meta = {
    benchmark: 'containers',
    startedAt: started.toISOString(),
    argv: process.argv.slice(2),
    loadavgAtStart: readLoadavg(),
    host: {
      hostname: os.hostname(),
      kernel: os.release(),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memTotalMiB: Math.round(os.totalmem() / MiB),
      cgroup: fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : 'v1 (or hybrid)',
    },
    node: process.version,
    git: gitInfo(),
    binaries: { berthd: opts.berthd, berth: opts.berth, containerd: opts.containerd, ctr: opts.ctr, runc: opts.runc },
    versions: {
      ctr: spawnSync(opts.ctr, ['--version'], { encoding: 'utf8' }).stdout.trim(),
      runc: spawnSync(opts.runc, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0],
    },
    namespace: live.namespace,
    nodeEnvRemoved: removedEnv,
    options: {
      samples: opts.samples, warmup: opts.warmup, concurrency: opts.concurrency, concRounds: opts.concRounds,
      containers: opts.containers, settleMs: opts.settleMs, only: opts.only,
    },
    method: {
      serial: 'wall time from spawn() to exit of `berth|ctr -a SOCK -n NS run --rm IMAGE ID true` (fresh ID each), against one long-running daemon per side with the image imported and unpacked into overlayfs; exit code 0 checked',
      floor: '`runc --root DIR run --bundle B ID` of a bundle from `runc spec` (terminal off, args as the others, the image\'s layer extracted once into a shared read-only rootfs): no daemon, no shim, no snapshot',
      concurrent: 'N of the same at once with distinct ids: wall time from the first spawn() until every process has exited; all must exit 0',
      memory: 'fresh daemons with the image imported; N × `ctr run -d IMAGE ID sleep 600` per side (the same client for both) and N × `runc run -d` for the floor, rotated; after --settle-ms, 5 readings 300 ms apart of /proc/PID/status (VmRSS, RssAnon) and smaps_rollup (Pss) of the daemon, of its shims (containerd-shim-runc-v2 processes whose -address is the daemon\'s socket) and of the tasks\' init processes; medians',
      order: 'each round runs every job once, rotated so each job takes each position equally often; warm-up rounds discarded',
    },
  };
  log(`load: ${meta.loadavgAtStart}`);

  const workDir = makeTempDir(opts.tmp, 'bk-work-');
  live.floorRoot = path.join(workDir, 'runc');
  const ctx = { opts, skipped, clients: clients(opts), bundles: path.join(workDir, 'bundles') };
  ctx.image = demoImage(workDir);
  ctx.rootfs = floorRootfs(ctx.image, path.join(workDir, 'rootfs'));
  ctx.spec = baseSpec(opts.runc, path.join(workDir, 'spec'));
  meta.image = { ref: ctx.image.ref, tar: ctx.image.tar, manifest: ctx.image.manifestDigest, chainId: ctx.image.chainId, layers: ctx.image.layers };
  log(`image ${ctx.image.ref} (${ctx.image.manifestDigest.slice(0, 19)}…), namespace ${live.namespace}`);
  const results = {};

  // ---- phases 1 and 2: one long-running daemon per side
  if (opts.only !== 'memory') {
    const sides = { berthd: null, containerd: null };
    if (!skipped.berth) {
      try {
        sides.berthd = await startSide('berthd', ctx);
      } catch (e) {
        skipped.berth = `berthd failed to start or import: ${e.message}`;
        log(`berth skipped: ${skipped.berth}`);
      }
    }
    sides.containerd = await startSide('containerd', ctx);
    meta.importS = Object.fromEntries(Object.entries(sides).filter(([, d]) => d).map(([k, d]) => [k, Math.round(d.importS * 1000) / 1000]));

    if (opts.only !== 'concurrent') {
      log(`1/3 run --rm … true, one at a time: ${opts.samples} samples each (+${opts.warmup} warm-up round${opts.warmup === 1 ? '' : 's'})`);
      const jobs = serialJobs(ctx, sides);
      const r = await runRounds('serial', jobs, { opts });
      results.serial = {
        jobs: jobs.map(({ key, label }) => ({ key, label })),
        stats: Object.fromEntries(jobs.map((j) => [j.key, stats(r.samples[j.key])])),
        daemonCpuMs: daemonCpuMs(r.extras),
        rounds: r.rounds,
        failed: r.failed,
        leftBehind: await checkEmpty(ctx, sides),
      };
      ctx.serialJobs = jobs;
      for (const k of Object.keys(r.failed)) skipped[`serial.${k}`] = r.failed[k];
    }
    if (opts.only !== 'serial') {
      log(`2/3 ${opts.concurrency} × run --rm … true at once: ${opts.concRounds} rounds (+1 warm-up round)`);
      const jobs = concurrentJobs(ctx, sides, opts.concurrency);
      const r = await runRounds('concurrent', jobs, { opts: { ...opts, warmup: 1, samples: opts.concRounds } }, { between: () => sleep(500) });
      results.concurrent = {
        n: opts.concurrency,
        jobs: jobs.map(({ key, label }) => ({ key, label })),
        stats: Object.fromEntries(jobs.map((j) => [j.key, stats(r.samples[j.key])])),
        perProcessS: Object.fromEntries(Object.entries(r.extras).map(([k, e]) => [k, e.map((x) => x.each)])),
        daemonCpuMs: daemonCpuMs(r.extras),
        rounds: r.rounds,
        failed: r.failed,
        leftBehind: await checkEmpty(ctx, sides),
      };
      ctx.concurrentJobs = jobs;
      for (const k of Object.keys(r.failed)) skipped[`concurrent.${k}`] = r.failed[k];
    }
    results.longRunning = Object.fromEntries(Object.entries(sides).filter(([, d]) => d).map(([k, d]) => [k, memOf(d.pid)]));
    for (const d of Object.values(sides)) if (d) await stopSide(d);
  }

  // ---- phase 3: memory
  if (opts.only === null || opts.only === 'memory') {
    log(`3/3 memory with ${opts.containers} running containers per side (fresh daemons)`);
    results.memory = await memoryPhase(ctx);
  }

  // ---- output
  meta.finishedAt = new Date().toISOString();
  meta.loadavgAtEnd = readLoadavg();
  meta.skipped = skipped;
  const rounds = [...(results.serial?.rounds || []), ...(results.concurrent?.rounds || [])].map((x) => x.loadavg[0]);
  if (rounds.length) meta.loadavg1mDuringRounds = { min: Math.min(...rounds), max: Math.max(...rounds) };

  const rows = buildRows(results, opts);
  const head = ['', 'berth', 'containerd', 'ratio b/c', 'floor', 'b/floor'];
  let text = `\nberth containers benchmark${opts.quick ? ' (--quick)' : ''}: ${meta.host.cpus} CPUs; image ${ctx.image.ref} (busybox, overlayfs)\n`
    + `/proc/loadavg at start: ${meta.loadavgAtStart}\n/proc/loadavg at end:   ${meta.loadavgAtEnd}\n`;
  if (meta.loadavg1mDuringRounds) text += `1-min load during the rounds: ${meta.loadavg1mDuringRounds.min.toFixed(2)}–${meta.loadavg1mDuringRounds.max.toFixed(2)}\n`;
  text += `\n${renderTable(head, rows.map((r) => r.cells))}\n`;
  text += '\nratio b/c: berth ÷ containerd (time or memory: lower is better, goal ≤ 1.00x). b/floor: the berth column ÷ the floor.'
    + '\nfloor (time): `runc run` of a bundle, no daemon; floor (memory): the init processes of N `runc run -d` containers.\n';
  if (results.serial) text += `\n${detailTable('run --rm … true, one at a time (s)', ctx.serialJobs, results.serial.stats, 's')}\n`;
  if (results.concurrent) text += `\n${detailTable(`${opts.concurrency} at once, wall (s)`, ctx.concurrentJobs, results.concurrent.stats, 's')}\n`;
  if (results.memory) {
    const m = results.memory.median;
    text += `\nshims: ${Object.entries(m).filter(([k]) => k !== 'floor').map(([k, v]) => `${k} ${v.shimCount}`).join(', ')}`
      + `; containers' / on: ${['berthd', 'containerd'].map((k) => results.memory[`${k}RootFs`] && `${k} ${results.memory[`${k}RootFs`].join(',')}`).filter(Boolean).join(', ')}\n`;
  }
  if (removedEnv.length) text += `\nberthd and the berth CLI ran without ${removedEnv.join(', ')} (see --inherit-node-env)\n`;
  for (const [k, why] of Object.entries(skipped)) text += `\n${k} skipped: ${String(why).split('\n')[0]}\n`;
  process.stdout.write(text);

  // cleanup before writing (it is part of the run; a failure here should show)
  leftoversDone = true;
  meta.leftoversRemovedAtEnd = removeLeftoversSync();
  meta.mountsLeftInTempDirs = [...tempDirs].flatMap((d) => mountsBelow(d));
  for (const dir of [...tempDirs]) removeTempDir(dir);

  const line = summaryLine(meta, results);
  const out = opts.out ?? path.join(__dirname, 'results', `containers-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({ meta, table: rows.map(({ cells, ...r }) => r), results }, null, 2)}\n`);
  process.stdout.write(`\n${line}\n\nresults: ${path.relative(process.cwd(), out) || out}\n`);
}

main().then(
  () => { removeLeftoversOnce(); cleanupSync(); process.exit(0); },
  (err) => {
    process.stderr.write(`containers benchmark failed: ${err && err.stack ? err.stack : err}\n`);
    removeLeftoversOnce();
    cleanupSync();
    process.exit(1);
  },
);
