import { lstat, opendir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SnapshotUsage } from './types';

/**
 * Disk usage of a directory tree as containerd's fs.DiskUsage counts it:
 * allocated blocks (not apparent sizes, so sparse files count what they
 * occupy) and inodes, each hard-linked inode once, the root included.
 * Symlinks are not followed.
 */
export async function diskUsage(root: string): Promise<SnapshotUsage> {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  const visit = async (path: string): Promise<void> => {
    const stat = await lstat(path);
    const id = `${stat.dev}:${stat.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      inodes++;
      size += stat.blocks * 512;
    }
    if (!stat.isDirectory()) return;
    const dir = await opendir(path);
    const children: string[] = [];
    for await (const entry of dir) children.push(join(path, entry.name));
    for (const child of children) await visit(child);
  };
  await visit(root);
  return { size, inodes };
}
