import * as grpc from '@grpc/grpc-js';
import {
  EventExchange,
  GrpcService,
  InvalidArgumentError,
  namespaceOf,
  PluginRegistration,
  PluginType,
  serverStream,
  unary,
} from '@berth/core';
import { eventsV1 } from '@berth/proto';

/** containerd.services.events.v1.Events: publish, forward, subscribe. */
export const eventsGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'events',
  requires: [PluginType.Event],
  init: (ctx) => {
    const exchange = ctx.getSingle<EventExchange>(PluginType.Event);
    return {
      register(server: grpc.Server) {
        const impl: eventsV1.EventsServer = {
          publish: unary(async (req, call) => {
            if (!req.event) throw new InvalidArgumentError('event is required');
            await exchange.publish(namespaceOf(call), req.topic, { typeUrl: req.event.typeUrl, value: req.event.value });
            return {};
          }),
          forward: unary(async (req) => {
            const env = req.envelope;
            if (!env || !env.event) throw new InvalidArgumentError('envelope with an event is required');
            await exchange.forward({
              timestamp: env.timestamp ?? new Date(),
              namespace: env.namespace,
              topic: env.topic,
              event: { typeUrl: env.event.typeUrl, value: env.event.value },
            });
            return {};
          }),
          subscribe: serverStream(async (req, call, signal) => {
            for await (const env of exchange.subscribe(req.filters, signal)) {
              call.write({
                timestamp: env.timestamp,
                namespace: env.namespace,
                topic: env.topic,
                event: { typeUrl: env.event.typeUrl, value: Buffer.from(env.event.value) },
              });
            }
          }),
        };
        server.addService(eventsV1.EventsService, impl);
      },
    };
  },
};
