import * as path from 'path';
import { PluginRegistration, pluginUri, z } from '@berth/core';
import { defaultPlugins } from '@berth/builtins';
import { grpcServicePlugins } from '@berth/grpc-services';

/**
 * berthd's own executable. Shims get it as `-publish-binary` and may run
 * `<it> --address A publish --topic T --namespace N`, as with containerd's binary.
 */
export const BERTHD_BINARY = path.resolve(__dirname, '..', 'bin', 'berthd.js');

/** The runtime v2 plugin's URI; its `publish_binary` defaults to berthd itself. */
const RUNTIME_V2_URI = 'io.berth.runtime.v2.task';

/**
 * `reg` with `defaults` under its config table: keys the table leaves out take
 * these values, so `berthd config default` shows them too.
 */
export function withConfigDefaults(reg: PluginRegistration, defaults: Record<string, unknown>): PluginRegistration {
  const schema = reg.config;
  if (!schema) return reg;
  const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  return {
    ...reg,
    config: z.preprocess((table) => (table === undefined ? { ...defaults } : isTable(table) ? { ...defaults, ...table } : table), schema),
  };
}

function withDaemonDefaults(reg: PluginRegistration): PluginRegistration {
  return pluginUri(reg.type, reg.id) === RUNTIME_V2_URI ? withConfigDefaults(reg, { publish_binary: BERTHD_BINARY }) : reg;
}

/** The plugins berthd ships with: berth's defaults plus the gRPC services, in one explicit list. */
export const builtinPlugins: PluginRegistration[] = [...defaultPlugins().map(withDaemonDefaults), ...grpcServicePlugins];
