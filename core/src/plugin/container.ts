import { Container, interfaces } from 'inversify';

/**
 * The one inversify container a daemon (or embedding) shares between plugins.
 * Singleton by default: a plugin's services are process-wide objects, and
 * Theia's rule "always inSingletonScope" is easy to forget.
 */
export function createContainer(): interfaces.Container {
  return new Container({ defaultScope: 'Singleton' });
}

/** A plugin's URI, `<type>.<id>`: its name in config, paths and introspection. */
export function pluginUri(type: string, id: string): string {
  return `${type}.${id}`;
}

/**
 * The container token under which an initialised plugin's instance is bound.
 * `Symbol.for` so a third-party package that computes the same URI gets the same
 * token, e.g. `@inject(pluginToken('io.berth.metadata.v1', 'sqlite'))`.
 */
export function pluginToken(type: string, id: string): symbol {
  return Symbol.for(pluginUri(type, id));
}
