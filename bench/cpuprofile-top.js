#!/usr/bin/env node
'use strict';
/*
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`): self time by module (package or
 * file) and by function.
 *
 *   node bench/cpuprofile-top.js [--top N] FILE.cpuprofile...
 *       all files together, whole process lifetimes
 *   node bench/cpuprofile-top.js [--top N] --results bench/results/content-….json DIR/*.cpuprofile
 *       profiles from `node bench/content.js --cpu-prof DIR` (or unpack.js): each file is matched by its pid
 *       to a timed sample of that run and cut down to the sample's window (start-up, pre-warm
 *       and shutdown left out), then grouped by phase, job and process (berthd or the CLI).
 *       Warm-up rounds have no window and are left out.
 */

const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..');

function moduleOf(url) {
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith('node:')) return u.replace(/^node:internal\/(\w+).*/, 'node:internal/$1');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (u.startsWith(REPO)) u = u.slice(REPO.length + 1);
  return u;
}

/** Self time (µs) per function and per module of one profile, within [fromUs, toUs]. */
function selfTimes(prof, fromUs = -Infinity, toUs = Infinity, acc) {
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
  let t = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const us = prof.timeDeltas[i + 1] ?? 0; // the delta after a sample is the time it stood for
    const cf = nodes.get(prof.samples[i]).callFrame;
    const name = cf.functionName || '(anonymous)';
    const mod = cf.url ? moduleOf(cf.url) : name.startsWith('(') ? name : '(native / V8)';
    const fn = `${name}  ${cf.url ? `${moduleOf(cf.url)}:${cf.lineNumber + 1}` : ''}`;
    acc.total += us;
    acc.byFn.set(fn, (acc.byFn.get(fn) || 0) + us);
    acc.byModule.set(mod, (acc.byModule.get(mod) || 0) + us);
  }
  acc.wall += Math.min(toUs, prof.endTime) - Math.max(fromUs, prof.startTime);
  acc.profiles++;
  return acc;
}

const newAcc = () => ({ total: 0, wall: 0, profiles: 0, byFn: new Map(), byModule: new Map() });

function print(title, acc, top) {
  const idle = acc.byModule.get('(idle)') || 0;
  process.stdout.write(`\n=== ${title}: ${acc.profiles} profile(s), ${(acc.wall / 1000).toFixed(0)} ms of wall time, `
    + `${((acc.total - idle) / 1000).toFixed(0)} ms on the CPU (${((100 * (acc.total - idle)) / Math.max(acc.total, 1)).toFixed(0)} %), rest idle\n`);
  for (const [what, map] of [['module', acc.byModule], ['function', acc.byFn]]) {
    process.stdout.write(`-- self time by ${what}\n`);
    for (const [k, us] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(`${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / acc.total).toFixed(1).padStart(5)} %  ${k}\n`);
    }
  }
}

function main() {
  const args = process.argv.slice(2);
  let top = 20;
  let results = null;
  const files = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--top') top = Number(args[++i]);
    else if (args[i] === '--results') results = JSON.parse(fs.readFileSync(args[++i], 'utf8'));
    else files.push(args[i]);
  }
  if (!files.length) {
    process.stderr.write('usage: node bench/cpuprofile-top.js [--top N] [--results content-….json|unpack-….json] FILE.cpuprofile...\n');
    process.exit(2);
  }
  if (!results) {
    const acc = newAcc();
    for (const f of files) selfTimes(JSON.parse(fs.readFileSync(f, 'utf8')), -Infinity, Infinity, acc);
    print('all profiles, whole lifetimes', acc, top);
    return;
  }
  const windows = [];
  for (const [phase, res] of Object.entries(results.results || {})) {
    for (const w of res?.windows || []) windows.push({ phase, ...w });
  }
  const groups = new Map();
  let unmatched = 0;
  for (const f of files) {
    const m = path.basename(f).match(/^CPU\.\d+\.\d+\.(\d+)\./);
    const pid = m ? Number(m[1]) : NaN;
    const w = windows.find((x) => x.daemonPid === pid || x.clientPid === pid);
    if (!w) { unmatched++; continue; }
    const role = w.daemonPid === pid ? 'berthd' : 'berth CLI';
    const key = `${w.phase} / ${w.job} / ${role}`;
    if (!groups.has(key)) groups.set(key, newAcc());
    selfTimes(JSON.parse(fs.readFileSync(f, 'utf8')), w.fromUs, w.toUs, groups.get(key));
  }
  process.stdout.write(`${files.length} profile(s); ${unmatched} without a timed sample (warm-up rounds, pre-warm-only processes)\n`);
  for (const [key, acc] of [...groups.entries()].sort()) print(key, acc, top);
}

main();
