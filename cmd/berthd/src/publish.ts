import { connect, InvalidArgumentError } from '@berth/core';
import { Any } from '@berth/proto';

export interface PublishOptions {
  /** berthd's gRPC socket. */
  address: string;
  topic: string;
  namespace: string;
  /** The event: a protobuf-encoded google.protobuf.Any. */
  event: Uint8Array;
}

/**
 * `berthd publish`: what shims run as their `-publish-binary`, like containerd's
 * `publish` command. Sends one event to a running berthd's Events.Publish.
 */
export async function publishEvent(options: PublishOptions): Promise<void> {
  let event: Any;
  try {
    event = Any.decode(options.event);
  } catch (err) {
    throw new InvalidArgumentError(`stdin is not a protobuf Any: ${(err as Error).message}`, { cause: err });
  }
  if (!event.typeUrl) throw new InvalidArgumentError('the event on stdin has no type URL');
  const client = await connect(options.address, { namespace: options.namespace, timeoutMs: 5_000 });
  try {
    await client.events.publish(options.topic, { typeUrl: event.typeUrl, value: event.value });
  } finally {
    await client.close();
  }
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}
