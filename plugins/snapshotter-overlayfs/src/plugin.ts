import { bindSnapshotter, PluginType, z, type PluginRegistration } from '@berth/core';
import { mountAll, unmountAll } from '@berth/sys';
import { OverlaySnapshotter } from './overlay-snapshotter';
import { checkOverlaySupport, defaultOverlayOptions } from './overlay-support';

/** `[plugins."io.berth.snapshotter.v1.overlayfs"]`, with containerd's keys. */
export const overlayfsConfigSchema = z
  .object({
    /** Report each snapshot's upper dir as label `containerd.io/snapshot/overlay.upperdir`. */
    upperdir_label: z.boolean().default(false),
    /** Delete a removed snapshot's directory at once instead of at the next cleanup. */
    sync_remove: z.boolean().default(false),
    /** Extra options for every overlay mount, after `index=off`/`userxattr`. */
    mount_options: z.array(z.string().min(1)).default([]),
  })
  .strict();
export type OverlayfsConfig = z.output<typeof overlayfsConfigSchema>;

/**
 * The overlayfs snapshotter plugin. Skips itself (PluginSkipError) when a
 * test overlay cannot be mounted under its root or the filesystem lacks d_type.
 */
export const overlayfsSnapshotterPlugin: PluginRegistration<OverlayfsConfig, OverlaySnapshotter> = {
  type: PluginType.Snapshotter,
  id: 'overlayfs',
  config: overlayfsConfigSchema,
  async init(ctx) {
    const mountOptions = [...defaultOverlayOptions(), ...ctx.config.mount_options];
    await checkOverlaySupport(ctx.root, { mountAll, unmountAll }, mountOptions);
    const snapshotter = await OverlaySnapshotter.open(ctx.root, {
      syncRemove: ctx.config.sync_remove,
      upperdirLabel: ctx.config.upperdir_label,
      mountOptions: ctx.config.mount_options,
      logger: ctx.logger,
    });
    return bindSnapshotter(ctx, snapshotter, { root: ctx.root });
  },
};
