import type { PluginRegistration } from '@berth/core';
import { containersGrpcPlugin } from './containers-service';
import { contentGrpcPlugin } from './content-service';
import { diffGrpcPlugin } from './diff-service';
import { eventsGrpcPlugin } from './events-service';
import { healthGrpcPlugin } from './health-service';
import { imagesGrpcPlugin } from './images-service';
import { introspectionGrpcPlugin } from './introspection-service';
import { leasesGrpcPlugin } from './leases-service';
import { namespacesGrpcPlugin } from './namespaces-service';
import { snapshotsGrpcPlugin } from './snapshots-service';
import { tasksGrpcPlugin } from './tasks-service';
import { transferGrpcPlugin } from './transfer-service';
import { versionGrpcPlugin } from './version-service';

export {
  containersGrpcPlugin,
  contentGrpcPlugin,
  diffGrpcPlugin,
  eventsGrpcPlugin,
  healthGrpcPlugin,
  imagesGrpcPlugin,
  introspectionGrpcPlugin,
  leasesGrpcPlugin,
  namespacesGrpcPlugin,
  snapshotsGrpcPlugin,
  tasksGrpcPlugin,
  transferGrpcPlugin,
  versionGrpcPlugin,
};
export { fromProtoMounts, toProtoMounts } from './snapshots-service';
export { LEASE_METADATA_KEY, leaseOf } from './lease-header';

/** Every gRPC service berth serves, for berthd's builtins. */
export const grpcServicePlugins: PluginRegistration[] = [
  versionGrpcPlugin,
  namespacesGrpcPlugin,
  introspectionGrpcPlugin,
  eventsGrpcPlugin,
  healthGrpcPlugin,
  contentGrpcPlugin,
  imagesGrpcPlugin,
  leasesGrpcPlugin,
  snapshotsGrpcPlugin,
  diffGrpcPlugin,
  transferGrpcPlugin,
  containersGrpcPlugin,
  tasksGrpcPlugin,
] as PluginRegistration[];
