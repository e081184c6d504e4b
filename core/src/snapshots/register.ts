import type { InitContext } from '../plugin/types';
import { Snapshotter } from './types';

/**
 * The end of a snapshotter plugin's init: binds `snapshotter` as
 * `Snapshotter` named by the plugin's id, which is how the snapshot service
 * finds it, and adds `exports` (e.g. its root) to what introspection shows.
 * If binding fails the snapshotter is closed, so a failed init leaves nothing open.
 */
export async function bindSnapshotter<S extends Snapshotter>(
  ctx: Pick<InitContext, 'id' | 'container' | 'meta'>,
  snapshotter: S,
  exports: Record<string, string> = {},
): Promise<S> {
  try {
    ctx.container.bind<Snapshotter>(Snapshotter).toConstantValue(snapshotter).whenTargetNamed(ctx.id);
  } catch (err) {
    await snapshotter.close();
    throw err;
  }
  Object.assign(ctx.meta.exports, exports);
  return snapshotter;
}
