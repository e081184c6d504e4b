import { Exchange } from './events';
import { EventExchange } from './events/types';
import { IntrospectionService, loadServerUuid } from './introspection/introspection-service';
import { metadataPlugin } from './metadata';
import { MetadataStore } from './metadata/types';
import { NamespacesService } from './namespaces/namespaces-service';
import { PluginRecord, PluginRegistration, PluginType } from './plugin/types';

/**
 * Token for a function returning the live plugin records; the host (berthd or
 * createBerth) binds it before loading so introspection can report every plugin,
 * including those that load after it.
 */
export const PluginRecords = Symbol.for('io.berth.PluginRecords');
export type PluginRecords = () => PluginRecord[];

/** The event exchange: one per daemon. */
export const exchangePlugin: PluginRegistration<unknown, EventExchange> = {
  type: PluginType.Event,
  id: 'exchange',
  init: (ctx) => {
    const exchange = new Exchange();
    // Injectable by token too, so plugins can `@inject(EventExchange)`.
    ctx.container.bind<EventExchange>(EventExchange).toConstantValue(exchange);
    return exchange;
  },
};

/** Namespaces over metadata, publishing /namespaces/* events. */
export const namespacesServicePlugin: PluginRegistration<unknown, NamespacesService> = {
  type: PluginType.Service,
  id: 'namespaces',
  requires: [PluginType.Metadata, PluginType.Event],
  init: (ctx) =>
    new NamespacesService(
      ctx.getSingle<MetadataStore>(PluginType.Metadata).namespaces,
      ctx.getSingle<EventExchange>(PluginType.Event),
    ),
};

/** Introspection: the plugin records and the server's persistent uuid. */
export const introspectionServicePlugin: PluginRegistration<unknown, IntrospectionService> = {
  type: PluginType.Service,
  id: 'introspection',
  init: (ctx) => {
    const records = ctx.container.get<PluginRecords>(PluginRecords);
    return new IntrospectionService(records, loadServerUuid(ctx.root));
  },
};

/** The plugins every berth needs, daemon or embedded, in no particular order. */
export const corePlugins: PluginRegistration[] = [
  metadataPlugin as PluginRegistration,
  exchangePlugin as PluginRegistration,
  namespacesServicePlugin as PluginRegistration,
  introspectionServicePlugin as PluginRegistration,
];
