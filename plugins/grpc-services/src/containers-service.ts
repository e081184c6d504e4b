import * as grpc from '@grpc/grpc-js';
import {
  AnyMessage,
  Container,
  ContainerStore,
  GrpcService,
  InvalidArgumentError,
  namespaceOf,
  NewContainer,
  PluginRegistration,
  PluginType,
  serverStream,
  unary,
} from '@berth/core';
import { containersV1, type Any } from '@berth/proto';

function toProtoAny(any: AnyMessage): Any {
  const { value } = any;
  return { typeUrl: any.typeUrl, value: Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

function toProtoContainer(container: Container): containersV1.Container {
  const message: containersV1.Container = {
    id: container.id,
    labels: container.labels,
    image: container.image,
    runtime: { name: container.runtime.name },
    snapshotter: container.snapshotter,
    snapshotKey: container.snapshotKey,
    createdAt: container.createdAt,
    updatedAt: container.updatedAt,
    extensions: Object.fromEntries(Object.entries(container.extensions).map(([name, value]) => [name, toProtoAny(value)])),
    sandbox: container.sandbox,
  };
  if (container.runtime.options && message.runtime) message.runtime.options = toProtoAny(container.runtime.options);
  if (container.spec) message.spec = toProtoAny(container.spec);
  return message;
}

/**
 * A request's container as the store takes it. The spec and runtime options
 * are kept exactly as sent (the spec is JSON under the OCI type URL).
 */
function fromProtoContainer(message: containersV1.Container): NewContainer {
  const container: NewContainer = {
    id: message.id,
    labels: { ...message.labels },
    image: message.image,
    runtime: { name: message.runtime?.name ?? '' },
    snapshotter: message.snapshotter,
    snapshotKey: message.snapshotKey,
    extensions: { ...message.extensions },
    sandbox: message.sandbox,
  };
  if (message.runtime?.options) container.runtime.options = message.runtime.options;
  if (message.spec) container.spec = message.spec;
  return container;
}

/** containerd.services.containers.v1.Containers over the container store. */
export const containersGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'containers',
  requires: [PluginType.Service],
  init: (ctx) => {
    const containers = ctx.container.get<ContainerStore>(ContainerStore);
    return {
      register(server: grpc.Server) {
        const impl: containersV1.ContainersServer = {
          get: unary(async (req, call) => ({ container: toProtoContainer(await containers.get(namespaceOf(call), req.id)) })),
          list: unary(async (req, call) => ({
            containers: (await containers.list(namespaceOf(call), req.filters)).map(toProtoContainer),
          })),
          // One container per message, so no message outgrows the size limit.
          listStream: serverStream(async (req, call, signal) => {
            for (const container of await containers.list(namespaceOf(call), req.filters)) {
              if (signal.aborted) return;
              call.write({ container: toProtoContainer(container) });
            }
          }),
          create: unary(async (req, call) => {
            if (!req.container) throw new InvalidArgumentError('container is required');
            const created = await containers.create(namespaceOf(call), fromProtoContainer(req.container));
            return { container: toProtoContainer(created) };
          }),
          update: unary(async (req, call) => {
            if (!req.container) throw new InvalidArgumentError('container is required');
            if (req.container.id === '') throw new InvalidArgumentError('container id is required');
            const updated = await containers.update(namespaceOf(call), fromProtoContainer(req.container), req.updateMask ?? []);
            return { container: toProtoContainer(updated) };
          }),
          delete: unary(async (req, call) => {
            await containers.delete(namespaceOf(call), req.id);
            return {};
          }),
        };
        server.addService(containersV1.ContainersService, impl);
      },
    };
  },
};
