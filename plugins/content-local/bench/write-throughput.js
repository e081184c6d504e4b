// Write throughput of LocalContentStore against `dd conv=fsync`, alternating
// so both see the same machine state (see reference/benchmarking.md).
//
//   npx tsc -b tsconfig.build.json
//   node plugins/content-local/bench/write-throughput.js [rounds] [dir]
//
// Each round writes a 200 MB blob through a writer in 64 KiB chunks (what a
// stream hands over) and commits it, fsync and rename included, then has dd
// write 200 MiB with conv=fsync into the same directory. The first round is a
// warm-up; the medians of the rest are printed.
'use strict';
require('reflect-metadata');
const { execFileSync } = require('node:child_process');
const { createHash, randomBytes } = require('node:crypto');
const { mkdtempSync, rmSync } = require('node:fs');
const { join } = require('node:path');
const { LocalContentStore } = require('../lib');

const SIZE = 200 * 1024 * 1024;
const CHUNK = 64 * 1024;
const rounds = Number(process.argv[2] ?? 8);
const parent = process.argv[3] ?? '/var/tmp';

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;

async function berthRound(data, digest) {
  const root = mkdtempSync(join(parent, 'berth-bench-'));
  try {
    const store = new LocalContentStore(root);
    const start = process.hrtime.bigint();
    const writer = await store.writer({ ref: 'bench', expected: { size: SIZE, digest } });
    for (let at = 0; at < SIZE; at += CHUNK) await writer.write(data.subarray(at, at + CHUNK));
    await writer.commit(SIZE, digest);
    return seconds(start);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function ddRound() {
  const target = join(parent, `berth-bench-dd-${process.pid}`);
  try {
    const start = process.hrtime.bigint();
    execFileSync('dd', ['if=/dev/zero', `of=${target}`, 'bs=1M', `count=${SIZE >> 20}`, 'conv=fsync'], {
      stdio: 'ignore',
    });
    return seconds(start);
  } finally {
    rmSync(target, { force: true });
  }
}

function median(samples) {
  const sorted = samples.slice(1).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main() {
  const data = randomBytes(SIZE);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const berth = [];
  const dd = [];
  for (let i = 0; i < rounds; i++) {
    berth.push(await berthRound(data, digest));
    dd.push(ddRound());
  }
  const rate = (s) => `${(SIZE / 1e6 / s).toFixed(0)} MB/s`;
  console.log(`berth writer  ${rate(median(berth))}  (${berth.map((s) => s.toFixed(2)).join(' ')} s)`);
  console.log(`dd conv=fsync ${rate(median(dd))}  (${dd.map((s) => s.toFixed(2)).join(' ')} s)`);
  console.log(`ratio ${(median(dd) / median(berth)).toFixed(2)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
