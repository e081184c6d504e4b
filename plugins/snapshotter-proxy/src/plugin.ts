import { PluginType, Snapshotter, type BerthConfig, type PluginRegistration } from '@berth/core';
import { ProxySnapshotter } from './proxy-snapshotter';

export interface ProxySnapshotterPluginOptions {
  /** How long each plugin's init waits for its socket to accept a connection (default 5000 ms). */
  dialTimeoutMs?: number;
}

/**
 * One `io.berth.snapshotter.v1` plugin per `[proxy_plugins.<name>]` with
 * `type = "snapshot"`, id `<name>`: its init dials `address` and fails,
 * naming the address, when nothing answers there in time. Loaded, it is a
 * snapshotter like the built-in ones (bound as `Snapshotter` named `<name>`).
 */
export function proxySnapshotterPlugins(
  config: Pick<BerthConfig, 'proxy_plugins'>,
  options: ProxySnapshotterPluginOptions = {},
): PluginRegistration<unknown, ProxySnapshotter>[] {
  return Object.entries(config.proxy_plugins)
    .filter(([, proxy]) => proxy.type === 'snapshot')
    .map(([name, proxy]) => ({
      type: PluginType.Snapshotter,
      id: name,
      async init(ctx) {
        const snapshotter = await ProxySnapshotter.connect(proxy.address, ctx.id, { timeoutMs: options.dialTimeoutMs });
        try {
          ctx.container.bind<Snapshotter>(Snapshotter).toConstantValue(snapshotter).whenTargetNamed(ctx.id);
        } catch (err) {
          await snapshotter.close();
          throw err;
        }
        ctx.meta.exports.address = proxy.address;
        ctx.meta.capabilities.push('proxy');
        return snapshotter;
      },
    }));
}
