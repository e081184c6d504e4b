import { ContentStore, PluginType, type PluginRegistration } from '@berth/core';
import { LocalContentStore } from './local-content-store';

/**
 * The built-in content store (`io.berth.content.v1.content`), under the
 * plugin's root. Also bound to the `ContentStore` token for injection.
 */
export const contentPlugin: PluginRegistration<unknown, LocalContentStore> = {
  type: PluginType.Content,
  id: 'content',
  init(ctx) {
    const store = new LocalContentStore(ctx.root);
    ctx.meta.exports.root = ctx.root;
    // Guarded, as the metadata plugin does, so a host that binds its own
    // ContentStore does not end up with two ambiguous bindings.
    if (!ctx.container.isBound(ContentStore)) {
      ctx.container.bind<ContentStore>(ContentStore).toConstantValue(store);
    }
    return store;
  },
};
