import * as grpc from '@grpc/grpc-js';
import {
  GrpcService,
  InvalidArgumentError,
  isNotFound,
  NamespacesService,
  parseFilters,
  PluginRegistration,
  PluginType,
  unary,
} from '@berth/core';
import { namespacesV1 } from '@berth/proto';

/**
 * Applies an Update's field mask the way containerd does: no mask replaces all
 * labels; `labels` replaces all; `labels.<key>` sets or (empty value) clears one.
 */
async function applyUpdate(
  service: NamespacesService,
  name: string,
  labels: Record<string, string>,
  mask: string[],
) {
  if (mask.length === 0 || mask.includes('labels')) return service.replaceLabels(name, labels);
  const changes: Record<string, string> = {};
  for (const path of mask) {
    if (!path.startsWith('labels.')) throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on namespace ${JSON.stringify(name)}`);
    const key = path.slice('labels.'.length);
    changes[key] = labels[key] ?? '';
  }
  return service.label(name, changes);
}

/** containerd.services.namespaces.v1.Namespaces */
export const namespacesGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'namespaces',
  requires: [PluginType.Service],
  init: (ctx) => {
    const service = ctx.getById<NamespacesService>(PluginType.Service, 'namespaces');
    return {
      register(server: grpc.Server) {
        const impl: namespacesV1.NamespacesServer = {
          // ctr reads a namespace's default labels before it exists: answer empty labels.
          get: unary(async (req) => {
            try {
              return { namespace: await service.get(req.name) };
            } catch (err) {
              if (isNotFound(err)) return { namespace: { name: req.name, labels: {} } };
              throw err;
            }
          }),
          list: unary(async (req) => {
            const filter = parseFilters(req.filter ? [req.filter] : []);
            const all = await service.list();
            return {
              namespaces: all.filter((n) =>
                filter.match(([field, ...rest]) =>
                  field === 'name' ? n.name : field === 'labels' && rest.length ? n.labels[rest.join('.')] : undefined,
                ),
              ),
            };
          }),
          create: unary(async (req) => {
            if (!req.namespace) throw new InvalidArgumentError('namespace is required');
            return { namespace: await service.create(req.namespace.name, req.namespace.labels ?? {}) };
          }),
          update: unary(async (req) => {
            if (!req.namespace) throw new InvalidArgumentError('namespace is required');
            const mask = req.updateMask ?? [];
            return { namespace: await applyUpdate(service, req.namespace.name, req.namespace.labels ?? {}, mask) };
          }),
          delete: unary(async (req) => {
            await service.delete(req.name);
            return {};
          }),
        };
        server.addService(namespacesV1.NamespacesService, impl);
      },
    };
  },
};
