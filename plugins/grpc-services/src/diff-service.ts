import * as grpc from '@grpc/grpc-js';
import {
  Applier,
  Comparer,
  GrpcService,
  InvalidArgumentError,
  namespaceOf,
  NamespacedContentStore,
  NotImplementedError,
  PluginRegistration,
  PluginSkipError,
  PluginType,
  unary,
} from '@berth/core';
import { diffV1 } from '@berth/proto';
import { fromProtoDescriptor, toProtoDescriptor } from './descriptors';
import { leaseOf } from './lease-header';
import { fromProtoMounts } from './snapshots-service';

/**
 * containerd.services.diff.v1.Diff over the differ: Apply extracts a layer
 * from the namespace's content store onto the mounts a client prepared (ctr
 * 1.6 unpacks a pull this way); Diff writes the layer between two mounted
 * trees into the namespace's content store, in the call's lease.
 */
export const diffGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'diff',
  requires: [PluginType.Service, PluginType.Differ],
  init: (ctx) => {
    for (const token of [Applier, Comparer, NamespacedContentStore]) {
      if (!ctx.container.isBound(token)) throw new PluginSkipError(`nothing is bound as ${token.description}`);
    }
    const applier = ctx.container.get<Applier>(Applier);
    const comparer = ctx.container.get<Comparer>(Comparer);
    const content = ctx.container.get<NamespacedContentStore>(NamespacedContentStore);
    return {
      register(server: grpc.Server) {
        const impl: diffV1.DiffServer = {
          apply: unary(async (req, call) => {
            const desc = fromProtoDescriptor(req.diff);
            if (!desc || !desc.digest) throw new InvalidArgumentError('diff descriptor is required');
            if (req.mounts.length === 0) throw new InvalidArgumentError('mounts are required');
            // Payloads only configure stream processors, which berth does not run (containerd ignores them too
            // when no processor is configured for the media type).
            const applied = await applier.apply(desc, fromProtoMounts(req.mounts), {
              provider: content.forNamespace(namespaceOf(call)),
            });
            return { applied: toProtoDescriptor(applied) };
          }),
          diff: unary(async (req, call) => {
            if (req.right.length === 0) throw new InvalidArgumentError('right mounts are required');
            if (req.sourceDateEpoch) throw new NotImplementedError('source_date_epoch is not supported');
            const labels = Object.keys(req.labels ?? {}).length > 0 ? req.labels : undefined;
            const diff = await comparer.compare(fromProtoMounts(req.left), fromProtoMounts(req.right), {
              ingester: content.forNamespace(namespaceOf(call), { lease: leaseOf(call) }),
              ...(req.mediaType ? { mediaType: req.mediaType } : {}),
              ...(req.ref ? { ref: req.ref } : {}),
              ...(labels ? { labels } : {}),
            });
            return { diff: toProtoDescriptor(diff) };
          }),
        };
        server.addService(diffV1.DiffService, impl);
      },
    };
  },
};
