import { promises as fs } from 'fs';
import * as path from 'path';
import type { interfaces } from 'inversify';
import { ConfigError, configIssuesFromZod, formatKeyPath } from '../config/config-error';
import type { BerthConfig } from '../config/berth-config';
import { FailedPreconditionError, InvalidArgumentError } from '../errdefs';
import { Logger, silentLogger } from '../log';
import { createContainer, pluginToken, pluginUri } from './container';
import { PluginRegistry, REQUIRES_ALL } from './plugin-registry';
import { LoadedPluginSet, PluginSet } from './plugin-set';
import { isPluginSkip } from './plugin-skip-error';
import type { InitContext, PluginMeta, PluginRecord, PluginRegistration } from './types';

/** The parts of the daemon config the loader reads. */
export type PluginLoadConfig = Pick<BerthConfig, 'root' | 'state' | 'plugins' | 'disabled_plugins' | 'required_plugins'>;

/**
 * What `loadPlugins` needs from the daemon (or an embedding). Pass a parsed
 * `config`, the individual fields, or both: a field given here wins over the
 * config's. `root` and `state` must come from one or the other.
 */
export interface LoadPluginsOptions {
  /** The plugins: a registry, or registrations to validate into one. */
  registrations: PluginRegistry | Iterable<PluginRegistration>;
  config?: PluginLoadConfig;
  /** Persistent data; each plugin gets `<root>/<uri>`. */
  root?: string;
  /** Runtime state; each plugin gets `<state>/<uri>` (mode 0700). */
  state?: string;
  /** Each plugin's raw config table by URI (the config file's `plugins`). */
  pluginConfigs?: Readonly<Record<string, unknown>>;
  /** URIs not to load. */
  disabledPlugins?: Iterable<string>;
  /** URIs that must end up 'ok', or loading fails. */
  requiredPlugins?: Iterable<string>;
  /**
   * The daemon's gRPC address; empty (the default) when embedded without a
   * server. Not taken from `config`: only the caller knows whether it serves.
   */
  address?: string;
  /** Defaults to `<address>.ttrpc` when there is an address. */
  ttrpcAddress?: string;
  logger?: Logger;
  /** The shared container; a fresh `createContainer()` if absent. */
  container?: interfaces.Container;
  /** Names the config file in plugin config errors. */
  configSource?: string;
}

/** Plugin root directories stay traversable (like containerd's root) for runtimes that look inside. */
const ROOT_DIR_MODE = 0o711;
const STATE_DIR_MODE = 0o700;

/**
 * Initialises plugins in dependency order and reports what happened to each.
 *
 * One plugin failing does not stop the others: a throwing `init`, an invalid
 * config table, or a required type with no 'ok' plugin marks that plugin 'error';
 * a PluginSkipError marks it 'skipped'; disabled plugins are 'disabled'. Each
 * plugin's `module` is loaded into the container just before its `init` (and
 * unloaded again if it does not come up), and its instance is then bound to
 * `pluginToken(type, id)`.
 *
 * Throws only for invalid registrations, a dependency cycle (PluginCycleError,
 * before any init), or a `requiredPlugins` entry that is not 'ok' at the end
 * (FailedPrecondition naming each such plugin and why, after closing the
 * plugins that did load).
 */
export async function loadPlugins(options: LoadPluginsOptions): Promise<PluginSet> {
  const { config } = options;
  const rootDir = options.root ?? config?.root;
  const stateDir = options.state ?? config?.state;
  if (!rootDir || !stateDir) throw new InvalidArgumentError('loadPlugins: root and state are required');
  const pluginConfigs = options.pluginConfigs ?? config?.plugins ?? {};
  const registry =
    options.registrations instanceof PluginRegistry
      ? options.registrations
      : PluginRegistry.from(options.registrations);
  const disabled = new Set(options.disabledPlugins ?? config?.disabled_plugins ?? []);
  const required = new Set(options.requiredPlugins ?? config?.required_plugins ?? []);
  const ordered = registry.graph(disabled);
  const logger = options.logger ?? silentLogger();
  const container = options.container ?? createContainer();
  const address = options.address ?? '';
  const ttrpcAddress = options.ttrpcAddress ?? (address ? `${address}.ttrpc` : '');

  const set = new LoadedPluginSet(container, logger);
  bindConstant(container, PluginSet, set);

  const statusOf = (uri: string): string => {
    const record = set.record(uri);
    if (record) return record.error ? `${record.status}: ${record.error}` : record.status;
    return disabled.has(uri) ? 'disabled' : 'not registered';
  };

  for (const reg of ordered) {
    const uri = pluginUri(reg.type, reg.id);
    const meta: PluginMeta = { platforms: [], exports: {}, capabilities: [] };
    const record: PluginRecord = {
      type: reg.type,
      id: reg.id,
      uri,
      requires: [...(reg.requires ?? [])],
      status: 'ok',
      meta,
    };
    const pluginLogger = logger.child({ type: reg.type, id: reg.id });
    let moduleLoaded = false;
    try {
      const unmet = unmetRequirements(reg, set, registry, statusOf);
      if (unmet) throw new FailedPreconditionError(unmet);
      const pluginConfig = parsePluginConfig(reg, uri, pluginConfigs[uri], options.configSource ?? '');
      const root = path.join(rootDir, uri);
      const state = path.join(stateDir, uri);
      await fs.mkdir(root, { recursive: true, mode: ROOT_DIR_MODE });
      await fs.mkdir(state, { recursive: true, mode: STATE_DIR_MODE });
      if (reg.module) {
        container.load(reg.module);
        moduleLoaded = true;
      }
      const ctx: InitContext = Object.freeze({
        type: reg.type,
        id: reg.id,
        uri,
        root,
        state,
        config: pluginConfig,
        address,
        ttrpcAddress,
        logger: pluginLogger,
        container,
        meta,
        getSingle: <T>(type: string) => set.getSingle<T>(type),
        getById: <T>(type: string, id: string) => set.getById<T>(type, id),
        getByType: <T>(type: string) => set.getByType<T>(type),
      });
      pluginLogger.debug('loading plugin');
      const instance = await reg.init(ctx);
      record.instance = instance;
      if (instance !== undefined) bindConstant(container, pluginToken(reg.type, reg.id), instance);
    } catch (err) {
      if (moduleLoaded && reg.module) container.unload(reg.module);
      const message = err instanceof Error ? err.message : String(err);
      record.status = isPluginSkip(err) ? 'skipped' : 'error';
      record.error = message;
      if (record.status === 'skipped') pluginLogger.info({ reason: message }, 'skip loading plugin');
      else pluginLogger.warn({ err }, 'failed to load plugin');
    }
    set.add(record);
  }

  for (const reg of registry.registrations()) {
    const uri = pluginUri(reg.type, reg.id);
    if (!disabled.has(uri)) continue;
    set.add({
      type: reg.type,
      id: reg.id,
      uri,
      requires: [...(reg.requires ?? [])],
      status: 'disabled',
      meta: { platforms: [], exports: {}, capabilities: [] },
    });
    logger.info({ type: reg.type, id: reg.id }, 'plugin disabled');
  }

  const missing = [...required].filter((uri) => set.record(uri)?.status !== 'ok');
  if (missing.length > 0) {
    await set.closeAll().catch((err: unknown) => logger.warn({ err }, 'closing plugins after a failed load'));
    throw new FailedPreconditionError(
      missing.map((uri) => `required plugin ${uri} is not loaded (${statusOf(uri)})`).join('; '),
    );
  }
  return set;
}

/** Why `reg` cannot start, or undefined: every type it requires needs an 'ok' plugin. */
function unmetRequirements(
  reg: PluginRegistration,
  set: PluginSet,
  registry: PluginRegistry,
  statusOf: (uri: string) => string,
): string | undefined {
  const reasons: string[] = [];
  for (const type of reg.requires ?? []) {
    if (type === REQUIRES_ALL || set.getByType(type).size > 0) continue;
    const candidates = registry.registrations().filter((other) => other.type === type);
    reasons.push(
      candidates.length === 0
        ? `requires ${type}, but no plugin of that type is registered`
        : `requires ${type}, but no plugin of that type is loaded (` +
            candidates.map((c) => `${pluginUri(c.type, c.id)}: ${statusOf(pluginUri(c.type, c.id))}`).join(', ') +
            ')',
    );
  }
  return reasons.length > 0 ? reasons.join('; ') : undefined;
}

/** The plugin's table run through its schema; a table for a schema-less plugin is a mistake. */
function parsePluginConfig(reg: PluginRegistration, uri: string, table: unknown, source: string): unknown {
  const keyPath = ['plugins', uri];
  if (!reg.config) {
    if (table !== undefined) {
      throw new ConfigError(source, [{ path: formatKeyPath(keyPath), message: 'this plugin takes no configuration' }]);
    }
    return undefined;
  }
  const input = table ?? {};
  const result = reg.config.safeParse(input);
  if (!result.success) throw new ConfigError(source, configIssuesFromZod(result.error.issues, input, keyPath));
  return result.data;
}

function bindConstant(container: interfaces.Container, token: symbol, value: unknown): void {
  if (container.isBound(token)) container.rebind(token).toConstantValue(value);
  else container.bind(token).toConstantValue(value);
}
