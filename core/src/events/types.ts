/** A protobuf `Any`: a type name and the encoded message. */
export interface AnyMessage {
  /** Bare proto name as containerd uses it, e.g. `containerd.events.TaskExit`. */
  typeUrl: string;
  value: Uint8Array;
}

/** One event as it travels: containerd's events.Envelope. */
export interface EventEnvelope {
  timestamp: Date;
  namespace: string;
  topic: string;
  event: AnyMessage;
}

export interface EventPublisher {
  /** Stamps and publishes; validates namespace and topic (InvalidArgument). */
  publish(namespace: string, topic: string, event: AnyMessage): Promise<void>;
}

export interface EventForwarder {
  /** Re-publishes an envelope that already has its timestamp (from shims). */
  forward(envelope: EventEnvelope): Promise<void>;
}

export interface EventSubscriber {
  /**
   * Events matching any of `filters` (containerd filter syntax over the fields
   * `topic`, `namespace`, `event.*`; none means all) until `signal` aborts.
   */
  subscribe(filters: string[], signal?: AbortSignal): AsyncIterable<EventEnvelope>;
}

/** The event exchange: publish, forward, subscribe. */
export interface EventExchange extends EventPublisher, EventForwarder, EventSubscriber {}
export const EventExchange = Symbol.for('io.berth.EventExchange');
