import * as containerdEvents from './gen/containerd/events/events';
import * as imageEvents from './gen/containerd/services/images/v1/image_events';
import { Any } from './gen/google/protobuf/any';
import { MessageCodec, typeNameFromUrl } from './typeurl';

export type EventCodec = MessageCodec<unknown>;

// Listed by hand rather than discovered so that a new event is a deliberate
// addition; the spec checks the list against the generated modules.
const codecList = [
  containerdEvents.NamespaceCreate,
  containerdEvents.NamespaceUpdate,
  containerdEvents.NamespaceDelete,
  containerdEvents.ContainerCreate,
  containerdEvents.ContainerUpdate,
  containerdEvents.ContainerDelete,
  containerdEvents.ContentDelete,
  containerdEvents.SnapshotPrepare,
  containerdEvents.SnapshotCommit,
  containerdEvents.SnapshotRemove,
  containerdEvents.TaskCreate,
  containerdEvents.TaskStart,
  containerdEvents.TaskDelete,
  containerdEvents.TaskExit,
  containerdEvents.TaskOOM,
  containerdEvents.TaskExecAdded,
  containerdEvents.TaskExecStarted,
  containerdEvents.TaskPaused,
  containerdEvents.TaskResumed,
  containerdEvents.TaskCheckpointed,
  imageEvents.ImageCreate,
  imageEvents.ImageUpdate,
  imageEvents.ImageDelete,
] as const;

/** Full proto name of every event containerd publishes, e.g. `containerd.events.TaskExit`. */
export type EventTypeName = (typeof codecList)[number]['$type'];

/** Event codecs keyed by full proto name, which is also the bare type URL in an Envelope's Any. */
export const eventCodecs: Readonly<Record<EventTypeName, EventCodec>> = Object.freeze(indexByTypeName(codecList));

function indexByTypeName(codecs: readonly EventCodec[]): Record<EventTypeName, EventCodec> {
  const byName: Record<string, EventCodec> = {};
  for (const codec of codecs) byName[codec.$type] = codec;
  return byName;
}

/** The codec for an Any's event type, or undefined for types berth does not know. */
export function eventCodecFor(typeUrl: string): EventCodec | undefined {
  const typeName = typeNameFromUrl(typeUrl);
  return Object.prototype.hasOwnProperty.call(eventCodecs, typeName)
    ? eventCodecs[typeName as EventTypeName]
    : undefined;
}

export interface DecodedEvent {
  typeName: string;
  /** The decoded message, or undefined when the type is unknown. */
  message: unknown;
}

export function decodeEvent(event: Any): DecodedEvent {
  const codec = eventCodecFor(event.typeUrl);
  return { typeName: typeNameFromUrl(event.typeUrl), message: codec?.decode(event.value) };
}

/**
 * Proto3 JSON of an event for printing (`ctr events` style). Unknown types
 * fall back to the Any's own JSON (type URL plus base64 bytes) instead of failing.
 */
export function eventToJSON(event: Any): unknown {
  const codec = eventCodecFor(event.typeUrl);
  return codec ? codec.toJSON(codec.decode(event.value)) : Any.toJSON(event);
}
