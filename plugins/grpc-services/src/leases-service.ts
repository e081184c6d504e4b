import * as grpc from '@grpc/grpc-js';
import { GrpcService, InvalidArgumentError, Lease, LeaseManager, namespaceOf, PluginRegistration, PluginType, unary } from '@berth/core';
import { leasesV1 } from '@berth/proto';

function toProtoLease(lease: Lease): leasesV1.Lease {
  return { id: lease.id, createdAt: lease.createdAt, labels: lease.labels };
}

/** containerd.services.leases.v1.Leases over the lease manager. */
export const leasesGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'leases',
  requires: [PluginType.Lease],
  init: (ctx) => {
    const leases = ctx.container.get<LeaseManager>(LeaseManager);
    return {
      register(server: grpc.Server) {
        const impl: leasesV1.LeasesServer = {
          create: unary(async (req, call) => ({
            // expiry travels as the containerd.io/gc.expire label, as ctr sends it
            lease: toProtoLease(await leases.create(namespaceOf(call), { id: req.id || undefined, labels: req.labels })),
          })),
          delete: unary(async (req, call) => {
            await leases.delete(namespaceOf(call), req.id, { sync: req.sync });
            return {};
          }),
          list: unary(async (req, call) => ({
            leases: (await leases.list(namespaceOf(call), req.filters)).map(toProtoLease),
          })),
          addResource: unary(async (req, call) => {
            if (!req.resource) throw new InvalidArgumentError('resource is required');
            await leases.addResource(namespaceOf(call), req.id, req.resource);
            return {};
          }),
          deleteResource: unary(async (req, call) => {
            if (!req.resource) throw new InvalidArgumentError('resource is required');
            await leases.deleteResource(namespaceOf(call), req.id, req.resource);
            return {};
          }),
          listResources: unary(async (req, call) => ({
            resources: await leases.listResources(namespaceOf(call), req.id),
          })),
        };
        server.addService(leasesV1.LeasesService, impl);
      },
    };
  },
};
