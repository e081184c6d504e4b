import * as fs from 'fs';
import * as path from 'path';

/** Where berth's CLI and runContainer make FIFO dirs unless told otherwise. */
export const DEFAULT_FIFO_ROOT = '/run/berth/fifo';

/**
 * FIFOs of processes whose names start with one of `prefixes` (`<id>-stdout`...)
 * still lying in FIFO dirs under `root`: what a run that cleans up after
 * itself leaves none of.
 */
export function leftoverFifos(root: string, prefixes: string[]): string[] {
  const found: string[] = [];
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(root);
  } catch {
    return found;
  }
  for (const dir of dirs) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(path.join(root, dir));
    } catch {
      continue;
    }
    for (const name of names) {
      if (/-std(in|out|err)$/.test(name) && prefixes.some((p) => name.startsWith(p))) found.push(path.join(root, dir, name));
    }
  }
  return found;
}

/** Interface names in a /proc/net/dev listing. */
export function interfaceNames(procNetDev: string): string[] {
  return procNetDev
    .split('\n')
    .slice(2)
    .map((line) => line.split(':')[0]!.trim())
    .filter(Boolean)
    .sort();
}
