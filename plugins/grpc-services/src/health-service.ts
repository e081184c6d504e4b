import * as grpc from '@grpc/grpc-js';
import { GrpcService, PluginRegistration, PluginType, serverStream, unary } from '@berth/core';
import { healthV1 } from '@berth/proto';

const SERVING = healthV1.HealthCheckResponse_ServingStatus.SERVING;

/** grpc.health.v1.Health: the daemon answers SERVING once it listens. */
export const healthGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'healthcheck',
  init: () => ({
    register(server: grpc.Server) {
      const impl: healthV1.HealthServer = {
        check: unary(async () => ({ status: SERVING })),
        watch: serverStream(async (_req, call, signal) => {
          call.write({ status: SERVING });
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        }),
      };
      server.addService(healthV1.HealthService, impl);
    },
  }),
};
