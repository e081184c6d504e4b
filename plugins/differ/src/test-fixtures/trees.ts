import { createHash } from 'crypto';
import * as fs from 'fs/promises';
import { join } from 'path';
import { lgetxattr, llistxattr } from '@berth/sys';

/** One path of a tree, as the tree comparison sees it. */
export interface TreeItem {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'other';
  mode: number;
  uid: number;
  gid: number;
  /** sha256 of a file's content. */
  content?: string;
  link?: string;
  rdev?: number;
  /** Whole seconds; left out for directories, whose mtime an apply changes. */
  mtime?: number;
  xattrs: Record<string, string>;
}

/** Everything under `root` (not `root` itself), sorted by path. */
export async function describeTree(root: string): Promise<TreeItem[]> {
  const items: TreeItem[] = [];
  async function walk(relative: string): Promise<void> {
    const names = (await fs.readdir(join(root, relative))).sort();
    for (const name of names) {
      const path = relative === '' ? name : `${relative}/${name}`;
      const host = join(root, path);
      const stats = await fs.lstat(host);
      const type = stats.isFile()
        ? 'file'
        : stats.isDirectory()
          ? 'dir'
          : stats.isSymbolicLink()
            ? 'symlink'
            : stats.isCharacterDevice()
              ? 'char'
              : stats.isBlockDevice()
                ? 'block'
                : stats.isFIFO()
                  ? 'fifo'
                  : 'other';
      const xattrs: Record<string, string> = {};
      for (const key of llistxattr(host).sort()) xattrs[key] = lgetxattr(host, key).toString('hex');
      const item: TreeItem = { path, type, mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid, xattrs };
      if (type === 'symlink') {
        item.link = await fs.readlink(host);
        delete (item as Partial<TreeItem>).mode;
      }
      if (type === 'file') item.content = createHash('sha256').update(await fs.readFile(host)).digest('hex');
      if (type === 'char' || type === 'block') item.rdev = stats.rdev;
      if (type !== 'dir') item.mtime = Math.floor(stats.mtimeMs / 1000);
      items.push(item);
      if (type === 'dir') await walk(path);
    }
  }
  await walk('');
  return items;
}

/** Paths under `root`, for "nothing else was written" checks. */
export async function listTree(root: string): Promise<string[]> {
  return (await describeTree(root)).map((item) => item.path);
}
