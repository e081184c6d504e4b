import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Whether `err` is a Node system error with this `code` (ENOENT, EEXIST ...). */
export function hasErrorCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

export function isMissing(err: unknown): boolean {
  return hasErrorCode(err, 'ENOENT');
}

/** Every temp file this store makes ends so; a startup sweep removes them. */
const TEMP_SUFFIX = '.tmp';

export function isTempName(name: string): boolean {
  return name.endsWith(TEMP_SUFFIX);
}

/** A temp name beside `path`: same directory, so the rename that publishes it is atomic. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
}

/**
 * Makes a new directory entry (a rename or unlink inside `dir`) survive a crash.
 * fsync on a directory is what persists entries on ext4 and xfs.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` all at once: readers see the old or the new content, never
 * a mix. `durable` also fsyncs the file and its directory, so the new content
 * is what a crash leaves behind; without it a crash may leave the old one.
 */
export async function writeFileAtomic(path: string, data: string, options: { durable: boolean }): Promise<void> {
  const temp = tempPathFor(path);
  try {
    const handle = await open(temp, 'w', 0o644);
    try {
      await handle.writeFile(data);
      if (options.durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  if (options.durable) await fsyncDir(dirname(path));
}

/** Deletes a file; true if it was there. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}
