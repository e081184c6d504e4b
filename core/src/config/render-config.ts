import { stringify } from 'smol-toml';
import type { PluginRegistration } from '../plugin/types';
import type { BerthConfig } from './berth-config';

/**
 * Each registered plugin's default config table, keyed by URI: its schema applied
 * to `{}`. Plugins without a schema, and those whose schema has required keys
 * (nothing to show without the operator's input), are left out.
 */
export function pluginDefaults(registrations: Iterable<PluginRegistration>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const reg of registrations) {
    if (!reg.config) continue;
    const parsed = reg.config.safeParse({});
    if (parsed.success) out[`${reg.type}.${reg.id}`] = parsed.data;
  }
  return out;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date);
}

/** `over` wins key by key; tables merge recursively so a partial table keeps the other defaults. */
function mergeTables(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] = isTable(prev) && isTable(value) ? mergeTables(prev, value) : value;
  }
  return out;
}

/**
 * Renders a config as TOML in containerd's v2 layout: top-level keys, then
 * `[grpc]`, `[ttrpc]`, `[debug]`, one `[plugins."<uri>"]` table per plugin (sorted
 * by URI), then `[proxy_plugins.<name>]`. `pluginTables` are the plugins' own
 * tables (defaults for `berthd config default`, effective configs for a dump);
 * what `config.plugins` sets is merged over them. TOML has no null, so absent
 * (undefined) values are left out.
 */
export function renderConfig(config: BerthConfig, pluginTables: Record<string, unknown> = {}): string {
  const plugins: Record<string, unknown> = {};
  const uris = new Set([...Object.keys(pluginTables), ...Object.keys(config.plugins)]);
  for (const uri of [...uris].sort()) {
    const base = pluginTables[uri];
    const over = config.plugins[uri];
    plugins[uri] = isTable(base) ? mergeTables(base, over ?? {}) : (over ?? {});
  }
  const document: Record<string, unknown> = {
    version: config.version,
    root: config.root,
    state: config.state,
    plugin_modules: config.plugin_modules,
    disabled_plugins: config.disabled_plugins,
    required_plugins: config.required_plugins,
    grpc: config.grpc,
    ttrpc: config.ttrpc,
    debug: config.debug,
  };
  if (uris.size > 0) document.plugins = plugins;
  if (Object.keys(config.proxy_plugins).length > 0) document.proxy_plugins = config.proxy_plugins;
  return spaceTables(stringify(document));
}

/** One blank line before every table header, so tables read as blocks. */
function spaceTables(toml: string): string {
  const lines = toml.split('\n');
  const out: string[] = [];
  for (const line of lines) {
    if (line.startsWith('[') && out.length > 0 && out[out.length - 1] !== '') out.push('');
    out.push(line);
  }
  return out.join('\n').replace(/\n*$/, '\n');
}
