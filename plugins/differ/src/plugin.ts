import { join } from 'path';
import { type PluginRegistration, PluginType, z } from '@berth/core';
import { DEFAULT_MAX_LAYER_BYTES } from './decompress';
import { Applier, Comparer } from './types';
import { WalkingDiffer } from './walking-differ';

const walkingDifferConfig = z
  .object({
    /** Uncompressed bytes after which an apply stops: the bound on decompression bombs. */
    max_layer_bytes: z.number().int().positive().default(DEFAULT_MAX_LAYER_BYTES),
    /** `refuse-outside-root` or containerd's `resolve-in-root`; see SymlinkPolicy. */
    symlinks: z.enum(['refuse-outside-root', 'resolve-in-root']).default('refuse-outside-root'),
  })
  .strict();

export type WalkingDifferConfig = z.infer<typeof walkingDifferConfig>;

/**
 * The walking differ (`io.berth.differ.v1.walking`). Content comes with each
 * call (`provider` / `ingester`, already scoped to a namespace), so it needs
 * no other plugin. Also bound to the `Applier` and `Comparer` tokens.
 */
export const walkingDifferPlugin: PluginRegistration<WalkingDifferConfig, WalkingDiffer> = {
  type: PluginType.Differ,
  id: 'walking',
  config: walkingDifferConfig,
  init(ctx) {
    const differ = new WalkingDiffer({
      tempDir: join(ctx.state, 'tmpmounts'),
      maxBytes: ctx.config.max_layer_bytes,
      symlinks: ctx.config.symlinks,
    });
    ctx.meta.platforms.push(`linux/${process.arch === 'x64' ? 'amd64' : process.arch}`);
    if (!ctx.container.isBound(Applier)) ctx.container.bind<Applier>(Applier).toConstantValue(differ);
    if (!ctx.container.isBound(Comparer)) ctx.container.bind<Comparer>(Comparer).toConstantValue(differ);
    return differ;
  },
};
