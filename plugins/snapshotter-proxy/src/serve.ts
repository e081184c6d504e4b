import * as fs from 'fs';
import * as grpc from '@grpc/grpc-js';
import { silentLogger, type Logger } from '@berth/core';
import { snapshotsV1 } from '@berth/proto';
import { snapshotsServer, type SnapshotterSource } from './snapshots-server';
import { prepareSocket, secureSocket } from './socket';

export interface ServeSnapshottersOptions {
  /** Owner and group of the socket (default: this process's). */
  uid?: number;
  gid?: number;
  logger?: Logger;
}

/** A running Snapshots server. */
export interface SnapshottersServer {
  /** The socket path it listens on. */
  readonly socket: string;
  /** Stops taking calls (waiting up to 2 s for calls under way), then removes the socket. Leaves the snapshotters open. */
  stop(): Promise<void>;
}

/**
 * Serves raw snapshotters with containerd's Snapshots API on a unix socket
 * (mode 0660): what containerd's `[proxy_plugins.<name>] address` points at.
 * A live server on `address` is refused and a stale socket replaced.
 */
export async function serveSnapshotters(
  address: string,
  snapshotters: SnapshotterSource,
  options: ServeSnapshottersOptions = {},
): Promise<SnapshottersServer> {
  const logger = options.logger ?? silentLogger();
  const socket = await prepareSocket(address);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 16 << 20,
    'grpc.max_send_message_length': 16 << 20,
  });
  server.addService(snapshotsV1.SnapshotsService, snapshotsServer(snapshotters, { logger }));
  try {
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    secureSocket(socket, options.uid, options.gid);
  } catch (err) {
    server.forceShutdown();
    fs.rmSync(socket, { force: true });
    throw err;
  }
  logger.debug({ address: socket }, 'snapshots server listening');

  let stopping: Promise<void> | undefined;
  return {
    socket,
    stop() {
      stopping ??= (async () => {
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 2000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        fs.rmSync(socket, { force: true });
        logger.debug({ address: socket }, 'snapshots server stopped');
      })();
      return stopping;
    },
  };
}
