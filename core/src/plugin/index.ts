export { PluginType } from './types';
export type {
  InitContext,
  PluginMeta,
  PluginRecord,
  PluginRegistration,
  PluginStatus,
} from './types';
export { PluginSkipError, isPluginSkip } from './plugin-skip-error';
export { PluginRegistry, PluginCycleError, REQUIRES_ALL, isValidPluginType } from './plugin-registry';
export { PluginSet } from './plugin-set';
export { loadPlugins } from './load-plugins';
export type { LoadPluginsOptions, PluginLoadConfig } from './load-plugins';
export { createContainer, pluginToken, pluginUri } from './container';

// The one inversify every plugin uses: tokens and decorator metadata only match
// within a single copy, so third-party packages import these from @berth/core.
export { Container as InversifyContainer, ContainerModule, inject, injectable, named, optional, postConstruct } from 'inversify';
export type { interfaces } from 'inversify';
