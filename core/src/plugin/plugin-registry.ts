import { AlreadyExistsError, InvalidArgumentError } from '../errdefs';
import { pluginUri } from './container';
import type { PluginRegistration } from './types';

/**
 * A plugin type: a reverse-DNS prefix of at least two labels, a name, and a
 * version (`io.berth.snapshotter.v1`, `com.example.widget.v2beta1`). Lower case
 * only, so two spellings never name the same interface.
 */
const pluginTypePattern = /^[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9]+(?:-[a-z0-9]+)*)+\.v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;

/** A plugin id: it becomes part of directory names, so no slashes or dot-dot. */
const pluginIdPattern = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

/** The `requires` entry meaning "after every other plugin". */
export const REQUIRES_ALL = '*';

/** Whether `type` is a well-formed plugin type string. */
export function isValidPluginType(type: string): boolean {
  return pluginTypePattern.test(type);
}

/** Thrown by `graph()`: `cycle` lists URIs and ends where it starts. */
export class PluginCycleError extends InvalidArgumentError {
  readonly cycle: readonly string[];
  constructor(cycle: readonly string[]) {
    super(`plugin dependency cycle: ${cycle.join(' -> ')}`);
    this.cycle = cycle;
  }
}

/**
 * The set of known plugins, validated as they are registered (containerd's
 * plugin.Register rules) and ordered by what they require.
 */
export class PluginRegistry {
  private readonly byUri = new Map<string, PluginRegistration>();

  /** A registry holding `registrations`, validated in order. */
  static from(registrations: Iterable<PluginRegistration>): PluginRegistry {
    const registry = new PluginRegistry();
    for (const reg of registrations) registry.register(reg);
    return registry;
  }

  /**
   * Adds a plugin. InvalidArgument for an empty or malformed type or id, a
   * malformed requirement, a plugin requiring its own type, or `'*'` with other
   * requirements; AlreadyExists for a second plugin with the same URI.
   */
  register(reg: PluginRegistration): void {
    if (!reg.type) throw new InvalidArgumentError('plugin registration: type is empty');
    if (!reg.id) throw new InvalidArgumentError(`plugin registration ${reg.type}: id is empty`);
    if (!isValidPluginType(reg.type)) {
      throw new InvalidArgumentError(
        `plugin ${pluginUri(reg.type, reg.id)}: type ${JSON.stringify(reg.type)} is not a reverse-DNS name ` +
          `with a version, like "io.berth.snapshotter.v1"`,
      );
    }
    const uri = pluginUri(reg.type, reg.id);
    if (!pluginIdPattern.test(reg.id)) {
      throw new InvalidArgumentError(
        `plugin ${uri}: id ${JSON.stringify(reg.id)} must be letters and digits separated by ".", "_" or "-"`,
      );
    }
    if (typeof reg.init !== 'function') throw new InvalidArgumentError(`plugin ${uri}: init is not a function`);
    const requires = reg.requires ?? [];
    for (const required of requires) {
      if (required === REQUIRES_ALL) {
        if (requires.length !== 1) {
          throw new InvalidArgumentError(`plugin ${uri}: "*" must be its only requirement`);
        }
      } else if (required === reg.type) {
        throw new InvalidArgumentError(`plugin ${uri}: requires its own type ${reg.type}`);
      } else if (!isValidPluginType(required)) {
        throw new InvalidArgumentError(`plugin ${uri}: requires ${JSON.stringify(required)}, which is not a plugin type`);
      }
    }
    if (this.byUri.has(uri)) throw new AlreadyExistsError(`plugin ${uri}: already registered`);
    this.byUri.set(uri, reg);
  }

  /** Every registration, in the order registered. */
  registrations(): PluginRegistration[] {
    return [...this.byUri.values()];
  }

  /** The registration with this URI, if any. */
  get(uri: string): PluginRegistration | undefined {
    return this.byUri.get(uri);
  }

  /** Every registered URI, in the order registered. */
  uris(): string[] {
    return [...this.byUri.keys()];
  }

  /**
   * The registrations whose URI is not in `disabled`, ordered so each comes after
   * every plugin of every type it requires; `'*'` plugins come after all plugins
   * that do not require `'*'`. Otherwise registration order is kept. A required
   * type with no enabled plugin is not an error here (the loader fails only the
   * dependent); a cycle throws PluginCycleError naming it.
   */
  graph(disabled: ReadonlySet<string> = new Set()): PluginRegistration[] {
    const enabled = this.registrations().filter((reg) => !disabled.has(pluginUri(reg.type, reg.id)));
    const requiresAll = (reg: PluginRegistration) => (reg.requires ?? []).includes(REQUIRES_ALL);
    const dependencies = (reg: PluginRegistration) =>
      requiresAll(reg)
        ? enabled.filter((other) => other !== reg && !requiresAll(other))
        : enabled.filter((other) => (reg.requires ?? []).includes(other.type));

    const ordered: PluginRegistration[] = [];
    const done = new Set<PluginRegistration>();
    const path: PluginRegistration[] = [];
    const visit = (reg: PluginRegistration): void => {
      if (done.has(reg)) return;
      const onPath = path.indexOf(reg);
      if (onPath >= 0) {
        throw new PluginCycleError([...path.slice(onPath), reg].map((r) => pluginUri(r.type, r.id)));
      }
      path.push(reg);
      for (const dependency of dependencies(reg)) visit(dependency);
      path.pop();
      done.add(reg);
      ordered.push(reg);
    };
    for (const reg of enabled) visit(reg);
    return ordered;
  }
}
