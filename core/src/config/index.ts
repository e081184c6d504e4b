export {
  BerthConfigSchema,
  CONFIG_VERSION,
  DEFAULT_CONFIG_PATH,
  DEFAULT_GRPC_ADDRESS,
  DEFAULT_ROOT,
  DEFAULT_STATE,
  defaultConfig,
  resolveTtrpcAddress,
} from './berth-config';
export type { BerthConfig, BerthConfigInput } from './berth-config';
export { ConfigError, formatKeyPath } from './config-error';
export type { ConfigIssue } from './config-error';
export { loadConfigFile, parseConfig } from './config-file';
export { pluginDefaults, renderConfig } from './render-config';
export { validatePluginUris } from './validate-plugin-uris';
