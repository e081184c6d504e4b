import { EventEmitter } from 'eventemitter3';
import { InvalidArgumentError } from '../errdefs';
import { parseFilters } from '../filters';
import { envelopeAdaptor } from './envelope-adaptor';
import { Subscription } from './subscription';
import { AnyMessage, EventEnvelope, EventExchange } from './types';
import { validateEnvelope, validateNamespaceName, validateTopic } from './validation';

export interface ExchangeOptions {
  /**
   * Events held for one subscriber that is not keeping up; one more and it is
   * dropped with ResourceExhausted. Default DEFAULT_SUBSCRIBER_BUFFER_SIZE.
   */
  subscriberBufferSize?: number;
}

export const DEFAULT_SUBSCRIBER_BUFFER_SIZE = 1024;

interface ExchangeEvents {
  envelope: [EventEnvelope];
}

/**
 * The in-process event bus, containerd's events exchange: publishers stamp and
 * broadcast envelopes, shims' envelopes are forwarded as they are, and each
 * subscriber gets the ones matching its filters, in publish order.
 *
 * Delivery is synchronous into per-subscriber queues, so publish never waits
 * on a consumer and every subscriber sees the same order.
 */
export class Exchange implements EventExchange {
  private readonly emitter = new EventEmitter<ExchangeEvents>();
  private readonly subscriberBufferSize: number;

  constructor(options: ExchangeOptions = {}) {
    const size = options.subscriberBufferSize ?? DEFAULT_SUBSCRIBER_BUFFER_SIZE;
    if (!Number.isInteger(size) || size < 1) {
      throw new InvalidArgumentError(`subscriberBufferSize must be a positive integer, got ${size}`);
    }
    this.subscriberBufferSize = size;
  }

  async publish(namespace: string, topic: string, event: AnyMessage): Promise<void> {
    validateNamespaceName(namespace);
    validateTopic(topic);
    this.broadcast({ timestamp: new Date(), namespace, topic, event });
  }

  async forward(envelope: EventEnvelope): Promise<void> {
    validateEnvelope(envelope);
    this.broadcast(envelope);
  }

  /**
   * Starts receiving at once (not at the first `next()`), so nothing published
   * between subscribing and iterating is missed. Iterate it, break out of it or
   * abort `signal`; each of those ends the subscription and frees it.
   * Throws InvalidArgument for a filter that does not parse.
   */
  subscribe(filters: string[], signal?: AbortSignal): AsyncIterableIterator<EventEnvelope> {
    const filter = parseFilters(filters);
    const onEnvelope = (envelope: EventEnvelope) => {
      if (filter.match(envelopeAdaptor(envelope))) subscription.deliver(envelope);
    };
    const onAbort = () => subscription.end();
    const subscription = new Subscription(this.subscriberBufferSize, () => {
      this.emitter.off('envelope', onEnvelope);
      signal?.removeEventListener('abort', onAbort);
    });

    if (signal?.aborted) {
      subscription.end();
      return subscription;
    }
    this.emitter.on('envelope', onEnvelope);
    signal?.addEventListener('abort', onAbort, { once: true });
    return subscription;
  }

  /** Live subscriptions; for introspection and leak checks. */
  get subscriberCount(): number {
    return this.emitter.listenerCount('envelope');
  }

  // One frozen copy is shared by every subscriber, so none can alter what another sees.
  private broadcast(envelope: EventEnvelope): void {
    const shared: EventEnvelope = Object.freeze({
      timestamp: envelope.timestamp,
      namespace: envelope.namespace,
      topic: envelope.topic,
      event: Object.freeze({ typeUrl: envelope.event.typeUrl, value: envelope.event.value }),
    });
    this.emitter.emit('envelope', shared);
  }
}
