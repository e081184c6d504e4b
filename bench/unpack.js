#!/usr/bin/env node
'use strict';
/*
 * berth unpack benchmark: berthd and containerd 1.6 side by side, in one run.
 *
 *   1. cold pull with unpack into overlayfs of a 5-layer image (~200 MB of tar, ~17k entries
 *      per layer like a distro layer plus a few big files; built once, deterministically,
 *      and cached) from Debian's docker-registry on 127.0.0.1:
 *        - `berth -a SOCK images pull --plain-http REF` against berthd,
 *        - `ctr -a SOCK images pull --plain-http --snapshotter overlayfs REF` against
 *          containerd,
 *      each on a fresh daemon on fresh dirs, started (and warmed with a tiny pull) before the
 *      timer;
 *   2. snapshot round trips on the pulled image's top chain ID, against one long-running
 *      instance of each daemon: `ctr snapshots prepare k PARENT`, `ctr snapshots mounts
 *      /tmp/x k`, `ctr snapshots rm k`; the same three calls through berth's client facade
 *      over gRPC (against both daemons) and in-process (createBerth on berthd's root).
 *
 * Jobs alternate, rotated every round. Plain CommonJS, no build step of its own (berth must
 * be built):   node bench/unpack.js [--quick]            See bench/README.md.
 */

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { performance } = require('perf_hooks');
const {
  REPO, MiB, makeTempDir, removeTempDirs, tempDirs, mountsBelow, runContainerdState,
  sleep, log, quantile, stats, isExecutable, which, sha256hex, loadavg,
  setNodeChildEnv, nodeChildEnv, timeSpawn, run, cliNodeArgs, startDaemon, stopDaemon,
  keystream, textPool, tarHeader, gzip, OCI, startRegistry, stopRegistry,
  withFreshDaemon, windowOf, checkOk, windowsOf, runRounds,
  fmt, ratioStr, renderTable, detailTable, gitInfo,
} = require('./common');

// ---------------------------------------------------------------------------------------
// options

function usage() {
  return `usage: node bench/unpack.js [options]

  --quick               smoke test: 2 samples, 20 round trips, a small image (4 × 4000 entries)
  --samples N           timed pulls per side (default 5)
  --warmup N            discarded pull rounds before them (default 1)
  --trips N             snapshot round trips per side (default 100; 10 more are discarded)
  --image-mb N          uncompressed size of the image's 5 layer tars, MB (default 200)
  --files-per-layer N   entries (files, dirs, links) per layer, on average (default 17000)
  --only pull|snapshots run one phase
  --skip-berth          containerd only
  --baseline DIR        also pull with the berthd and berth CLI built in checkout DIR (e.g. a
                        copy of the tree before a change), as another job in the same rounds;
                        may be given more than once
  --no-prewarm          don't warm each fresh daemon with a tiny pull before the timer
  --cpu-prof DIR        run berthd and the berth CLI with node --cpu-prof into DIR (for
                        diagnosis, not for figures: see bench/cpuprofile-top.js)
  --berthd-log-level L  berthd's --log-level (default warn; debug logs per-layer times)
  --delete-as-we-go     delete each sample's dirs right after it instead of at the end
  --cache DIR           where the built image is kept (default /var/tmp/berth-bench-cache)
  --rebuild             build the image again even if it is cached
  --berthd FILE         berthd entry point (default cmd/berthd/lib/main.js)
  --berth FILE          berth CLI entry point (default cmd/berth/lib/main.js)
  --containerd FILE     containerd binary (default /usr/bin/containerd)
  --ctr FILE            ctr binary (default /usr/bin/ctr)
  --inherit-node-env    keep NODE_OPTIONS / NODE_EXTRA_CA_CERTS for berthd and the berth CLI
  --tmp DIR             parent of the temp dirs (default /tmp; keep it short: socket paths)
  --out FILE            JSON result file (default bench/results/unpack-<timestamp>.json)
  -h, --help            this text
`;
}

function parseArgs(argv) {
  const o = {
    quick: false,
    samples: undefined,
    warmup: 1,
    trips: undefined,
    imageMb: undefined,
    filesPerLayer: undefined,
    only: null,
    skipBerth: false,
    baselines: [],
    prewarm: true,
    cpuProfDir: null,
    berthdLogLevel: 'warn',
    deleteAsWeGo: false,
    cache: '/var/tmp/berth-bench-cache',
    rebuild: false,
    berthd: path.join(REPO, 'cmd/berthd/lib/main.js'),
    berth: path.join(REPO, 'cmd/berth/lib/main.js'),
    containerd: '/usr/bin/containerd',
    ctr: '/usr/bin/ctr',
    inheritNodeEnv: false,
    tmp: '/tmp',
    tempPrefix: 'bu-',
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
      case '--trips': o.trips = Math.max(1, Math.round(num(a, next()))); break;
      case '--image-mb': o.imageMb = num(a, next()); break;
      case '--files-per-layer': o.filesPerLayer = Math.max(50, Math.round(num(a, next()))); break;
      case '--only': o.only = next(); if (!['pull', 'snapshots'].includes(o.only)) throw new Error('--only pull|snapshots'); break;
      case '--skip-berth': o.skipBerth = true; break;
      case '--baseline': o.baselines.push(path.resolve(next())); break;
      case '--no-prewarm': o.prewarm = false; break;
      case '--cpu-prof': o.cpuProfDir = path.resolve(next()); break;
      case '--berthd-log-level': o.berthdLogLevel = next(); break;
      case '--delete-as-we-go': o.deleteAsWeGo = true; break;
      case '--cache': o.cache = path.resolve(next()); break;
      case '--rebuild': o.rebuild = true; break;
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
  o.trips ??= o.quick ? 20 : 100;
  o.imageMb ??= o.quick ? 50 : 200;
  o.filesPerLayer ??= o.quick ? 4000 : 17000;
  return o;
}

// ---------------------------------------------------------------------------------------
// the image: 5 gzip layers shaped like a distro and the packages installed on it

const IMAGE_FORMAT = 2; // bump when the generator changes: the cache key includes it
const MTIME = 1700000000;
/** Entries per layer relative to --files-per-layer, and shares of the big-file bytes. */
const LAYER_ENTRY_SHARES = [1.05, 1.0, 0.95, 1.05, 0.95];
const LAYER_BIG_SHARES = [0.15, 0.35, 0.25, 0.15, 0.1];

/** Deterministic uniform numbers in [0, 1) from a seed (AES-CTR keystream). */
function prng(seed) {
  const bytes = keystream(seed);
  let buf = bytes(64 * 1024);
  let at = 0;
  const next = () => {
    if (at + 4 > buf.length) { buf = bytes(64 * 1024); at = 0; }
    const v = buf.readUInt32LE(at);
    at += 4;
    return v / 2 ** 32;
  };
  next.int = (n) => Math.floor(next() * n);
  next.pick = (list) => list[next.int(list.length)];
  /** Log-normal with the given median and shape, clamped to [lo, hi]. */
  next.logNormal = (median, sigma, lo, hi) => {
    const z = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    return Math.round(Math.min(hi, Math.max(lo, median * Math.exp(sigma * z))));
  };
  next.bytes = bytes;
  return next;
}

const LANGS = ['de', 'es', 'fr', 'it', 'ja', 'pt_BR', 'ru', 'zh_CN', 'pl', 'nl', 'sv', 'cs'];
const SHARE_KINDS = ['doc', 'locale', 'data', 'python', 'perl'];

/**
 * The entries of layer `index`: packages (docs, dpkg lists, binaries, libraries with their
 * symlinks, man pages, locale files, trees of small data or source files) until the layer
 * has its share of entries, then a few big files (random "libraries", text "databases")
 * for its share of the bytes left. Later layers list the parents they touch (as a docker
 * diff does), rewrite files of the base layer, delete some (whiteouts), and layer 3
 * replaces a directory (opaque). Base layer: a setuid binary, a file with a capability
 * xattr, hard links.
 */
function layerEntries(index, targetEntries, base) {
  const rnd = prng(`berth-unpack-layer-${index}`);
  const entries = new Map();
  const dir = (p, mode = 0o755) => {
    const parts = p.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!entries.has(d)) entries.set(d, { path: d, type: 'dir', mode: i === parts.length ? mode : 0o755 });
    }
  };
  const file = (p, size, kind, extra = {}) => {
    dir(path.posix.dirname(p));
    entries.set(p, { path: p, type: 'file', size, kind, mode: 0o644, ...extra });
  };
  const symlink = (p, target) => { dir(path.posix.dirname(p)); entries.set(p, { path: p, type: 'symlink', linkname: target, mode: 0o777 }); };
  const hardlink = (p, target) => { dir(path.posix.dirname(p)); entries.set(p, { path: p, type: 'hardlink', linkname: target, mode: 0o644 }); };

  if (index === 0) {
    for (const d of ['etc', 'usr/bin', 'usr/sbin', 'usr/lib/x86_64-linux-gnu', 'usr/share/doc', 'usr/share/man/man1', 'var/lib/dpkg/info', 'var/cache/apt', 'var/log', 'home', 'opt']) dir(d);
    dir('root', 0o700);
    dir('tmp', 0o1777);
    for (const [l, t] of [['bin', 'usr/bin'], ['sbin', 'usr/sbin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64']]) symlink(l, t);
    file('usr/bin/su', 60 * 1024, 'binary', { mode: 0o4755 });
    file('usr/bin/ping', 80 * 1024, 'binary', { mode: 0o755, xattrs: { 'security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex') } });
    file('etc/passwd', 1200, 'text');
    file('etc/shadow', 700, 'text', { mode: 0o640, gid: 42 });
    for (let i = 0; i < 60; i++) file(`var/cache/apt/archives/partial/pkg${i}.deb`, 2048, 'random');
  } else {
    // A docker diff lists the directories above what changed.
    for (const d of ['etc', 'usr/bin', 'usr/lib/x86_64-linux-gnu', 'usr/share/doc', 'var/lib/dpkg/info']) dir(d);
    // Upgrades rewrite base files; removals leave whiteouts.
    for (let i = 0; i < 150 && base.rewritable.length; i++) {
      const victim = base.rewritable[rnd.int(base.rewritable.length)];
      file(victim, rnd.logNormal(900, 1, 40, 32 * 1024), 'text');
    }
    for (let i = 0; i < 40 && base.removable.length; i++) {
      const victim = base.removable[(index * 40 + i) % base.removable.length];
      dir(path.posix.dirname(victim));
      entries.set(`${path.posix.dirname(victim)}/.wh.${path.posix.basename(victim)}`, { path: `${path.posix.dirname(victim)}/.wh.${path.posix.basename(victim)}`, type: 'file', size: 0, kind: 'text', mode: 0o644 });
    }
    if (index === 3) {
      dir('var/cache/apt');
      entries.set('var/cache/apt/.wh..wh..opq', { path: 'var/cache/apt/.wh..wh..opq', type: 'file', size: 0, kind: 'text', mode: 0o644 });
      for (let i = 0; i < 20; i++) file(`var/cache/apt/pkgcache-${i}.bin`, 4096, 'binary');
    }
  }

  for (let p = 0; entries.size < targetEntries; p++) {
    const pkg = `l${index}p${p}-${String.fromCharCode(97 + rnd.int(26))}${String.fromCharCode(97 + rnd.int(26))}${rnd.int(1000)}`;
    file(`usr/share/doc/${pkg}/copyright`, rnd.logNormal(1200, 0.8, 200, 40 * 1024), 'text');
    file(`usr/share/doc/${pkg}/changelog.Debian.gz`, rnd.logNormal(900, 0.8, 100, 30 * 1024), 'random');
    file(`var/lib/dpkg/info/${pkg}.list`, rnd.logNormal(500, 1, 40, 32 * 1024), 'text');
    file(`var/lib/dpkg/info/${pkg}.md5sums`, rnd.logNormal(700, 1, 40, 32 * 1024), 'text');
    if (index === 0) {
      base.rewritable.push(`var/lib/dpkg/info/${pkg}.list`);
      base.removable.push(`usr/share/doc/${pkg}/changelog.Debian.gz`);
    }
    if (rnd() < 0.4) {
      const bin = `usr/bin/${pkg}`;
      file(bin, rnd.logNormal(6 * 1024, 0.9, 1024, 256 * 1024), 'binary', { mode: 0o755 });
      if (rnd() < 0.1) hardlink(`usr/bin/${pkg}-alt`, bin);
      file(`usr/share/man/man1/${pkg}.1.gz`, rnd.logNormal(1400, 0.7, 200, 16 * 1024), 'random');
    }
    if (rnd() < 0.3) {
      const lib = `usr/lib/x86_64-linux-gnu/lib${pkg}.so.1.2.3`;
      file(lib, rnd.logNormal(10 * 1024, 0.9, 2048, 512 * 1024), 'binary');
      symlink(`usr/lib/x86_64-linux-gnu/lib${pkg}.so.1`, `lib${pkg}.so.1.2.3`);
    }
    if (rnd() < 0.2) file(`etc/${pkg}/${pkg}.conf`, rnd.logNormal(1200, 1, 60, 16 * 1024), 'text');
    const kind = rnd.pick(SHARE_KINDS);
    if (kind === 'locale') {
      for (const lang of LANGS.slice(0, 2 + rnd.int(LANGS.length - 2))) {
        file(`usr/share/locale/${lang}/LC_MESSAGES/${pkg}.mo`, rnd.logNormal(1500, 0.8, 200, 64 * 1024), 'binary');
      }
    } else {
      const root = kind === 'python' ? `usr/lib/python3/dist-packages/${pkg}` : kind === 'perl' ? `usr/share/perl5/${pkg}` : `usr/share/${pkg}`;
      const ext = kind === 'python' ? 'py' : kind === 'perl' ? 'pm' : kind === 'doc' ? 'html' : 'dat';
      const n = 3 + rnd.int(30);
      for (let f = 0; f < n; f++) {
        const sub = f % 7 === 0 ? '' : `${['core', 'util', 'data', 'ext'][f % 4]}/`;
        file(`${root}/${sub}f${f}.${ext}`, rnd.logNormal(500, 1.0, 0, 48 * 1024), kind === 'data' && f % 3 === 0 ? 'random' : 'text');
      }
    }
  }
  return { entries: [...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)), rnd };
}

/** One PAX extended header carrying `SCHILY.xattr.*` records. */
function paxHeader(name, xattrs) {
  const records = Object.entries(xattrs).map(([k, v]) => {
    const body = Buffer.concat([Buffer.from(` SCHILY.xattr.${k}=`), v, Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return Buffer.concat([Buffer.from(String(len)), body]);
  });
  const data = Buffer.concat(records);
  return [tarHeader(`PaxHeaders/${path.posix.basename(name)}`, data.length, 'x', { mtime: MTIME }), data, Buffer.alloc((512 - (data.length % 512)) % 512)];
}

/** Layer `index` as an uncompressed tar: its entries, then big files up to `bigBytes`. */
function layerTar(index, targetEntries, bigBytes, pool, base) {
  const { entries, rnd } = layerEntries(index, targetEntries, base);
  const random = keystream(`berth-unpack-bytes-${index}`);
  const text = (n) => {
    const from = rnd.int(pool.length - n);
    return pool.subarray(from, from + n);
  };
  // Executables: code-like runs of random bytes between tables and strings.
  const binary = (n) => {
    const out = Buffer.allocUnsafe(n);
    for (let at = 0; at < n;) {
      const len = Math.min(n - at, 512 + rnd.int(3584));
      const r = rnd();
      if (r < 0.45) random(len).copy(out, at);
      else if (r < 0.7) out.fill(0, at, at + len);
      else text(len).copy(out, at);
      at += len;
    }
    return out;
  };
  const dataOf = { text, random, binary };
  const parts = [];
  let files = 0;
  const add = (e, data) => {
    if (e.xattrs) parts.push(...paxHeader(e.path, e.xattrs));
    const type = { file: '0', dir: '5', symlink: '2', hardlink: '1' }[e.type];
    const name = e.type === 'dir' ? `${e.path}/` : e.path;
    parts.push(tarHeader(name, data ? data.length : 0, type, { mode: e.mode, gid: e.gid ?? 0, mtime: MTIME, linkname: e.linkname ?? '' }));
    if (data && data.length) {
      parts.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  };
  for (const e of entries) {
    if (e.type === 'file') files++;
    add(e, e.type === 'file' ? dataOf[e.kind](e.size) : null);
  }
  // The big files: random "libraries" (already-compressed models, assets) and text "databases".
  let big = 0;
  for (let k = 0; big < bigBytes; k++) {
    const size = Math.min(bigBytes - big, 2 * MiB + rnd.int(14 * MiB));
    if (size < 64 * 1024) break;
    const isText = k % 3 === 2;
    const e = { path: isText ? `usr/share/l${index}-data/db-${k}.sql` : `usr/lib/x86_64-linux-gnu/libl${index}big${k}.so.1`, type: 'file', mode: 0o644 };
    if (isText) {
      if (k === 2) add({ path: `usr/share/l${index}-data`, type: 'dir', mode: 0o755 });
      const data = Buffer.allocUnsafe(size);
      for (let at = 0; at < size;) {
        const len = Math.min(size - at, 64 * 1024 + rnd.int(448 * 1024));
        text(len).copy(data, at);
        at += len;
      }
      add(e, data);
    } else {
      add(e, random(size));
    }
    files++;
    big += size;
  }
  parts.push(Buffer.alloc(1024));
  return { tar: Buffer.concat(parts), entries: entries.length, files, bigBytes: big };
}

/** Small-file bytes of a layer, to size the big files so the image lands at --image-mb. */
function smallBytes(tars) {
  return tars.reduce((a, t) => a + t.tar.length - t.bigBytes, 0);
}

/**
 * Builds the OCI layout (`unpack`: 5 layers; `tiny`: one small layer, for pre-warming) into
 * the cache, once: the digests are the same on every run and machine.
 */
async function cachedImage(opts) {
  const key = `unpack-v${IMAGE_FORMAT}-${opts.imageMb}mb-${opts.filesPerLayer}f`;
  const dir = path.join(opts.cache, key);
  const metaFile = path.join(dir, 'image.json');
  if (!opts.rebuild && fs.existsSync(metaFile)) return { dir, layout: path.join(dir, 'layout'), cached: true, ...JSON.parse(fs.readFileSync(metaFile, 'utf8')) };
  fs.mkdirSync(opts.cache, { recursive: true });
  const building = fs.mkdtempSync(path.join(opts.cache, `${key}.building-`));
  try {
    const layout = path.join(building, 'layout');
    const blobs = path.join(layout, 'blobs', 'sha256');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const putBlob = (mediaType, data) => {
      const hex = sha256hex(data);
      fs.writeFileSync(path.join(blobs, hex), data);
      return { mediaType, digest: `sha256:${hex}`, size: data.length };
    };
    const image = async (tag, tars) => {
      const gz = await Promise.all(tars.map((t) => gzip(t.tar)));
      const layers = gz.map((g) => putBlob(OCI.layerGzip, g));
      const diffIDs = tars.map((t) => `sha256:${sha256hex(t.tar)}`);
      const config = putBlob(OCI.config, Buffer.from(JSON.stringify({
        created: '1970-01-01T00:00:00Z',
        architecture: process.arch === 'x64' ? 'amd64' : process.arch,
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: diffIDs },
        history: tars.map((_, i) => ({ created: '1970-01-01T00:00:00Z', created_by: `berth unpack bench layer ${i}` })),
      })));
      const manifest = putBlob(OCI.manifest, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.manifest, config, layers })));
      return {
        tag,
        manifest,
        config,
        diffIDs,
        layers: layers.map((l, i) => ({ ...l, tarBytes: tars[i].tar.length, entries: tars[i].entries, files: tars[i].files, bigBytes: tars[i].bigBytes })),
      };
    };
    const pool = textPool(8 * MiB);
    const target = opts.imageMb * 1e6;
    const perLayer = LAYER_ENTRY_SHARES.map((s) => Math.round(s * opts.filesPerLayer));
    // Sized in two passes: the small files first, then big files for what is left.
    const probeBase = { rewritable: [], removable: [] };
    const small = smallBytes(perLayer.map((n, i) => layerTar(i, n, 0, pool, probeBase)));
    const bigTotal = Math.max(0, target - small);
    const base = { rewritable: [], removable: [] };
    const tars = perLayer.map((n, i) => layerTar(i, n, Math.round(bigTotal * LAYER_BIG_SHARES[i]), pool, base));
    const big = await image('unpack', tars);
    const tiny = await image('tiny', [layerTar(9, 200, 0, pool, { rewritable: [], removable: [] })]);
    fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      manifests: [big, tiny].map((im) => ({ ...im.manifest, annotations: { 'org.opencontainers.image.ref.name': im.tag } })),
    }));
    const meta = { key, big, tiny };
    fs.writeFileSync(path.join(building, 'image.json'), JSON.stringify(meta, null, 2));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(building, dir);
    return { dir, layout: path.join(dir, 'layout'), cached: false, ...meta };
  } catch (err) {
    fs.rmSync(building, { recursive: true, force: true });
    throw err;
  }
}

/** containerd's chain IDs: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
function chainIDs(diffIDs) {
  const out = [];
  for (const d of diffIDs) out.push(out.length === 0 ? d : `sha256:${sha256hex(`${out[out.length - 1]} ${d}`)}`);
  return out;
}

// ---------------------------------------------------------------------------------------
// phase 1: cold pull with unpack

/** After the timer: the image is there and its whole chain is committed in overlayfs. */
async function expectUnpacked(ctx, d, ref, top, what) {
  const images = await run(ctx.opts.ctr, ['-a', d.sock, 'images', 'ls', '-q']);
  if (!images.stdout.split('\n').map((s) => s.trim()).includes(ref)) throw new Error(`${what}: image ${ref} is not listed after the pull`);
  const info = await run(ctx.opts.ctr, ['-a', d.sock, 'snapshots', '--snapshotter', 'overlayfs', 'info', top]);
  if (!/"Kind":\s*"Committed"/.test(info.stdout)) throw new Error(`${what}: snapshot ${top} is not committed:\n${info.stdout}`);
}

const baselineKey = (i) => `baseline${i + 1}`;

function pullJobs(ctx) {
  const { opts, reg, image } = ctx;
  const ref = `${reg.host}/bench/unpack:latest`;
  const tiny = `${reg.host}/bench/tiny:latest`;
  const top = chainIDs(image.big.diffIDs).pop();
  const berthCliOf = (berth) => {
    const cli = (d, r) => timeSpawn(process.execPath, [...cliNodeArgs(opts), berth, '-a', d.sock, 'images', 'pull', '--plain-http', r], { env: nodeChildEnv() });
    cli.version = (d) => timeSpawn(process.execPath, [berth, '-a', d.sock, 'version'], { env: nodeChildEnv() });
    return cli;
  };
  const berthCli = berthCliOf(opts.berth);
  const ctrCli = (d, r) => timeSpawn(opts.ctr, ['-a', d.sock, 'images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', r]);
  ctrCli.version = (d) => timeSpawn(opts.ctr, ['-a', d.sock, 'version']);
  const viaDaemon = (key, label, kind, cli, daemonCtx = ctx) => ({
    key,
    label,
    optional: kind === 'berthd',
    async run() {
      return withFreshDaemon(kind, daemonCtx, async (d) => checkOk(await cli(d, tiny), `${label} (pre-warm)`), async (d) => {
        const r = checkOk(await cli(d, ref), label);
        await expectUnpacked(ctx, d, ref, top, label);
        const v = await cli.version(d);
        return { s: r.s, output: r.stdout.slice(-600), daemonOutput: d.output().slice(-3000), window: windowOf(d, r), versionS: v.code === 0 ? v.s : null };
      });
    },
  });
  const jobs = [];
  if (!ctx.skipped.berth) jobs.push(viaDaemon('berth', 'berth images pull → berthd', 'berthd', berthCli));
  jobs.push(viaDaemon('containerd', 'ctr images pull → containerd', 'containerd', ctrCli));
  opts.baselines.forEach((dir, i) => {
    const baseOpts = { ...opts, berthd: path.join(dir, 'cmd/berthd/lib/main.js') };
    const label = `baseline ${i + 1}: berth images pull → berthd (${dir})`;
    jobs.push(viaDaemon(baselineKey(i), label, 'berthd', berthCliOf(path.join(dir, 'cmd/berth/lib/main.js')), { ...ctx, opts: baseOpts }));
  });
  return jobs;
}

// ---------------------------------------------------------------------------------------
// phase 2: snapshot round trips

/**
 * ctr prepare + mounts + rm of one key; seconds of the three, and each. ctr takes no lease,
 * so a garbage collection between the calls (either daemon collects unleased active
 * snapshots) can take the key: such a trip is counted and done again under a new key.
 */
async function ctrTrip(ctx, d, key, parent, attempt = 0) {
  const { ctr } = ctx.opts;
  const a = ['-a', d.sock, 'snapshots', '--snapshotter', 'overlayfs'];
  const collected = (r) => r.code !== 0 && /not found|does not exist/i.test(r.stderr) && attempt < 3;
  const retry = async () => {
    await timeSpawn(ctr, [...a, 'rm', key]);
    const r = await ctrTrip(ctx, d, `${key}-again`, parent, attempt + 1);
    return { ...r, collected: (r.collected || 0) + 1 };
  };
  const p = checkOk(await timeSpawn(ctr, [...a, 'prepare', key, parent]), `${d.kind}: ctr snapshots prepare`);
  const m = await timeSpawn(ctr, [...a, 'mounts', path.join(d.dir, 'x'), key]);
  if (collected(m)) return retry();
  checkOk(m, `${d.kind}: ctr snapshots mounts`);
  if (!m.stdout.includes('overlay')) throw new Error(`${d.kind}: ctr snapshots mounts printed no overlay mount: ${m.stdout}`);
  const r = await timeSpawn(ctr, [...a, 'rm', key]);
  if (collected(r)) return retry();
  checkOk(r, `${d.kind}: ctr snapshots rm`);
  return { s: p.s + m.s + r.s, prepare: p.s, mounts: m.s, rm: r.s };
}

/** The same three calls through a berth facade (connect() or createBerth()), under a lease. */
async function facadeTrip(snapshots, key, parent) {
  const t0 = performance.now();
  const mounts = await snapshots.prepare(key, parent);
  const t1 = performance.now();
  const again = await snapshots.mounts(key);
  const t2 = performance.now();
  await snapshots.remove(key);
  const t3 = performance.now();
  if (mounts.length !== 1 || again[0]?.type !== 'overlay') throw new Error(`facade prepare gave ${JSON.stringify(mounts)}`);
  return { s: (t3 - t0) / 1000, prepare: (t1 - t0) / 1000, mounts: (t2 - t1) / 1000, rm: (t3 - t2) / 1000 };
}

const floorTrip = async () => {
  let s = 0;
  for (let i = 0; i < 3; i++) s += checkOk(await timeSpawn('/usr/bin/true', []), 'true').s;
  return { s };
};

/**
 * Interleaves `trips` of each job (plus `warm` discarded ones), rotating the order every
 * round so that each job takes each position equally often.
 */
async function interleave(name, jobs, trips, warm) {
  const samples = Object.fromEntries(jobs.map((j) => [j.key, []]));
  for (let round = 0; round < warm + trips; round++) {
    const order = jobs.map((_, i) => jobs[(i + round) % jobs.length]);
    for (const job of order) {
      const r = await job.run(`bench-${job.key}-${round}`);
      if (round >= warm) samples[job.key].push(r);
    }
    if ((round + 1) % 25 === 0 || round + 1 === warm + trips) log(`  ${name}: ${round + 1}/${warm + trips} round trips, load ${loadavg()[0].toFixed(2)}`);
  }
  const out = {};
  for (const [k, list] of Object.entries(samples)) {
    out[k] = { trip: stats(list.map((x) => x.s)), collectedByGc: list.reduce((a, x) => a + (x.collected || 0), 0) };
    for (const part of ['prepare', 'mounts', 'rm']) if (list[0]?.[part] !== undefined) out[k][part] = stats(list.map((x) => x[part]));
  }
  return out;
}

async function snapshotPhase(ctx) {
  const { opts, reg, image, skipped } = ctx;
  const ref = `${reg.host}/bench/unpack:latest`;
  const parent = chainIDs(image.big.diffIDs).pop();
  const daemons = {};
  const result = { parent };
  try {
    for (const kind of skipped.berth ? ['containerd'] : ['berthd', 'containerd']) {
      const d = await startDaemon(kind, opts);
      daemons[kind] = d;
      const pull = kind === 'berthd'
        ? await timeSpawn(process.execPath, [opts.berth, '-a', d.sock, 'images', 'pull', '--plain-http', ref], { env: nodeChildEnv() })
        : await timeSpawn(opts.ctr, ['-a', d.sock, 'images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', ref]);
      checkOk(pull, `${kind}: pull for the snapshot round trips`);
      await expectUnpacked(ctx, d, ref, parent, kind);
    }
    await run('/bin/sync', []);
    log(`  ${opts.trips} round trips each (+10 discarded), alternating`);
    const ctrJobs = Object.values(daemons).map((d) => ({ key: d.kind === 'berthd' ? 'berth' : 'containerd', run: (key) => ctrTrip(ctx, d, key, parent) }));
    ctrJobs.push({ key: 'floor', run: floorTrip });
    result.ctr = await interleave('ctr snapshots prepare/mounts/rm', ctrJobs, opts.trips, 10);

    // berth's client facade over gRPC, against both daemons: the servers without ctr's start-up
    if (!skipped.berth) {
      require('reflect-metadata');
      const core = require(path.join(REPO, 'core/lib'));
      const clients = {};
      try {
        for (const d of Object.values(daemons)) clients[d.kind] = await core.connect(d.sock, { namespace: 'default' });
        const facadeJobs = [];
        for (const [kind, c] of Object.entries(clients)) {
          // Unleased active snapshots are garbage; a lease keeps each one until it is removed.
          const lease = await c.leases.create({ id: 'bench-unpack-trips' });
          const sn = c.withLease(lease.id).snapshots('overlayfs');
          facadeJobs.push({ key: kind === 'berthd' ? 'berth' : 'containerd', run: (key) => facadeTrip(sn, key, parent) });
        }
        result.grpcFacade = await interleave('facade over gRPC', facadeJobs, opts.trips, 10);
      } finally {
        for (const c of Object.values(clients)) await c.close().catch(() => {});
      }

      // in-process: createBerth on berthd's root (berthd stopped first), fresh state dir
      const d = daemons.berthd;
      await stopDaemon(d, { removeDir: false });
      const builtins = require(path.join(REPO, 'plugins/builtins/lib'));
      const state = makeTempDir(opts.tmp, 'bu-state-');
      const berth = await builtins.createBerth({ root: path.join(d.dir, 'root'), state });
      try {
        const lease = await berth.leases.create({ id: 'bench-unpack-in-process' });
        const sn = berth.withLease(lease.id).snapshots('overlayfs');
        result.inProcess = await interleave('in-process facade', [{ key: 'berth', run: (key) => facadeTrip(sn, key, parent) }], opts.trips, 10);
      } finally {
        await berth.close();
      }
    }
  } finally {
    for (const d of Object.values(daemons)) await stopDaemon(d, { removeDir: opts.deleteAsWeGo }).catch(() => {});
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// output

function buildRows(res) {
  const rows = [];
  const push = (label, b, c, { digits = 2, ratio = true, note = '' } = {}) => {
    const r = ratio ? ratioStr(b, c) : '—';
    rows.push({ label, berth: b ?? null, containerd: c ?? null, ratio: r, note, cells: [label, fmt(b, digits), fmt(c, digits), r, note] });
  };
  const p = res.pull;
  if (p) {
    const m = (k, q = 'median') => p.stats[k]?.[q];
    push('cold pull + unpack, median (s)', m('berth'), m('containerd'), { note: 'goal ≤ 0.80x' });
    push('cold pull + unpack, p90 (s)', m('berth', 'p90'), m('containerd', 'p90'));
    p.baselines.forEach((dir, i) => push(`  baseline ${i + 1} (${path.basename(dir)}), median (s)`, m(baselineKey(i)), m('containerd'), { note: '--baseline' }));
    push('  client `version` round trip, median (s)', p.clientVersionS.berth?.median, p.clientVersionS.containerd?.median, { note: 'CLI start-up share' });
    push('  daemon peak RSS during pull, median (MiB)', p.peakRss.berth, p.peakRss.containerd, { digits: 0 });
  }
  const s = res.snapshots;
  if (s) {
    const ms = (x) => (x === undefined || x === null ? undefined : x * 1000);
    const floor = ms(s.ctr.floor?.trip.median);
    const c = (k, part = 'trip') => ms(s.ctr[k]?.[part]?.median);
    push('ctr snapshots prepare+mounts+rm, median (ms)', c('berth'), c('containerd'), { digits: 1, note: 'goal ≤ 1.00x' });
    push('  − floor (3 × `true`), median (ms)', c('berth') - floor, c('containerd') - floor, { digits: 1 });
    for (const part of ['prepare', 'mounts', 'rm']) push(`  ctr snapshots ${part}, median (ms)`, c('berth', part), c('containerd', part), { digits: 1 });
    push('  floor: 3 × `true` (ms)', floor, floor, { digits: 1, ratio: false });
    if (s.grpcFacade) {
      const g = (k, part = 'trip') => ms(s.grpcFacade[k]?.[part]?.median);
      push('facade over gRPC: prepare+mounts+remove, median (ms)', g('berth'), g('containerd'), { digits: 2 });
      for (const part of ['prepare', 'mounts', 'rm']) push(`  facade over gRPC: ${part === 'rm' ? 'remove' : part} (ms)`, g('berth', part), g('containerd', part), { digits: 2 });
    }
    if (s.inProcess) {
      const i = (part = 'trip') => ms(s.inProcess.berth?.[part]?.median);
      push('in-process facade: prepare+mounts+remove, median (ms)', i(), undefined, { digits: 2, ratio: false });
      for (const part of ['prepare', 'mounts', 'rm']) push(`  in-process facade: ${part === 'rm' ? 'remove' : part} (ms)`, i(part), undefined, { digits: 2, ratio: false });
    }
  }
  return rows;
}

/** The one-line summary: medians and ratios. */
function summaryLine(meta, res) {
  const r3 = (x) => (x === undefined || x === null || Number.isNaN(x) ? null : Math.round(x * 1000) / 1000);
  const out = { benchmark: 'unpack', startedAt: meta.startedAt, loadavg: { start: meta.host.loadavgAtStart, end: meta.host.loadavgAtEnd }, image: meta.image && { tarMB: meta.image.tarMB, gzipMB: meta.image.gzipMB, entries: meta.image.entries } };
  if (res.pull) {
    const b = res.pull.stats.berth?.median;
    const c = res.pull.stats.containerd?.median;
    out.pull = { n: res.pull.stats.containerd?.n, berthS: r3(b), containerdS: r3(c), ratio: b && c ? r3(b / c) : null };
    if (res.pull.baselines.length) {
      out.pull.baselines = res.pull.baselines.map((dir, i) => {
        const base = res.pull.stats[baselineKey(i)]?.median;
        return { dir, s: r3(base), ratio: base && c ? r3(base / c) : null };
      });
    }
  }
  if (res.snapshots) {
    const s = res.snapshots;
    const b = s.ctr.berth?.trip.median;
    const c = s.ctr.containerd?.trip.median;
    out.snapshots = {
      n: s.ctr.containerd?.trip.n,
      ctrTripMs: { berth: r3(b && b * 1000), containerd: r3(c * 1000), floor: r3(s.ctr.floor?.trip.median * 1000), ratio: b ? r3(b / c) : null },
      grpcFacadeTripMs: s.grpcFacade && { berth: r3(s.grpcFacade.berth?.trip.median * 1000), containerd: r3(s.grpcFacade.containerd?.trip.median * 1000) },
      inProcessTripMs: s.inProcess && r3(s.inProcess.berth?.trip.median * 1000),
    };
  }
  return JSON.stringify(out);
}

// ---------------------------------------------------------------------------------------
// main

async function main() {
  const opts = parseArgs(process.argv);
  for (const [name, f] of Object.entries({ containerd: opts.containerd, ctr: opts.ctr })) {
    if (!isExecutable(f)) throw new Error(`${name} not found at ${f} (apt-get install containerd)`);
  }
  const tools = {};
  for (const t of ['docker-registry', 'skopeo']) {
    tools[t] = which(t);
    if (!tools[t]) throw new Error(`${t} not found on PATH (apt-get install docker-registry skopeo)`);
  }
  if (process.getuid && process.getuid() !== 0) throw new Error('run as root: both daemons mount and chown');
  if (path.join(opts.tmp, 'bu-XXXXXX', 'd.sock.ttrpc').length > 100) throw new Error(`--tmp ${opts.tmp} is too long for unix socket paths`);
  if (fs.existsSync('/etc/berth/config.toml')) log('note: /etc/berth/config.toml exists and berthd will read it');
  const runContainerdBefore = runContainerdState();
  const removedEnv = setNodeChildEnv(opts.inheritNodeEnv);
  if (removedEnv.length) log(`berthd and the berth CLI run without ${removedEnv.join(', ')} (--inherit-node-env keeps them)`);
  const skipped = {};
  if (opts.skipBerth) skipped.berth = '--skip-berth';
  else {
    const baseline = opts.baselines.flatMap((dir) => ['cmd/berthd/lib/main.js', 'cmd/berth/lib/main.js'].map((f) => path.join(dir, f)));
    for (const f of [opts.berthd, opts.berth, path.join(REPO, 'core/lib/index.js'), path.join(REPO, 'plugins/builtins/lib/index.js'), ...baseline]) {
      if (!fs.existsSync(f)) { skipped.berth = `${f} does not exist (build first: npx tsc -b tsconfig.build.json)`; break; }
    }
  }
  if (skipped.berth) log(`berth skipped: ${skipped.berth}`);
  if (opts.cpuProfDir) fs.mkdirSync(opts.cpuProfDir, { recursive: true });

  const started = new Date();
  const meta = {
    benchmark: 'unpack',
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
    trips: opts.trips,
    prewarm: opts.prewarm,
    tmp: opts.tmp,
    method: {
      pull: 'wall time from spawn() to exit of `berth -a SOCK images pull --plain-http REF` / `ctr -a SOCK images pull --plain-http --snapshotter overlayfs REF`, each on a fresh daemon (fresh temp dirs: cold content store and snapshots) started before the timer and, unless --no-prewarm, warmed by pulling bench/tiny:latest with the same client; after the timer: `ctr images ls -q` lists REF and `ctr snapshots info TOP` is Committed, then `sync`',
      snapshots: 'one long-running daemon each with REF pulled; a round trip is `ctr -a SOCK snapshots --snapshotter overlayfs prepare K TOP`, `... mounts DIR K`, `... rm K` (wall time of the three spawns); the facade rows make the same three calls through @berth/core connect() (gRPC, against both daemons) and createBerth() (in-process, on berthd\'s root after stopping it)',
      order: 'pull: each round runs both jobs, rotated; snapshots: round trips of each job interleaved, rotated; warm-up discarded',
      deletion: opts.deleteAsWeGo ? 'each sample\'s dirs are deleted right after it' : 'every sample\'s dirs stay until the end of the run',
    },
  };
  const ctx = { opts, skipped };
  const results = {};

  log(`image: ${opts.imageMb} MB of tar in 5 gzip layers, ~${opts.filesPerLayer} entries per layer (cache ${opts.cache})`);
  const t0 = performance.now();
  const image = await cachedImage(opts);
  const tarBytes = image.big.layers.reduce((a, l) => a + l.tarBytes, 0);
  const gzipBytes = image.big.layers.reduce((a, l) => a + l.size, 0);
  meta.image = {
    ref: 'bench/unpack:latest',
    cacheDir: image.dir,
    cached: image.cached,
    tarMB: Math.round(tarBytes / 1e4) / 100,
    gzipMB: Math.round(gzipBytes / 1e4) / 100,
    entries: image.big.layers.reduce((a, l) => a + l.entries, 0),
    layers: image.big.layers.map(({ digest, size, tarBytes: t, entries, files, bigBytes }) => ({ digest, gzipBytes: size, tarBytes: t, entries, files, bigBytes })),
    diffIDs: image.big.diffIDs,
    chainIDs: chainIDs(image.big.diffIDs),
    manifest: image.big.manifest,
  };
  log(`  ${meta.image.entries} entries, ${meta.image.gzipMB} MB gzip / ${meta.image.tarMB} MB tar; ${image.cached ? 'cached' : `built in ${((performance.now() - t0) / 1000).toFixed(1)} s`}: ${image.dir}`);
  ctx.image = image;

  const regDir = makeTempDir(opts.tmp, 'bu-reg-');
  const reg = await startRegistry(regDir, tools['docker-registry']);
  ctx.reg = reg;
  try {
    for (const tag of ['unpack', 'tiny']) {
      await run(tools.skopeo, ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false', '--preserve-digests',
        `oci:${image.layout}:${tag}`, `docker://${reg.host}/bench/${tag}:latest`], { env: process.env });
    }
    await run('/bin/sync', []);

    if (opts.only !== 'snapshots') {
      log(`1/2 cold pull + unpack: ${opts.samples} samples each (+${opts.warmup} warm-up round${opts.warmup === 1 ? '' : 's'}), fresh daemon per sample${opts.prewarm ? ', pre-warmed with bench/tiny' : ''}`);
      const jobs = pullJobs(ctx);
      // Written-back pages of one sample must not land in the next one's timing.
      const between = async () => {
        await run('/bin/sync', []);
        await sleep(opts.deleteAsWeGo ? 1000 : 300);
      };
      const r = await runRounds('pull', jobs, ctx, { between });
      const st = Object.fromEntries(jobs.map((j) => [j.key, stats(r.samples[j.key])]));
      const peak = (k) => quantile((r.extras[k] || []).map((e) => e.daemonPeak?.hwmMiB).filter((x) => x), 0.5);
      results.pull = {
        jobs: jobs.map(({ key, label }) => ({ key, label })),
        stats: st,
        baselines: opts.baselines,
        peakRss: Object.fromEntries(jobs.map((j) => [j.key, peak(j.key)])),
        clientVersionS: Object.fromEntries(jobs.map(({ key: k }) =>
          [k, stats((r.extras[k] || []).map((e) => e.versionS).filter((x) => x !== null && x !== undefined))])),
        daemonReadyMs: Object.fromEntries(jobs.map(({ key: k }) => [k, r.extras[k]?.map((e) => Math.round(e.readyMs))])),
        firstOutput: Object.fromEntries(Object.entries(r.extras).map(([k, e]) => [k, e[0]?.output]).filter(([, v]) => v)),
        daemonOutput: Object.fromEntries(Object.entries(r.extras).map(([k, e]) => [k, e.map((x) => x.daemonOutput)])),
        windows: windowsOf(r.extras),
        rounds: r.rounds,
        failed: r.failed,
      };
      ctx.pullJobs = jobs;
      for (const k of Object.keys(r.failed)) skipped[`pull.${k}`] = r.failed[k];
    }
    if (opts.only !== 'pull') {
      log('2/2 snapshot round trips: pulling the image into one long-running daemon each');
      results.snapshots = await snapshotPhase(ctx);
    }
  } finally {
    await stopRegistry(reg);
  }

  meta.finishedAt = new Date().toISOString();
  meta.host.loadavgAtEnd = loadavg();
  meta.skipped = skipped;
  const perRound = (results.pull?.rounds || []).map((x) => x.loadavg[0]);
  if (perRound.length) meta.host.loadavg1mDuringPulls = { min: Math.min(...perRound), max: Math.max(...perRound) };

  const rows = buildRows(results);
  let text = `\nberth unpack benchmark${opts.quick ? ' (--quick)' : ''}: ${opts.samples} pulls and ${opts.trips} snapshot round trips each${opts.prewarm ? '' : ' (--no-prewarm)'}; `
    + `${meta.host.cpus} CPUs, load ${meta.host.loadavgAtStart.map((x) => x.toFixed(2)).join(' ')} at start, ${meta.host.loadavgAtEnd.map((x) => x.toFixed(2)).join(' ')} at end`
    + `${meta.host.loadavg1mDuringPulls ? ` (1-min ${meta.host.loadavg1mDuringPulls.min.toFixed(2)}–${meta.host.loadavg1mDuringPulls.max.toFixed(2)} during pulls)` : ''}\n`;
  text += `image: 127.0.0.1:PORT/bench/unpack:latest, 5 layers, ${meta.image.entries} entries, ${meta.image.gzipMB} MB gzip / ${meta.image.tarMB} MB tar; snapshotter overlayfs on ${opts.tmp}\n`;
  text += `\n${renderTable(['', 'berth', 'containerd', 'ratio b/c', ''], rows.map((r) => r.cells))}\n`;
  text += '\nratio b/c: berth ÷ containerd (time: lower is better).\n';
  if (results.pull) text += `\n${detailTable('cold pull + unpack (s)', ctx.pullJobs, results.pull.stats, 's')}\n`;
  if (removedEnv.length) text += `\nberthd and the berth CLI ran without ${removedEnv.join(', ')} (see --inherit-node-env)\n`;
  for (const [k, why] of Object.entries(skipped)) text += `\n${k} skipped: ${String(why).split('\n')[0]}\n`;
  process.stdout.write(text);

  meta.runContainerd = { before: runContainerdBefore, after: runContainerdState(), note: 'recorded only: never deleted (other users\' shims live there)' };
  if (opts.cpuProfDir) meta.cpuProfDir = opts.cpuProfDir;
  const out = opts.out ?? path.join(__dirname, 'results', `unpack-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const save = () => {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify({ meta, table: rows.map(({ cells, ...r }) => r), results }, null, 2)}\n`);
  };
  save();
  process.stdout.write(`\n${summaryLine(meta, results)}\n`);
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), out) || out}\n`);
  if (opts.cpuProfDir) {
    process.stdout.write(`CPU profiles of berthd and the berth CLI: ${opts.cpuProfDir}\n`
      + `  node bench/cpuprofile-top.js --results ${path.relative(process.cwd(), out) || out} ${opts.cpuProfDir}/*.cpuprofile\n`);
  }

  // Cleanup is part of the run (a failure here should show); the results are saved first,
  // since deleting every sample's trees takes a while on this ext4 (discard).
  const dirs = [...tempDirs];
  log(`removing ${dirs.length} temp dirs`);
  const t1 = performance.now();
  await removeTempDirs(dirs);
  meta.cleanupSeconds = Math.round((performance.now() - t1) / 100) / 10;
  meta.leftoverMounts = mountsBelow(opts.tmp).filter((m) => m.includes(`/${opts.tempPrefix}`));
  if (meta.leftoverMounts.length) log(`mounts left below ${opts.tmp}: ${meta.leftoverMounts.join(', ')}`);
  save();
  log(`removed in ${meta.cleanupSeconds} s`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`unpack benchmark failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
