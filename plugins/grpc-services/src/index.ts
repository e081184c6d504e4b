import type { PluginRegistration } from '@berth/core';
import { eventsGrpcPlugin } from './events-service';
import { healthGrpcPlugin } from './health-service';
import { introspectionGrpcPlugin } from './introspection-service';
import { namespacesGrpcPlugin } from './namespaces-service';
import { versionGrpcPlugin } from './version-service';

export { eventsGrpcPlugin, healthGrpcPlugin, introspectionGrpcPlugin, namespacesGrpcPlugin, versionGrpcPlugin };

/** Every containerd-compatible gRPC service berth serves, for berthd's builtins. */
export const grpcServicePlugins: PluginRegistration[] = [
  versionGrpcPlugin,
  namespacesGrpcPlugin,
  introspectionGrpcPlugin,
  eventsGrpcPlugin,
  healthGrpcPlugin,
] as PluginRegistration[];
