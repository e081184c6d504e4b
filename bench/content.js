#!/usr/bin/env node
'use strict';
/*
 * berth content benchmark: berthd and containerd 1.6 side by side, in one run.
 *
 *   1. `content fetch` of a 5-layer image (~70 MB gzip / ~185 MB tar, built by this script
 *      and pushed with skopeo to Debian's docker-registry on 127.0.0.1, plain HTTP) into a
 *      cold content store (a fresh daemon on fresh dirs for every sample, started before
 *      the timer):
 *        - `berth -a SOCK content fetch --plain-http REF` against berthd,
 *        - `ctr -a SOCK content fetch --plain-http REF` against berthd (the daemon without
 *          berth's Node CLI),
 *        - `ctr -a SOCK content fetch --plain-http REF` against containerd,
 *        - floor: curl download + sha256 + fsync of the same blobs,
 *        - reference: the same in this Node process (http.get + sha256 + fsync);
 *   2. 200 MiB content ingest:
 *        - berth's LocalContentStore writer in this process vs `dd conv=fsync`,
 *        - `berth content ingest` (gRPC Write) against berthd, `ctr content ingest` against
 *          berthd and against containerd, each into a fresh daemon.
 *
 * Every round runs every job once, rotated so that each job takes each position equally
 * often. Plain CommonJS, no build step of its own (berth must be built):
 *   node bench/content.js [--quick]            See bench/README.md.
 */

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { pipeline } = require('stream/promises');
const { Transform } = require('stream');
const { performance } = require('perf_hooks');
const {
  REPO, MiB, cleanupSync, makeTempDir, removeTempDir, tempDirs, runContainerdState,
  log, quantile, stats, isExecutable, which, sha256hex, loadavg,
  setNodeChildEnv, nodeChildEnv, timeSpawn, run, cliNodeArgs,
  keystream, textPool, tarHeader, gzip, OCI, startRegistry, stopRegistry,
  withFreshDaemon, windowOf, checkOk, windowsOf, withFd, runRounds,
  fmt, ratioStr, renderTable, detailTable, gitInfo,
} = require('./common');

// ---------------------------------------------------------------------------------------
// options

function usage() {
  return `usage: node bench/content.js [options]

  --quick               smoke test: 2 samples each (+1 warm-up), a 1/4-size image
  --samples N           timed samples per job (default 5)
  --warmup N            discarded rounds before them (default 1)
  --image-mb N          uncompressed size of the image's 5 layer tars, MB (default 185)
  --ingest-mib N        size of the ingest blob, MiB (default 200)
  --no-prewarm          don't warm each fresh daemon with a tiny fetch / ingest before the timer
  --only fetch|ingest   run one phase
  --skip-berth          containerd and floors only
  --cpu-prof DIR        run berthd and the berth CLI with node --cpu-prof into DIR (kept; for
                        diagnosis, not for figures: see bench/cpuprofile-top.js)
  --delete-as-we-go     delete each sample's files right after it instead of at the end
  --berthd FILE         berthd entry point (default cmd/berthd/lib/main.js)
  --berth FILE          berth CLI entry point (default cmd/berth/lib/main.js)
  --containerd FILE     containerd binary (default /usr/bin/containerd)
  --ctr FILE            ctr binary (default /usr/bin/ctr)
  --inherit-node-env    keep NODE_OPTIONS / NODE_EXTRA_CA_CERTS for berthd and the berth CLI
  --tmp DIR             parent of the temp dirs (default /tmp; keep it short: socket paths)
  --out FILE            JSON result file (default bench/results/content-<timestamp>.json)
  -h, --help            this text
`;
}

function parseArgs(argv) {
  const o = {
    quick: false,
    samples: undefined,
    warmup: undefined,
    imageMb: undefined,
    ingestMiB: 200,
    prewarm: true,
    only: null,
    skipBerth: false,
    cpuProfDir: null,
    deleteAsWeGo: false,
    berthd: path.join(REPO, 'cmd/berthd/lib/main.js'),
    berth: path.join(REPO, 'cmd/berth/lib/main.js'),
    containerd: '/usr/bin/containerd',
    ctr: '/usr/bin/ctr',
    inheritNodeEnv: false,
    tmp: '/tmp',
    out: undefined,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} wants a non-negative number, got ${v}`);
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
      case '--samples': o.samples = Math.max(1, Math.round(num(a, next()))); break;
      case '--warmup': o.warmup = Math.round(num(a, next())); break;
      case '--image-mb': o.imageMb = num(a, next()); break;
      case '--ingest-mib': o.ingestMiB = Math.max(1, Math.round(num(a, next()))); break;
      case '--no-prewarm': o.prewarm = false; break;
      case '--only': o.only = next(); if (!['fetch', 'ingest'].includes(o.only)) throw new Error('--only fetch|ingest'); break;
      case '--skip-berth': o.skipBerth = true; break;
      case '--cpu-prof': o.cpuProfDir = path.resolve(next()); break;
      case '--delete-as-we-go': o.deleteAsWeGo = true; break;
      case '--berthd': o.berthd = path.resolve(next()); break;
      case '--berth': o.berth = path.resolve(next()); break;
      case '--containerd': o.containerd = path.resolve(next()); break;
      case '--ctr': o.ctr = path.resolve(next()); break;
      case '--inherit-node-env': o.inheritNodeEnv = true; break;
      case '--tmp': o.tmp = path.resolve(next()); break;
      case '--out': o.out = path.resolve(next()); break;
      case '-h': case '--help': process.stdout.write(usage()); process.exit(0); break;
      default: throw new Error(`unknown option ${a}\n${usage()}`);
    }
  }
  o.samples ??= o.quick ? 2 : 5;
  o.warmup ??= 1;
  o.imageMb ??= o.quick ? 185 / 4 : 185;
  return o;
}

// ---------------------------------------------------------------------------------------
// the image: 5 gzip layers of deterministic, realistically compressible tar data (the
// primitives, keystream, textPool and tarHeader, are in common.js)

// Share of the layer bytes that are incompressible (already-compressed assets, random
// data): with the text at ~21 %, 21 % of random bytes puts a layer at ~38 % of its tar
// size: 185 MB of tar gives ~70 MB of gzip, as in the reference image.
const RANDOM_SHARE = 0.21;
const LAYER_SHARES = [0.39, 0.28, 0.18, 0.1, 0.05];

/** The tar of layer `index`: a directory of 1 MiB files, text or random bytes. */
function layerTar(index, size, pool) {
  const random = keystream(`berth-bench-layer-${index}`);
  const pick = keystream(`berth-bench-slices-${index}`);
  const parts = [tarHeader(`layer${index}/`, 0, '5')];
  let done = 0;
  let randomDone = 0;
  for (let f = 0; done < size; f++) {
    const fileSize = Math.min(MiB, Math.max(size - done, 4096));
    const isRandom = randomDone + fileSize / 2 <= RANDOM_SHARE * (done + fileSize);
    let data;
    if (isRandom) {
      data = random(fileSize);
      randomDone += fileSize;
    } else {
      data = Buffer.allocUnsafe(fileSize);
      for (let at = 0; at < fileSize;) {
        const p = pick(8);
        const len = Math.min(fileSize - at, 64 * 1024 + (p.readUInt32LE(0) % (448 * 1024)));
        const from = p.readUInt32LE(4) % (pool.length - len);
        pool.copy(data, at, from, from + len);
        at += len;
      }
    }
    parts.push(tarHeader(`layer${index}/${isRandom ? 'asset' : 'log'}-${String(f).padStart(3, '0')}.${isRandom ? 'bin' : 'txt'}`, fileSize));
    parts.push(data);
    const pad = (512 - (fileSize % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
    done += 512 + fileSize + pad;
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

async function buildImageLayout(dir, totalBytes) {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const putBlob = (mediaType, data) => {
    const hex = sha256hex(data);
    fs.writeFileSync(path.join(blobs, hex), data);
    return { mediaType, digest: `sha256:${hex}`, size: data.length };
  };
  const image = async (tag, tars) => {
    const gz = await Promise.all(tars.map(gzip)); // zlib runs on the thread pool: both CPUs
    const layers = gz.map((g) => putBlob(OCI.layerGzip, g));
    const config = putBlob(OCI.config, Buffer.from(JSON.stringify({
      created: '1970-01-01T00:00:00Z',
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: tars.map((t) => `sha256:${sha256hex(t)}`) },
      history: tars.map((_, i) => ({ created: '1970-01-01T00:00:00Z', created_by: `berth bench layer ${i}` })),
    })));
    const manifest = putBlob(OCI.manifest, Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI.manifest,
      config,
      layers,
    })));
    return { tag, manifest, config, layers, tarBytes: tars.map((t) => t.length) };
  };

  const pool = textPool(8 * MiB);
  const tars = LAYER_SHARES.map((share, i) => layerTar(i, Math.round(totalBytes * share), pool));
  const big = await image('big', tars);
  const tiny = await image('tiny', [layerTar(9, 64 * 1024, pool)]);
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [big, tiny].map((im) => ({ ...im.manifest, annotations: { 'org.opencontainers.image.ref.name': im.tag } })),
  }));
  return { big, tiny };
}

// ---------------------------------------------------------------------------------------
// fetch floors

/**
 * curl + sha256 + fsync: GET the manifest by tag, then every blob at once (containerd 1.6's
 * ctr fetches a manifest's children without a limit), each `curl | tee FILE | sha256sum`,
 * then `sync FILE` (fsync). Digests are checked after the timer.
 */
function curlScript(reg, image) {
  const q = (s) => `'${s}'`;
  const repoUrl = `${reg.url}/v2/bench/big`;
  const lines = [
    'set -e',
    `curl -sfS -H ${q(`Accept: ${OCI.manifest}`)} ${q(`${repoUrl}/manifests/latest`)} | tee manifest | sha256sum > manifest.sha256`,
    'sync manifest',
  ];
  for (const d of [image.config, ...image.layers]) {
    const hex = d.digest.slice(7);
    lines.push(`( curl -sfS ${q(`${repoUrl}/blobs/${d.digest}`)} | tee ${hex} | sha256sum > ${hex}.sha256 && sync ${hex} ) &`);
  }
  lines.push('wait');
  return lines.join('\n');
}

function checkCurlFloor(dir, image) {
  const want = [['manifest', image.manifest], ...[image.config, ...image.layers].map((d) => [d.digest.slice(7), d])];
  for (const [file, d] of want) {
    const got = fs.readFileSync(path.join(dir, `${file}.sha256`), 'utf8').split(/\s/)[0];
    if (`sha256:${got}` !== d.digest) throw new Error(`curl floor: ${file} hashed to ${got}, expected ${d.digest}`);
  }
}

/** The same in this process: http.get, hashing on the way into a file, fsync (flush) before close. */
async function nodeFloor(reg, image, dir) {
  const agent = new http.Agent({ keepAlive: true });
  const get = (urlPath, headers) => new Promise((resolve, reject) => {
    const req = http.get(`${reg.url}${urlPath}`, { agent, headers }, (res) => {
      if (res.statusCode !== 200) { res.resume(); reject(new Error(`GET ${urlPath}: ${res.statusCode}`)); return; }
      resolve(res);
    });
    req.on('error', reject);
  });
  const save = async (res, file, digest) => {
    const hash = crypto.createHash('sha256');
    const tap = new Transform({ transform(chunk, _enc, cb) { hash.update(chunk); cb(null, chunk); } });
    await pipeline(res, tap, fs.createWriteStream(path.join(dir, file), { flush: true }));
    const got = `sha256:${hash.digest('hex')}`;
    if (digest && got !== digest) throw new Error(`node floor: ${file} hashed to ${got}, expected ${digest}`);
  };
  try {
    const t0 = performance.now();
    await save(await get('/v2/bench/big/manifests/latest', { Accept: OCI.manifest }), 'manifest', image.manifest.digest);
    await Promise.all([image.config, ...image.layers].map(async (d) =>
      save(await get(`/v2/bench/big/blobs/${d.digest}`), d.digest.slice(7), d.digest)));
    return (performance.now() - t0) / 1000;
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------
// jobs: each returns { s, extra } for one sample; `warm` samples are discarded

async function contentDigests(ctx, d) {
  const r = await run(ctx.opts.ctr, ['-a', d.sock, 'content', 'ls', '-q']);
  return new Set(r.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
}

async function expectContent(ctx, d, digests, what) {
  const have = await contentDigests(ctx, d);
  const missing = digests.filter((x) => !have.has(x));
  if (missing.length) throw new Error(`${what}: ${missing.length} blob(s) missing after the run: ${missing.join(', ')}`);
}

function fetchJobs(ctx) {
  const { opts, reg, images } = ctx;
  const big = `${reg.host}/bench/big:latest`;
  const tiny = `${reg.host}/bench/tiny:latest`;
  const all = [images.big.manifest, images.big.config, ...images.big.layers].map((d) => d.digest);
  const berthCli = (d, ref) => timeSpawn(process.execPath, [...cliNodeArgs(opts), opts.berth, '-a', d.sock, 'content', 'fetch', '--plain-http', ref], { env: nodeChildEnv() });
  const ctrCli = (d, ref) => timeSpawn(opts.ctr, ['-a', d.sock, 'content', 'fetch', '--plain-http', ref]);
  // `version` with the same client against the same daemon, after the timed fetch: roughly
  // what the client's start-up and one round trip cost, to read the fetch times against.
  berthCli.version = (d) => timeSpawn(process.execPath, [opts.berth, '-a', d.sock, 'version'], { env: nodeChildEnv() });
  ctrCli.version = (d) => timeSpawn(opts.ctr, ['-a', d.sock, 'version']);
  const viaDaemon = (key, label, kind, cli) => ({
    key,
    label,
    optional: kind === 'berthd',
    async run() {
      return withFreshDaemon(kind, ctx, async (d) => checkOk(await cli(d, tiny), `${label} (pre-warm)`), async (d) => {
        const r = checkOk(await cli(d, big), label);
        await expectContent(ctx, d, all, label);
        const v = await cli.version(d);
        return { s: r.s, output: r.stdout.slice(-600), window: windowOf(d, r), versionS: v.code === 0 ? v.s : null };
      });
    },
  });
  const jobs = [];
  if (!ctx.skipped.berth) {
    jobs.push(viaDaemon('berth', 'berth CLI → berthd', 'berthd', berthCli));
    jobs.push(viaDaemon('ctr_berthd', 'ctr → berthd', 'berthd', ctrCli));
  }
  jobs.push(viaDaemon('containerd', 'ctr → containerd', 'containerd', ctrCli));
  jobs.push({
    key: 'floor_curl',
    label: 'floor: curl + sha256 + fsync',
    async run() {
      const dir = makeTempDir(opts.tmp);
      try {
        const r = checkOk(await timeSpawn('/bin/sh', ['-c', curlScript(reg, images.big)], { cwd: dir }), 'curl floor');
        checkCurlFloor(dir, images.big);
        return { s: r.s };
      } finally {
        if (opts.deleteAsWeGo) removeTempDir(dir);
      }
    },
  });
  jobs.push({
    key: 'ref_node',
    label: 'reference: in-process Node http.get + sha256 + fsync',
    async run() {
      const dir = makeTempDir(opts.tmp);
      try {
        return { s: await nodeFloor(reg, images.big, dir) };
      } finally {
        if (opts.deleteAsWeGo) removeTempDir(dir);
      }
    },
  });
  return jobs;
}

function ingestJobs(ctx) {
  const { opts, ingest } = ctx;
  const berthCli = (d, ref, file, size, digest) => withFd(file, (fd) => timeSpawn(process.execPath,
    [...cliNodeArgs(opts), opts.berth, '-a', d.sock, 'content', 'ingest', ref, '--expected-size', String(size), '--expected-digest', digest],
    { env: nodeChildEnv(), stdin: fd }));
  const ctrCli = (d, ref, file, size, digest) => withFd(file, (fd) => timeSpawn(opts.ctr,
    ['-a', d.sock, 'content', 'ingest', '--expected-size', String(size), '--expected-digest', digest, ref], { stdin: fd }));
  const viaDaemon = (key, label, kind, cli) => ({
    key,
    label,
    optional: kind === 'berthd',
    async run() {
      return withFreshDaemon(kind, ctx,
        async (d) => checkOk(await cli(d, 'bench-prewarm', ingest.smallFile, ingest.smallSize, ingest.smallDigest), `${label} (pre-warm)`),
        async (d) => {
          const r = checkOk(await cli(d, 'bench-ingest', ingest.file, ingest.size, ingest.digest), label);
          await expectContent(ctx, d, [ingest.digest], label);
          return { s: r.s, window: windowOf(d, r) };
        });
    },
  });
  const jobs = [];
  if (!ctx.skipped.berth) {
    jobs.push({
      key: 'store',
      optional: true,
      label: 'berth LocalContentStore writer, in-process',
      async run() {
        const { LocalContentStore } = ctx.contentLocal;
        const root = makeTempDir(opts.tmp);
        try {
          const store = new LocalContentStore(root);
          if (opts.prewarm) {
            const w = await store.writer({ ref: 'prewarm', expected: { size: ingest.smallSize, digest: ingest.smallDigest } });
            await w.write(ingest.data.subarray(0, ingest.smallSize));
            await w.commit(ingest.smallSize, ingest.smallDigest);
          }
          // as plugins/content-local/bench/write-throughput.js: 64 KiB chunks, commit (fsync + rename)
          const chunk = 64 * 1024;
          const t0 = performance.now();
          const writer = await store.writer({ ref: 'bench', expected: { size: ingest.size, digest: ingest.digest } });
          for (let at = 0; at < ingest.size; at += chunk) await writer.write(ingest.data.subarray(at, at + chunk));
          await writer.commit(ingest.size, ingest.digest);
          return { s: (performance.now() - t0) / 1000 };
        } finally {
          if (opts.deleteAsWeGo) removeTempDir(root);
        }
      },
    });
    jobs.push(viaDaemon('berth', 'berth CLI → berthd (content ingest)', 'berthd', berthCli));
    jobs.push(viaDaemon('ctr_berthd', 'ctr → berthd (content ingest)', 'berthd', ctrCli));
  }
  jobs.push(viaDaemon('containerd', 'ctr → containerd (content ingest)', 'containerd', ctrCli));
  jobs.push({
    key: 'floor_dd',
    label: 'floor: dd bs=1M conv=fsync',
    async run() {
      const dir = makeTempDir(opts.tmp);
      try {
        const r = checkOk(await timeSpawn(ctx.ddBin, ['if=/dev/zero', `of=${path.join(dir, 'dd.out')}`, 'bs=1M', `count=${ingest.size / MiB}`, 'conv=fsync']), 'dd');
        return { s: r.s };
      } finally {
        if (opts.deleteAsWeGo) removeTempDir(dir);
      }
    },
  });
  return jobs;
}

// ---------------------------------------------------------------------------------------
// output

function buildRows(res) {
  const rows = [];
  const push = (label, b, c, floor, { digits = 2, ratio = true, floorRatio = 'berth' } = {}) => {
    const fr = floorRatio === 'berth' ? b : floorRatio === 'containerd' ? c : undefined;
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
  const f = res.fetch;
  if (f) {
    const m = (k, q = 'median') => f.stats[k]?.[q];
    const floor = m('floor_curl');
    push('fetch: berth CLI / ctr → own daemon, median (s)', m('berth'), m('containerd'), floor);
    push('fetch: berth CLI / ctr → own daemon, p90 (s)', m('berth', 'p90'), m('containerd', 'p90'), f.stats.floor_curl?.p90);
    push('fetch: ctr → berthd / containerd, median (s)', m('ctr_berthd'), m('containerd'), floor);
    push('fetch: ctr → berthd / containerd, p90 (s)', m('ctr_berthd', 'p90'), m('containerd', 'p90'), f.stats.floor_curl?.p90);
    // what the client's start-up and one round trip cost, to read the fetch rows against
    const v = (k) => f.clientVersionS?.[k]?.median;
    push('client `version` round trip, berth CLI / ctr (s)', v('berth'), v('containerd'), undefined, { floorRatio: null });
    push('fetch floor: curl + sha256 + fsync (s)', floor, floor, floor, { ratio: false, floorRatio: null });
    push('fetch ref: in-process Node http + sha256 + fsync (s)', m('ref_node'), undefined, floor, { ratio: false });
    push('daemon peak RSS during fetch, median (MiB)', f.peakRss.berth, f.peakRss.containerd, undefined, { digits: 1, floorRatio: null });
  }
  const g = res.ingest;
  if (g) {
    const rate = (k) => g.rates[k];
    const dd = rate('floor_dd');
    push('ingest: berth CLI / ctr → own daemon (MB/s, higher is better)', rate('berth'), rate('containerd'), dd, { digits: 0 });
    push('ingest: ctr → berthd / containerd (MB/s)', rate('ctr_berthd'), rate('containerd'), dd, { digits: 0 });
    push('ingest: ctr → containerd (MB/s; last column: containerd ÷ dd)', undefined, rate('containerd'), dd, { digits: 0, ratio: false, floorRatio: 'containerd' });
    push('ingest: LocalContentStore writer, in-process (MB/s)', rate('store'), undefined, dd, { digits: 0, ratio: false });
    push('ingest floor: dd bs=1M conv=fsync (MB/s)', dd, dd, dd, { digits: 0, ratio: false, floorRatio: null });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------
// main

async function main() {
  const opts = parseArgs(process.argv);
  const need = { containerd: opts.containerd, ctr: opts.ctr };
  for (const [name, f] of Object.entries(need)) {
    if (!isExecutable(f)) throw new Error(`${name} not found at ${f} (apt-get install containerd)`);
  }
  const tools = {};
  for (const t of ['docker-registry', 'skopeo', 'curl', 'dd', 'tee', 'sha256sum', 'sync']) {
    tools[t] = which(t);
    const needed = t === 'dd' ? opts.only !== 'fetch' : ['docker-registry', 'skopeo', 'curl', 'tee', 'sha256sum', 'sync'].includes(t) ? opts.only !== 'ingest' : true;
    if (needed && !tools[t]) throw new Error(`${t} not found on PATH (docker-registry, skopeo, curl and coreutils are needed)`);
  }
  if (process.getuid && process.getuid() !== 0) log('note: containerd needs root; this will probably fail');
  const socketLen = path.join(opts.tmp, 'bc-XXXXXX', 'd.sock.ttrpc').length;
  if (socketLen > 100) throw new Error(`--tmp ${opts.tmp} is too long for unix socket paths`);
  if (fs.existsSync('/etc/berth/config.toml')) log('note: /etc/berth/config.toml exists and berthd will read it');
  const runContainerdBefore = runContainerdState();

  const removedEnv = setNodeChildEnv(opts.inheritNodeEnv);
  if (removedEnv.length) log(`berthd and the berth CLI run without ${removedEnv.join(', ')} (--inherit-node-env keeps them)`);
  const skipped = {};
  if (opts.skipBerth) skipped.berth = '--skip-berth';
  else {
    for (const f of [opts.berthd, opts.berth, path.join(REPO, 'plugins/content-local/lib/index.js')]) {
      if (!fs.existsSync(f)) { skipped.berth = `${f} does not exist (build first: npx tsc -b tsconfig.build.json)`; break; }
    }
  }
  if (skipped.berth) log(`berth skipped: ${skipped.berth}`);
  if (opts.cpuProfDir) fs.mkdirSync(opts.cpuProfDir, { recursive: true });

  const started = new Date();
  const ingestSize = opts.ingestMiB * MiB;
  const meta = {
    benchmark: 'content',
    startedAt: started.toISOString(),
    argv: process.argv.slice(2),
    host: {
      hostname: os.hostname(),
      kernel: os.release(),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memTotalMiB: Math.round(os.totalmem() / MiB),
      loadavgAtStart: loadavg(),
    },
    node: process.version,
    git: gitInfo(),
    berthd: opts.berthd,
    berthCli: opts.berth,
    containerd: opts.containerd,
    ctr: opts.ctr,
    tools,
    nodeEnvRemoved: removedEnv,
    samples: opts.samples,
    warmupRounds: opts.warmup,
    prewarm: opts.prewarm,
    tmp: opts.tmp,
    method: {
      fetch: 'wall time from spawn() to exit of `berth|ctr -a SOCK content fetch --plain-http 127.0.0.1:PORT/bench/big:latest`, each on a fresh daemon (fresh temp dirs) started before the timer and, unless --no-prewarm, warmed by fetching bench/tiny:latest with the same client; blobs checked with `ctr content ls -q` after the timer',
      fetchFloor: '`sh -c`: curl manifest by tag | tee | sha256sum, sync; then every blob at once: curl | tee FILE | sha256sum && sync FILE (fsync); digests checked after the timer',
      fetchNodeReference: 'in the bench process: http.get (keep-alive agent) piped through a sha256 Transform into fs.createWriteStream({flush: true}), manifest then all blobs at once',
      ingest: 'wall time of `berth content ingest REF --expected-size N --expected-digest D` / `ctr content ingest ...` with stdin a file of random bytes (in the page cache), each on a fresh daemon started before the timer (pre-warmed by a 1 MiB ingest unless --no-prewarm)',
      store: 'in the bench process, as plugins/content-local/bench/write-throughput.js: LocalContentStore on a fresh dir, writer() + 64 KiB write()s + commit (fsync, rename)',
      dd: '`dd if=/dev/zero of=FILE bs=1M count=N conv=fsync` on the same filesystem',
      order: 'each round runs every job once, rotated so each job takes each position equally often; warm-up rounds discarded',
      deletion: opts.deleteAsWeGo
        ? 'each sample\'s files are deleted right after it (--delete-as-we-go)'
        : 'every sample\'s files stay until the end of the run: no mass delete while measuring (ext4 here has no journal; deletes slow later file creation)',
      mb: '1 MB = 10^6 bytes',
    },
  };

  const workDir = makeTempDir(opts.tmp, 'bc-work-');
  const ctx = { opts, skipped, ddBin: tools.dd };
  const results = {};

  // disk space: everything stays until the end unless --keep-going
  const fetchRounds = opts.only === 'ingest' ? 0 : opts.warmup + opts.samples;
  const ingestRounds = opts.only === 'fetch' ? 0 : opts.warmup + opts.samples;
  const estGzip = opts.imageMb * 1e6 * 0.38;
  const needBytes = fetchRounds * 5 * estGzip + ingestRounds * 5 * ingestSize + 3 * estGzip + ingestSize;
  try {
    const sfs = fs.statfsSync(opts.tmp);
    const free = sfs.bavail * sfs.bsize;
    meta.diskFreeAtStartGB = Math.round(free / 1e8) / 10;
    if (!opts.deleteAsWeGo && free < needBytes + 5e9) {
      log(`note: ${(free / 1e9).toFixed(1)} GB free under ${opts.tmp}, keeping every sample needs ~${(needBytes / 1e9).toFixed(1)} GB: deleting as we go`);
      opts.deleteAsWeGo = true;
      meta.method.deletion = 'each sample\'s files are deleted right after it (not enough free disk to keep them)';
    }
  } catch { /* statfs unsupported */ }

  // ---- phase 1: fetch
  let reg = null;
  if (opts.only !== 'ingest') {
    log(`1/2 fetch: building the image (${opts.imageMb.toFixed(0)} MB of tar in 5 gzip layers) and pushing it to a local registry`);
    const t0 = performance.now();
    const layout = path.join(workDir, 'layout');
    const images = await buildImageLayout(layout, Math.round(opts.imageMb * 1e6));
    const big = images.big;
    const gzipBytes = big.layers.reduce((a, l) => a + l.size, 0);
    const tarBytes = big.tarBytes.reduce((a, b) => a + b, 0);
    meta.image = {
      ref: 'bench/big:latest',
      layers: big.layers.map((l, i) => ({ digest: l.digest, gzipBytes: l.size, tarBytes: big.tarBytes[i] })),
      gzipMB: Math.round(gzipBytes / 1e4) / 100,
      tarMB: Math.round(tarBytes / 1e4) / 100,
      manifest: big.manifest,
      config: big.config,
      buildSeconds: 0,
    };
    log(`  5 layers: ${(gzipBytes / 1e6).toFixed(1)} MB gzip / ${(tarBytes / 1e6).toFixed(1)} MB tar (${(100 * gzipBytes / tarBytes).toFixed(0)} %), built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const regDir = path.join(workDir, 'registry');
    fs.mkdirSync(regDir);
    reg = await startRegistry(regDir, tools['docker-registry']);
    for (const tag of ['big', 'tiny']) {
      await run(tools.skopeo, ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false', '--preserve-digests',
        `oci:${layout}:${tag}`, `docker://${reg.host}/bench/${tag}:latest`], { env: process.env });
    }
    fs.rmSync(layout, { recursive: true, force: true }); // the registry has its own copy
    meta.image.buildSeconds = Math.round((performance.now() - t0) / 100) / 10;
    meta.registry = { host: reg.host, bin: tools['docker-registry'] };
    ctx.reg = reg;
    ctx.images = images;

    log(`  ${opts.samples} samples each (+${opts.warmup} warm-up round${opts.warmup === 1 ? '' : 's'}), fresh daemon per sample${opts.prewarm ? ', pre-warmed with bench/tiny' : ''}`);
    const jobs = fetchJobs(ctx);
    const r = await runRounds('fetch', jobs, ctx);
    const st = Object.fromEntries(jobs.map((j) => [j.key, stats(r.samples[j.key])]));
    const peak = (k) => quantile((r.extras[k] || []).map((e) => e.daemonPeak?.hwmMiB).filter((x) => x), 0.5);
    results.fetch = {
      jobs: jobs.map(({ key, label }) => ({ key, label })),
      stats: st,
      peakRss: { berth: peak('berth'), ctr_berthd: peak('ctr_berthd'), containerd: peak('containerd') },
      clientVersionS: Object.fromEntries(['berth', 'ctr_berthd', 'containerd'].map((k) =>
        [k, stats((r.extras[k] || []).map((e) => e.versionS).filter((x) => x !== null && x !== undefined))])),
      daemonReadyMs: Object.fromEntries(['berth', 'ctr_berthd', 'containerd'].map((k) => [k, r.extras[k]?.map((e) => Math.round(e.readyMs))])),
      firstOutput: Object.fromEntries(Object.entries(r.extras).map(([k, e]) => [k, e[0]?.output]).filter(([, v]) => v)),
      windows: windowsOf(r.extras),
      rounds: r.rounds,
      failed: r.failed,
    };
    ctx.fetchJobs = jobs;
    for (const k of Object.keys(r.failed)) skipped[`fetch.${k}`] = r.failed[k];
    await stopRegistry(reg);
  }

  // ---- phase 2: ingest
  if (opts.only !== 'fetch') {
    log(`2/2 ingest: ${opts.ingestMiB} MiB, ${opts.samples} samples each (+${opts.warmup} warm-up round${opts.warmup === 1 ? '' : 's'})`);
    if (!skipped.berth) {
      require('reflect-metadata');
      ctx.contentLocal = require(path.join(REPO, 'plugins/content-local/lib'));
    }
    const data = keystream('berth-bench-ingest')(ingestSize);
    const file = path.join(workDir, 'ingest.bin');
    fs.writeFileSync(file, data);
    const small = data.subarray(0, MiB);
    const smallFile = path.join(workDir, 'ingest-small.bin');
    fs.writeFileSync(smallFile, small);
    ctx.ingest = {
      data, file, size: ingestSize, digest: `sha256:${sha256hex(data)}`,
      smallFile, smallSize: small.length, smallDigest: `sha256:${sha256hex(small)}`,
    };
    await run('/bin/sync', []).catch(() => {});
    const jobs = ingestJobs(ctx);
    const r = await runRounds('ingest', jobs, ctx);
    const st = Object.fromEntries(jobs.map((j) => [j.key, stats(r.samples[j.key])]));
    const mb = ingestSize / 1e6;
    for (const j of jobs) j.mb = mb;
    results.ingest = {
      bytes: ingestSize,
      jobs: jobs.map(({ key, label }) => ({ key, label })),
      stats: st,
      rates: Object.fromEntries(jobs.map((j) => [j.key, st[j.key] ? Math.round(mb / st[j.key].median) : null])),
      peakRss: Object.fromEntries(['berth', 'ctr_berthd', 'containerd'].map((k) => [k, quantile((r.extras[k] || []).map((e) => e.daemonPeak?.hwmMiB).filter((x) => x), 0.5)])),
      windows: windowsOf(r.extras),
      rounds: r.rounds,
      failed: r.failed,
    };
    ctx.ingestJobs = jobs;
    for (const k of Object.keys(r.failed)) skipped[`ingest.${k}`] = r.failed[k];
  }

  // ---- output
  meta.finishedAt = new Date().toISOString();
  meta.host.loadavgAtEnd = loadavg();
  meta.skipped = skipped;
  const allRounds = [...(results.fetch?.rounds || []), ...(results.ingest?.rounds || [])].map((x) => x.loadavg[0]);
  meta.host.loadavg1mDuringRun = { min: Math.min(...allRounds), max: Math.max(...allRounds) };

  const rows = buildRows(results);
  const head = ['', 'berth', 'containerd', 'ratio b/c', 'floor', 'b/floor'];
  const title = `berth content benchmark${opts.quick ? ' (--quick)' : ''}: ${opts.samples} samples each${opts.prewarm ? '' : ' (--no-prewarm)'}; `
    + `${meta.host.cpus} CPUs, load ${meta.host.loadavgAtStart.map((x) => x.toFixed(2)).join(' ')} at start, `
    + `${meta.host.loadavgAtEnd.map((x) => x.toFixed(2)).join(' ')} at end (1-min ${meta.host.loadavg1mDuringRun.min.toFixed(2)}–${meta.host.loadavg1mDuringRun.max.toFixed(2)} during)`;
  let text = `\n${title}\n`;
  const what = [];
  if (meta.image) what.push(`image: 127.0.0.1:PORT/bench/big:latest, 5 layers, ${meta.image.gzipMB} MB gzip / ${meta.image.tarMB} MB tar`);
  if (results.ingest) what.push(`ingest: ${opts.ingestMiB} MiB`);
  text += `${what.join('; ')}\n`;
  text += `\n${renderTable(head, rows.map((r) => r.cells))}\n`;
  text += '\nratio b/c: berth ÷ containerd (fetch: time, lower is better, goal ≤ 1.00x; ingest: MB/s, higher is better).'
    + '\nb/floor: the berth column ÷ the floor (fetch: time; ingest: MB/s, goal ≥ 0.80x).\n';
  if (results.fetch) text += `\n${detailTable('fetch (s)', ctx.fetchJobs, results.fetch.stats, 's')}\n`;
  if (results.ingest) text += `\n${detailTable(`ingest ${opts.ingestMiB} MiB (MB/s)`, ctx.ingestJobs, results.ingest.stats, 'MB/s')}\n`;
  if (removedEnv.length) text += `\nberthd and the berth CLI ran without ${removedEnv.join(', ')} (see --inherit-node-env)\n`;
  for (const [k, why] of Object.entries(skipped)) text += `\n${k} skipped: ${String(why).split('\n')[0]}\n`;
  process.stdout.write(text);

  // cleanup before writing (it is part of the run; a failure here should show)
  for (const dir of [...tempDirs]) removeTempDir(dir);
  meta.runContainerd = { before: runContainerdBefore, after: runContainerdState(), note: 'recorded only: never deleted (other users\' shims live there)' };
  if (opts.cpuProfDir) meta.cpuProfDir = opts.cpuProfDir;

  const out = opts.out ?? path.join(__dirname, 'results', `content-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({
    meta,
    table: rows.map(({ cells, ...r }) => r),
    results,
  }, null, 2)}\n`);
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), out) || out}\n`);
  if (opts.cpuProfDir) {
    process.stdout.write(`CPU profiles of berthd and the berth CLI: ${opts.cpuProfDir}\n`
      + `  node bench/cpuprofile-top.js --results ${path.relative(process.cwd(), out) || out} ${opts.cpuProfDir}/*.cpuprofile\n`);
  }
}

main().then(
  () => { cleanupSync(); process.exit(0); },
  (err) => {
    process.stderr.write(`content benchmark failed: ${err && err.stack ? err.stack : err}\n`);
    cleanupSync();
    process.exit(1);
  },
);
