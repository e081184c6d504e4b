import { InvalidArgumentError } from '@berth/core';

/**
 * Layers `overrides` onto `base` the way containerd merges environments:
 * `K=V` replaces the entry for K where it stands or is appended, and a bare
 * `K` (no `=`) removes K. Neither input is changed.
 */
export function mergeEnv(base: readonly string[], overrides: readonly string[] = []): string[] {
  const result: (string | undefined)[] = [...base];
  const positions = new Map<string, number>();
  base.forEach((entry, i) => positions.set(envKey(entry), i));
  for (const entry of overrides) {
    const key = envKey(entry);
    if (key === '') throw new InvalidArgumentError(`environment entry ${JSON.stringify(entry)} has an empty name`);
    const at = positions.get(key);
    if (!entry.includes('=')) {
      if (at !== undefined) result[at] = undefined;
      continue;
    }
    if (at !== undefined) {
      result[at] = entry;
    } else {
      positions.set(key, result.length);
      result.push(entry);
    }
  }
  return result.filter((e): e is string => e !== undefined);
}

/** The variable name of a `K=V` (or bare `K`) entry. */
export function envKey(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}
