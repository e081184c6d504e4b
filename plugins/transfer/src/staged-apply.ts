import * as fs from 'fs';
import { join } from 'path';
import type { Mount } from '@berth/core';
import { lgetxattr, llistxattr, lsetxattr } from '@berth/sys';
import type { ApplyPool, IsolatedApply } from './apply-pool';
import type { LayerScan } from './tar-scan';

/**
 * Parallel unpack on overlayfs. A snapshot can only be prepared on a
 * committed parent, so layer N's snapshot cannot exist before layers
 * 0..N-1 are applied and committed: applying into it is sequential by
 * nature. But overlayfs keeps each layer's changes in a directory of their
 * own (the upper dir), and extraction into an upper dir reads the layers
 * below in one place only (a directory an entry needs but the layer does not
 * list takes its metadata from below; LayerScan). So:
 *
 *  1. stage: as soon as its blob is there, each layer but the base one is
 *     extracted in a worker thread into a fresh snapshot with no parent (its own directory),
 *     in upper-dir form (whiteouts as 0/0 devices, opaque xattrs), while its
 *     headers are scanned;
 *  2. rebase, in chain order: once layer N-1 is committed, layer N's real
 *     snapshot is prepared on it, the staged entries are renamed into its
 *     (empty) upper dir, the directories the scan found are given the
 *     metadata they have below, and it is committed under its chain ID.
 *
 * The result is what extracting in place gives (the fidelity tests compare
 * with containerd). Layers the scan cannot vouch for, that fail to stage, or
 * whose snapshots are not local directories are extracted in place instead.
 */
export interface LayerStager {
  pool: ApplyPool;
  maxBytes?: number;
  symlinks?: string;
}

export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** The directory a single bind mount shows, if that is what `mounts` is. */
export function bindDirectory(mounts: Mount[]): string | undefined {
  if (mounts.length !== 1) return undefined;
  const [m] = mounts;
  const bind = m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');
  return bind && !m.target ? m.source : undefined;
}

function option(mount: Mount, key: string): string | undefined {
  const prefix = `${key}=`;
  return mount.options.find((o) => o.startsWith(prefix))?.slice(prefix.length);
}

/**
 * Where a snapshot prepared on a parent keeps its own layer, and the layers
 * below (nearest first): only an overlay mount with an upper dir has them. A
 * staged layer is in overlayfs's upper-dir form, so it can go nowhere else.
 */
export function overlayUpperOf(mounts: Mount[]): { upper: string; lowers: string[] } | undefined {
  if (mounts.length !== 1 || mounts[0].type !== 'overlay' || mounts[0].target) return undefined;
  const upper = option(mounts[0], 'upperdir');
  if (!upper) return undefined;
  const lowers = option(mounts[0], 'lowerdir')?.split(':').filter((d) => d !== '') ?? [];
  // Staged layers mark opaque directories with trusted.* xattrs; a userxattr overlay reads user.*.
  if (lowers.length === 0 || mounts[0].options.includes('userxattr')) return undefined;
  return { upper, lowers };
}

/** Moves everything in `from` into the empty directory `to` (same filesystem: renames). */
export function moveEntries(from: string, to: string): void {
  for (const name of fs.readdirSync(from)) fs.renameSync(join(from, name), join(to, name));
}

const isOverlayXattr = (name: string) => name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');

/**
 * The topmost lower holding `components`, walked with lstat (symlinks in a
 * lower are never followed); a whiteout ends the search. As the differ's
 * overlay extraction looks its parents up.
 */
function findInLowers(lowers: string[], components: string[]): { path: string; stats: fs.Stats } | undefined {
  for (const lower of lowers) {
    let path = lower;
    let stats: fs.Stats | undefined;
    for (let i = 0; i < components.length; i++) {
      path = join(path, components[i]);
      stats = fs.lstatSync(path, { throwIfNoEntry: false });
      if (stats === undefined) break;
      if (stats.isCharacterDevice() && stats.rdev === 0) return undefined;
      if (i < components.length - 1 && !stats.isDirectory()) return undefined;
    }
    if (stats !== undefined) return { path, stats };
  }
  return undefined;
}

function copyXattrs(from: string, to: string, onlyMissing: boolean): void {
  const present = onlyMissing ? new Set(llistxattr(to)) : new Set<string>();
  for (const name of llistxattr(from)) {
    if (isOverlayXattr(name) || present.has(name)) continue;
    lsetxattr(to, name, lgetxattr(from, name));
  }
}

/**
 * Gives the directories a layer needed but did not list the owner, mode,
 * xattrs and times they have in the lowers (and directories it listed only
 * late the xattrs from below they would have kept), as extracting the layer
 * in place would have.
 */
export function fixUpDirectories(upper: string, lowers: string[], scan: LayerScan): void {
  const fix = (dir: string, full: boolean) => {
    const path = join(upper, dir);
    if (!fs.lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) return;
    const lower = findInLowers(lowers, dir.split('/'));
    if (!lower?.stats.isDirectory()) return;
    if (full) {
      fs.lchownSync(path, lower.stats.uid, lower.stats.gid);
      fs.chmodSync(path, lower.stats.mode & 0o7777);
    }
    copyXattrs(lower.path, path, !full);
    if (full) fs.lutimesSync(path, lower.stats.atime, lower.stats.mtime);
  };
  for (const dir of scan.implicitDirs) fix(dir, true);
  for (const dir of scan.lateDirs) fix(dir, false);
}

export type { IsolatedApply };
