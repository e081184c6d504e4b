import * as path from 'path';
import { InvalidArgumentError, PluginRegistration } from '@berth/core';

function isRegistration(value: unknown): value is PluginRegistration {
  const v = value as Partial<PluginRegistration> | undefined;
  return !!v && typeof v.type === 'string' && typeof v.id === 'string' && typeof v.init === 'function';
}

/**
 * Loads third-party plugin packages named in `plugin_modules`: npm package
 * names or paths (relative ones from the config file's directory). A package
 * exports `plugins` (an array of registrations), or a single registration as
 * `plugin` or `default`.
 */
export function loadPluginModules(modules: string[], baseDir: string): PluginRegistration[] {
  const out: PluginRegistration[] = [];
  for (const spec of modules) {
    const request = spec.startsWith('.') ? path.resolve(baseDir, spec) : spec;
    let exported: Record<string, unknown>;
    try {
      exported = require(require.resolve(request, { paths: [baseDir, process.cwd()] })) as Record<string, unknown>;
    } catch (err) {
      throw new InvalidArgumentError(`plugin_modules: cannot load ${JSON.stringify(spec)}: ${(err as Error).message}`);
    }
    const candidates = Array.isArray(exported.plugins) ? exported.plugins : [exported.plugin ?? exported.default];
    const found = candidates.filter(isRegistration);
    if (found.length === 0) {
      throw new InvalidArgumentError(
        `plugin_modules: ${JSON.stringify(spec)} exports no plugin registration (expected \`plugins\`, \`plugin\` or \`default\`)`,
      );
    }
    out.push(...found);
  }
  return out;
}
