import type { BerthConfig } from './berth-config';
import { ConfigError, ConfigIssue, formatKeyPath } from './config-error';

/**
 * Checks that every `[plugins."<uri>"]` table and every `disabled_plugins` /
 * `required_plugins` entry names a known plugin, so a typo cannot silently leave
 * a plugin unconfigured, enabled or optional. `knownUris` must include proxy
 * plugins' URIs. Throws ConfigError (InvalidArgument) listing each unknown URI.
 */
export function validatePluginUris(
  config: Pick<BerthConfig, 'plugins' | 'disabled_plugins' | 'required_plugins'>,
  knownUris: Iterable<string>,
  sourceName = 'config',
): void {
  const known = new Set(knownUris);
  const issues: ConfigIssue[] = [];
  const unknown = (uri: string) => `no such plugin ${JSON.stringify(uri)}${suggestion(uri, known)}`;

  for (const uri of Object.keys(config.plugins)) {
    if (!known.has(uri)) issues.push({ path: formatKeyPath(['plugins', uri]), message: unknown(uri) });
  }
  for (const key of ['disabled_plugins', 'required_plugins'] as const) {
    config[key].forEach((uri, index) => {
      if (!known.has(uri)) issues.push({ path: formatKeyPath([key, index]), message: unknown(uri) });
    });
  }
  if (issues.length > 0) throw new ConfigError(sourceName, issues);
}

/** The closest known URI, if it looks like a typo of `uri`. */
function suggestion(uri: string, known: ReadonlySet<string>): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(uri, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= 3 ? ` (did you mean ${JSON.stringify(best)}?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
