// Mount/unmount cost: the mount(2)/umount2(2) syscalls through @berth/sys
// versus spawning mount(8)/umount(8), the way a Node program without FFI would.
// Needs root and a build (`npx tsc -b sys`). Samples alternate between the two
// ways so drift on a shared VM hits both alike (shared/reference/benchmarking.md).
//
//   node sys/bench/mount-bench.js [samples=200]
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const sys = require('../lib');

const samples = Number(process.argv[2] ?? 200);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-mount-bench-'));
const source = path.join(dir, 'source');
const target = path.join(dir, 'target');
fs.mkdirSync(source);
fs.mkdirSync(target);
fs.writeFileSync(path.join(source, 'file'), 'x');

const ms = (start) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { stdio: 'ignore', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.status}`);
};

function layers(count, name) {
  // containerd's layout under a long root: the data is > 4096 bytes before compaction.
  const base = path.join(dir, name, 'a-long-snapshotter-root-'.repeat(4), 'snapshots');
  const lower = [];
  for (let i = count; i >= 1; i--) {
    const fsDir = path.join(base, String(i), 'fs');
    fs.mkdirSync(fsDir, { recursive: true });
    fs.writeFileSync(path.join(fsDir, `layer-${i}`), '');
    lower.push(fsDir);
  }
  const upper = path.join(base, 'upper');
  const work = path.join(base, 'work');
  fs.mkdirSync(upper, { recursive: true });
  fs.mkdirSync(work, { recursive: true });
  return [`lowerdir=${lower.join(':')}`, `upperdir=${upper}`, `workdir=${work}`];
}

async function main() {
  const t = { spawnTrue: [], syscallMount: [], syscallUmount: [], spawnMount: [], spawnUmount: [], longOverlay: [], veryLongOverlay: [], shortOverlay: [], overlayUmount: [] };
  for (let i = 0; i < 10; i++) {
    sys.mount(source, target, '', ['bind']);
    sys.umount(target);
    run('mount', ['--bind', source, target]);
    run('umount', [target]);
  }
  for (let i = 0; i < samples; i++) {
    let start = process.hrtime.bigint();
    sys.mount(source, target, '', ['bind']);
    t.syscallMount.push(ms(start));
    start = process.hrtime.bigint();
    sys.umount(target);
    t.syscallUmount.push(ms(start));

    start = process.hrtime.bigint();
    run('mount', ['--bind', source, target]);
    t.spawnMount.push(ms(start));
    start = process.hrtime.bigint();
    run('umount', [target]);
    t.spawnUmount.push(ms(start));

    start = process.hrtime.bigint();
    run('true', []);
    t.spawnTrue.push(ms(start));
  }

  const long = layers(128, 'l128');
  const veryLong = layers(400, 'l400');
  const shortOptions = long.map((o) => (o.startsWith('lowerdir=') ? `lowerdir=${o.slice(9).split(':').slice(0, 8).join(':')}` : o));
  const overlaySamples = Math.min(samples, 50);
  for (let i = 0; i < overlaySamples; i++) {
    let start = process.hrtime.bigint();
    await sys.mountAll([{ type: 'overlay', source: 'overlay', options: long }], target);
    t.longOverlay.push(ms(start));
    start = process.hrtime.bigint();
    await sys.unmountAll(target);
    t.overlayUmount.push(ms(start));

    start = process.hrtime.bigint();
    await sys.mountAll([{ type: 'overlay', source: 'overlay', options: shortOptions }], target);
    t.shortOverlay.push(ms(start));
    await sys.unmountAll(target);

    start = process.hrtime.bigint();
    await sys.mountAll([{ type: 'overlay', source: 'overlay', options: veryLong }], target);
    t.veryLongOverlay.push(ms(start));
    await sys.unmountAll(target);
  }

  const row = (name, xs) => `| ${name} | ${median(xs).toFixed(3)} ms | ${xs.length} |`;
  console.log(`kernel ${os.release()}, node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log('| operation | median | samples |');
  console.log('|---|---:|---:|');
  console.log(row('bind mount, mount(2) via @berth/sys', t.syscallMount));
  console.log(row('bind mount, spawn `mount --bind`', t.spawnMount));
  console.log(row('unmount, umount2(2) via @berth/sys', t.syscallUmount));
  console.log(row('unmount, spawn `umount`', t.spawnUmount));
  console.log(row('floor: spawn `true`', t.spawnTrue));
  console.log(row('overlay, 8 lowers, mountAll (syscall)', t.shortOverlay));
  console.log(row('overlay, 128 long lowers (> 1 page), mountAll: syscall via /proc/self/fd', t.longOverlay));
  console.log(row('overlay, 400 lowers, mountAll: mount(8) run in the common dir', t.veryLongOverlay));
  console.log(row('overlay unmount, unmountAll', t.overlayUmount));
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    try {
      execFileSync('umount', ['-R', target], { stdio: 'ignore' });
    } catch {
      // Not mounted: the normal case.
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
