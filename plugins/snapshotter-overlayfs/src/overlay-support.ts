import { Dirent, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PluginSkipError, type Mount, type SnapshotMounter } from '@berth/core';
import { mountPointsUnder } from './mount-points';

/** Present when the overlay module has an inodes index, which containerd turns off. */
export const overlayIndexParameter = '/sys/module/overlay/parameters/index';

/**
 * Options every overlay mount starts with, as containerd's: `index=off` when
 * the kernel has the index feature (with it on, overlay ties an upper dir to
 * the lower layers it was first mounted on, and layers shared between
 * snapshots stack differently), and `userxattr` inside a user namespace,
 * where `trusted.*` xattrs are not allowed.
 */
export function defaultOverlayOptions(): string[] {
  const options: string[] = [];
  if (existsSync(overlayIndexParameter)) options.push('index=off');
  if (inUserNamespace()) options.push('userxattr');
  return options;
}

/** The initial user namespace maps all 2^32 ids onto themselves. */
function inUserNamespace(): boolean {
  try {
    const map = readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    return !(map.length === 3 && map[0] === '0' && map[1] === '0' && map[2] === '4294967295');
  } catch {
    return false;
  }
}

/** What probing a directory for overlay support found out. */
export interface OverlayProbe {
  platform: NodeJS.Platform;
  /** Whether the backing filesystem fills in d_type in directory entries. */
  dType: boolean;
  /** Why a test overlay (two lower dirs, an upper and a work dir) could not be mounted or used. */
  mountError?: string;
}

/**
 * Why the overlay snapshotter cannot run on `root`, or undefined if it can.
 * Overlay on a filesystem without d_type mounts with only a kernel warning
 * and then shows whiteouts as plain files, so that is refused here as containerd does.
 */
export function overlaySkipReason(root: string, probe: OverlayProbe): string | undefined {
  if (probe.platform !== 'linux') return `overlayfs needs Linux, this is ${probe.platform}`;
  if (probe.mountError !== undefined) return `overlayfs does not work on ${root}: ${probe.mountError}`;
  if (!probe.dType) {
    return (
      `the filesystem of ${root} does not support d_type, which overlayfs needs ` +
      '(an xfs formatted with ftype=0? reformat with ftype=1)'
    );
  }
  return undefined;
}

const probePrefix = 'overlay-check-';

/**
 * Tries overlay for real in a temp dir under `root`: d_type, then a two-layer
 * mount where a lower file shows through and a write lands in the upper dir.
 * Always unmounts and removes what it made.
 */
export async function probeOverlay(
  root: string,
  mounter: SnapshotMounter,
  baseOptions: readonly string[],
): Promise<OverlayProbe> {
  if (process.platform !== 'linux') return { platform: process.platform, dType: false };
  await mkdir(root, { recursive: true });
  await removeStaleProbes(root, mounter);
  const dir = await mkdtemp(join(root, probePrefix));
  try {
    const dType = await supportsDType(dir);
    const mountError = await tryOverlay(dir, mounter, baseOptions);
    return { platform: process.platform, dType, mountError };
  } finally {
    await removeProbeDir(dir, mounter);
  }
}

/** Throws PluginSkipError with the reason when overlay cannot work on `root`. */
export async function checkOverlaySupport(
  root: string,
  mounter: SnapshotMounter,
  baseOptions: readonly string[] = defaultOverlayOptions(),
): Promise<void> {
  const reason = overlaySkipReason(root, await probeOverlay(root, mounter, baseOptions));
  if (reason !== undefined) throw new PluginSkipError(reason);
}

/**
 * Node hides DT_UNKNOWN: it fills such an entry's type in from lstat and
 * builds it from a subclass of Dirent (DirentFromStats). An entry of exactly
 * Dirent's prototype therefore carried d_type from the kernel. Should Node
 * change that, this answers "supported", which is what the kernel assumes too.
 */
export async function supportsDType(dir: string): Promise<boolean> {
  const probe = join(dir, 'd-type');
  await mkdir(probe);
  await writeFile(join(probe, 'file'), '');
  const entries = await readdir(probe, { withFileTypes: true });
  return entries.length > 0 && entries.every((entry) => Object.getPrototypeOf(entry) === Dirent.prototype);
}

async function tryOverlay(
  dir: string,
  mounter: SnapshotMounter,
  baseOptions: readonly string[],
): Promise<string | undefined> {
  const [lower1, lower2, upper, work, merged] = ['lower1', 'lower2', 'upper', 'work', 'merged'].map((name) =>
    join(dir, name),
  );
  for (const d of [lower1, lower2, upper, work, merged]) await mkdir(d);
  await writeFile(join(lower2, 'from-lower'), 'lower');
  const mount: Mount = {
    type: 'overlay',
    source: 'overlay',
    options: [...baseOptions, `workdir=${work}`, `upperdir=${upper}`, `lowerdir=${lower1}:${lower2}`],
  };
  try {
    await mounter.mountAll([mount], merged);
  } catch (err) {
    return `mount failed: ${errorText(err)}`;
  }
  try {
    if ((await readFile(join(merged, 'from-lower'), 'utf8')) !== 'lower') return 'a lower file does not show through';
    await writeFile(join(merged, 'from-upper'), 'upper');
    if (!existsSync(join(upper, 'from-upper'))) return 'a write does not land in the upper dir';
    return undefined;
  } catch (err) {
    return `the test mount is not usable: ${errorText(err)}`;
  } finally {
    await mounter.unmountAll(merged);
  }
}

/** Leftovers of a probe interrupted by a crash, possibly still mounted. */
async function removeStaleProbes(root: string, mounter: SnapshotMounter): Promise<void> {
  for (const name of await readdir(root)) {
    if (name.startsWith(probePrefix)) await removeProbeDir(join(root, name), mounter);
  }
}

async function removeProbeDir(dir: string, mounter: SnapshotMounter): Promise<void> {
  // Deepest first, so nested mounts come off before the ones holding them.
  for (const mountPoint of mountPointsUnder(dir).sort().reverse()) await mounter.unmountAll(mountPoint);
  const left = mountPointsUnder(dir);
  if (left.length > 0) throw new Error(`cannot remove ${dir}: still mounted at ${left.join(', ')}`);
  await rm(dir, { recursive: true, force: true });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
