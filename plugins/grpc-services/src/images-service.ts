import * as grpc from '@grpc/grpc-js';
import {
  GarbageCollector,
  GrpcService,
  Image,
  ImageStore,
  InvalidArgumentError,
  namespaceOf,
  PluginRegistration,
  PluginType,
  unary,
} from '@berth/core';
import { imagesV1 } from '@berth/proto';
import { fromProtoDescriptor, toProtoDescriptor } from './descriptors';

function toProtoImage(image: Image): imagesV1.Image {
  return {
    name: image.name,
    labels: image.labels,
    target: toProtoDescriptor(image.target),
    createdAt: image.createdAt,
    updatedAt: image.updatedAt,
  };
}

/** containerd.services.images.v1.Images over the image store. */
export const imagesGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'images',
  requires: [PluginType.Service, PluginType.GC],
  init: (ctx) => {
    const images = ctx.container.get<ImageStore>(ImageStore);
    const gc = ctx.container.get<GarbageCollector>(GarbageCollector);
    return {
      register(server: grpc.Server) {
        const impl: imagesV1.ImagesServer = {
          get: unary(async (req, call) => ({ image: toProtoImage(await images.get(namespaceOf(call), req.name)) })),
          list: unary(async (req, call) => ({
            images: (await images.list(namespaceOf(call), req.filters)).map(toProtoImage),
          })),
          create: unary(async (req, call) => {
            const target = fromProtoDescriptor(req.image?.target);
            if (!req.image || !target) throw new InvalidArgumentError('image with a target is required');
            const created = await images.create(namespaceOf(call), {
              name: req.image.name,
              target,
              labels: req.image.labels,
            });
            return { image: toProtoImage(created) };
          }),
          update: unary(async (req, call) => {
            if (!req.image) throw new InvalidArgumentError('image is required');
            const target = fromProtoDescriptor(req.image.target);
            const updated = await images.update(
              namespaceOf(call),
              { name: req.image.name, labels: req.image.labels, ...(target ? { target } : {}) },
              req.updateMask ?? [],
            );
            return { image: toProtoImage(updated) };
          }),
          delete: unary(async (req, call) => {
            await images.delete(namespaceOf(call), req.name);
            // `sync` asks for the space back before answering, as containerd does.
            if (req.sync) await gc.collect();
            return {};
          }),
        };
        server.addService(imagesV1.ImagesService, impl);
      },
    };
  },
};
