import * as grpc from '@grpc/grpc-js';
import {
  GrpcCode,
  GrpcService,
  IntrospectionService,
  PluginInfo,
  PluginRegistration,
  PluginType,
  unary,
} from '@berth/core';
import { introspectionV1 } from '@berth/proto';

/** `os/arch[/variant]` → containerd.types.Platform */
function platformOf(spec: string) {
  const [os = '', architecture = '', variant = ''] = spec.split('/');
  return { os, architecture, variant, osVersion: '', osFeatures: [] as string[] };
}

/**
 * ctr prints "skip" when init_err mentions containerd's ErrSkipPlugin text
 * ("skip plugin"), "error" otherwise; keep that contract.
 */
function initErrorOf(p: PluginInfo) {
  if (p.status === 'ok') return undefined;
  if (p.status === 'skipped' || p.status === 'disabled') {
    const reason = p.status === 'disabled' ? 'disabled by config' : (p.error ?? '');
    return { code: GrpcCode.UNKNOWN, message: `skip plugin: ${reason}`, details: [] };
  }
  return { code: GrpcCode.UNKNOWN, message: p.error ?? 'init failed', details: [] };
}

/** containerd.services.introspection.v1.Introspection */
export const introspectionGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'introspection',
  requires: [PluginType.Service],
  init: (ctx) => {
    const service = ctx.getById<IntrospectionService>(PluginType.Service, 'introspection');
    return {
      register(server: grpc.Server) {
        const impl: introspectionV1.IntrospectionServer = {
          plugins: unary(async (req) => {
            const plugins = await service.plugins(req.filters);
            return {
              plugins: plugins.map((p) => ({
                type: p.type,
                id: p.id,
                requires: p.requires,
                platforms: p.platforms.map(platformOf),
                exports: p.exports,
                capabilities: p.capabilities,
                initErr: initErrorOf(p),
              })),
            };
          }),
          server: unary(async () => {
            const { uuid } = await service.server();
            return { uuid, pid: process.pid, pidns: 0, deprecations: [] };
          }),
        };
        server.addService(introspectionV1.IntrospectionService, impl);
      },
    };
  },
};
