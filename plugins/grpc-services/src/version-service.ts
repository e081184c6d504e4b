import * as grpc from '@grpc/grpc-js';
import { BERTH_REVISION, BERTH_VERSION, GrpcService, PluginRegistration, PluginType, unary } from '@berth/core';
import { versionV1 } from '@berth/proto';

/** containerd.services.version.v1.Version */
export const versionGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'version',
  init: () => ({
    register(server: grpc.Server) {
      const impl: versionV1.VersionServer = {
        version: unary(async () => ({ version: BERTH_VERSION, revision: BERTH_REVISION })),
      };
      server.addService(versionV1.VersionService, impl);
    },
  }),
};
