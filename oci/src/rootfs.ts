import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, type Mount } from '@berth/core';
import { mountAll, unmountAll } from '@berth/sys';

export interface ReadonlyRootfsOptions {
  /** Where the temporary mount point is created; defaults to the OS temp dir. */
  tempRoot?: string;
}

/**
 * Mounts snapshot `mounts` read-only on a fresh temporary directory, runs
 * `fn` with it, then unmounts and removes the directory, also when `fn` or
 * the mount fails. containerd's client does this to read an image's
 * /etc/passwd and /etc/group; read-only keeps an active snapshot untouched.
 */
export async function withReadonlyRootfs<T>(
  mounts: readonly Mount[],
  fn: (dir: string) => Promise<T> | T,
  options: ReadonlyRootfsOptions = {},
): Promise<T> {
  if (mounts.length === 0) throw new InvalidArgumentError('no mounts given for the rootfs');
  const dir = await mkdtemp(join(options.tempRoot ?? tmpdir(), 'berth-rootfs-'));
  let result: T;
  try {
    await mountAll(mounts.map(readonlyMount), dir);
    try {
      result = await fn(dir);
    } catch (err) {
      await release(dir).catch(() => undefined);
      throw err;
    }
    await release(dir);
  } finally {
    // Never recursive: if the unmount failed, the directory still shows the
    // snapshot, and rmdir then fails instead of deleting image content.
    await rmdir(dir).catch(() => undefined);
  }
  return result;
}

/** Unmounts everything on `dir`; a busy mount is detached lazily rather than left behind. */
async function release(dir: string): Promise<void> {
  try {
    await unmountAll(dir);
  } catch (err) {
    try {
      await unmountAll(dir, { detach: true });
    } catch {
      throw err;
    }
  }
}

/** The same mount with `ro` in force (a later `rw` would undo it, so those go). */
function readonlyMount(mount: Mount): Mount {
  const options = mount.options.filter((o) => o !== 'rw' && o !== 'ro');
  return { ...mount, options: [...options, 'ro'] };
}
