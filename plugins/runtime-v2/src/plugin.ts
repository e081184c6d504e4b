import * as path from 'path';
import { EventExchange, PluginType, TaskRuntime, type PluginRegistration } from '@berth/core';
import { runtimeV2ConfigSchemaWith, type RuntimeV2Config } from './config';
import { ShimManager } from './shim-manager';

/** Defaults a host fills in for the plugin's config, e.g. berthd's own path as `publish_binary`. */
export interface RuntimeV2Defaults {
  publishBinary?: string;
}

/**
 * The runtime v2 plugin (`io.berth.runtime.v2.task`) with `defaults` as its
 * config defaults. It binds `TaskRuntime` in the shared container.
 */
export function createRuntimeV2Plugin(defaults: RuntimeV2Defaults = {}): PluginRegistration<RuntimeV2Config, ShimManager> {
  return {
    type: PluginType.Runtime,
    id: 'task',
    requires: [PluginType.Event],
    config: runtimeV2ConfigSchemaWith(defaults),
    async init(ctx) {
      const manager = await ShimManager.open({
        id: ctx.uri,
        stateDir: ctx.state,
        rootDir: ctx.root,
        // Embedded, there is no daemon socket; the runc shim only hashes this into its socket name,
        // so a stable path keeps the name stable across restarts.
        address: ctx.address || path.join(ctx.state, 'embedded.sock'),
        ttrpcAddress: ctx.ttrpcAddress || path.join(ctx.state, 'events.ttrpc'),
        publishBinary: ctx.config.publish_binary,
        defaultRuntime: ctx.config.default_runtime,
        runtimes: ctx.config.runtimes,
        shimDebug: ctx.config.shim_debug,
        exchange: ctx.getSingle<EventExchange>(PluginType.Event),
        logger: ctx.logger,
      });
      if (ctx.container.isBound(TaskRuntime)) ctx.container.rebind<TaskRuntime>(TaskRuntime).toConstantValue(manager);
      else ctx.container.bind<TaskRuntime>(TaskRuntime).toConstantValue(manager);
      ctx.meta.exports.default_runtime = ctx.config.default_runtime;
      return manager;
    },
  };
}

/** The plugin with an empty `publish_binary` default (embedding); berthd uses its own path. */
export const runtimeV2Plugin: PluginRegistration = createRuntimeV2Plugin() as PluginRegistration;
