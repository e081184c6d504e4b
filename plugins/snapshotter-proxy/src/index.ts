/**
 * @berth/snapshotter-proxy: snapshotters over containerd's Snapshots gRPC API,
 * both ways. ProxySnapshotter uses one served by another process (berthd's
 * `[proxy_plugins]`, via proxySnapshotterPlugins); snapshotsServer and
 * serveSnapshotters serve berth's raw snapshotters to such clients, containerd
 * included.
 */
export { ProxySnapshotter, type ProxySnapshotterConnectOptions } from './proxy-snapshotter';
export { snapshotsServer, type SnapshotsServerOptions, type SnapshotterSource } from './snapshots-server';
export { serveSnapshotters, type ServeSnapshottersOptions, type SnapshottersServer } from './serve';
export { prepareSocket, secureSocket, socketPath } from './socket';
export { proxySnapshotterPlugins, type ProxySnapshotterPluginOptions } from './plugin';
export { fromProtoInfo, fromProtoMount, toProtoInfo, toProtoMount } from './convert';
