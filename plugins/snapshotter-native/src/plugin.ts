import { bindSnapshotter, PluginSkipError, PluginType, z, type PluginRegistration } from '@berth/core';
import { NativeSnapshotter } from './native-snapshotter';

export const nativeSnapshotterConfig = z.object({
  /** Where snapshots live; empty means the plugin's own root (`<root>/io.berth.snapshotter.v1.native`). */
  root_path: z.string().default(''),
});
export type NativeSnapshotterConfig = z.infer<typeof nativeSnapshotterConfig>;

/** `io.berth.snapshotter.v1.native`: full-copy snapshots mounted by bind. */
export const nativeSnapshotterPlugin: PluginRegistration<NativeSnapshotterConfig, NativeSnapshotter> = {
  type: PluginType.Snapshotter,
  id: 'native',
  config: nativeSnapshotterConfig,
  async init(ctx) {
    if (process.platform !== 'linux') throw new PluginSkipError(`native snapshotter needs Linux bind mounts (this is ${process.platform})`);
    const root = ctx.config.root_path || ctx.root;
    return bindSnapshotter(ctx, await NativeSnapshotter.open(root, { logger: ctx.logger }), { root });
  },
};
