/**
 * @berth/core: the framework. Plugin registration and loading, config, error
 * kinds, metadata, events, filters, the local services and the typed facade
 * (in-process `createBerth`, remote `connect`). No Linux specifics live here.
 */
import 'reflect-metadata';

export * from './errdefs';
/** The one zod copy plugin config schemas should use. */
export { z } from 'zod';
export * from './version';
export { createLogger, silentLogger, type Logger, type LogLevel } from './log';

export * from './plugin';
export * from './config';
export * from './filters';
export * from './events';
export * from './metadata';

export { NamespacesService, NamespaceTopics } from './namespaces/namespaces-service';
export { IntrospectionService, loadServerUuid, toPluginInfo } from './introspection/introspection-service';
export {
  corePlugins,
  exchangePlugin,
  introspectionServicePlugin,
  namespacesServicePlugin,
  PluginRecords,
} from './builtins';

export {
  GrpcService,
  LEASE_METADATA_KEY,
  leaseOf,
  NAMESPACE_METADATA_KEY,
  namespaceOf,
  optionalNamespaceOf,
  serverStream,
  unary,
} from './server/grpc-service';
export { prepareSocket, secureSocket, socketPath } from './server/socket';

export * from './content';
export * from './images';
export * from './leases';
export * from './gc';
export * from './snapshots';
export * from './diff';
export * from './transfer/types';
export * from './containers';
export * from './runtime';
export * from './tasks';

export type {
  Berth,
  ContainersApi,
  ContentApi,
  CreateTaskRequestOptions,
  EventsApi,
  ImagesApi,
  IntrospectionApi,
  LeasesApi,
  NamespacesApi,
  PluginInfo,
  SnapshotsApi,
  TaskMetric,
  TasksApi,
  VersionInfo,
} from './client/types';
export { createBerth, type CreateBerthOptions } from './client/local';
export { connect, grpcTarget, type ConnectOptions } from './client/remote';
