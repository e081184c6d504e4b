import { promises as fs } from 'fs';
import { EventEnvelope, InvalidArgumentError } from '@berth/core';
import { eventsTtrpcV1 } from '@berth/proto';
import { TtrpcServer } from '@berth/ttrpc';
import { socketPathOf } from './socket-path';

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** Receives every envelope a shim forwards. */
export type EnvelopeSink = (envelope: EventEnvelope) => Promise<void>;

/**
 * containerd's ttrpc Events service (`containerd.services.events.ttrpc.v1.Events/Forward`),
 * where v2 shims send task events (their TTRPC_ADDRESS).
 */
export class ShimEventsServer {
  private constructor(
    private readonly server: TtrpcServer,
    readonly address: string,
  ) {}

  static async listen(address: string, sink: EnvelopeSink): Promise<ShimEventsServer> {
    const socketPath = socketPathOf(address);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new InvalidArgumentError(
        `events socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes, the limit for unix sockets; use a shorter state dir or ttrpc address`,
      );
    }
    const server = new TtrpcServer();
    server.register(eventsTtrpcV1.EventsDefinition, {
      forward: async (request) => {
        const envelope = request.envelope;
        if (!envelope?.event) throw new InvalidArgumentError('Forward: the envelope carries no event');
        await sink({
          timestamp: envelope.timestamp ?? new Date(),
          namespace: envelope.namespace,
          topic: envelope.topic,
          event: { typeUrl: envelope.event.typeUrl, value: envelope.event.value },
        });
        return {};
      },
    });
    await server.listen(address);
    // Only the daemon's user (root, as the shims) may inject task events.
    await fs.chmod(socketPath, 0o600);
    return new ShimEventsServer(server, address);
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
