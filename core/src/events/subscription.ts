import { ResourceExhaustedError } from '../errdefs';
import { EventEnvelope } from './types';

interface Waiter {
  resolve(result: IteratorResult<EventEnvelope>): void;
  reject(err: unknown): void;
}

const DONE: IteratorResult<EventEnvelope> = Object.freeze({ done: true, value: undefined });

/**
 * One subscriber's view of the exchange: an async iterator fed by `deliver`.
 *
 * Publishers never wait for subscribers, so a slow consumer's events queue up
 * here. Past `capacity` the subscription detaches and, once the consumer has
 * drained what was queued, fails with ResourceExhausted: the consumer learns
 * exactly where the gap begins instead of silently missing events, and the
 * daemon's memory stays bounded.
 */
export class Subscription implements AsyncIterableIterator<EventEnvelope> {
  private readonly queued: EventEnvelope[] = [];
  private readonly waiters: Waiter[] = [];
  private failure: Error | undefined;
  private detached = false;
  private ended = false;

  /**
   * @param capacity events held for a consumer that is not waiting
   * @param detach stops delivery; called exactly once when the subscription ends
   */
  constructor(
    private readonly capacity: number,
    private readonly detach: () => void,
  ) {}

  /** Hands an event to the consumer, or queues it. */
  deliver(envelope: EventEnvelope): void {
    if (this.detached) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ done: false, value: envelope });
    } else if (this.queued.length < this.capacity) {
      this.queued.push(envelope);
    } else {
      this.overflow();
    }
  }

  next(): Promise<IteratorResult<EventEnvelope>> {
    const envelope = this.queued.shift();
    if (envelope !== undefined) return Promise.resolve({ done: false, value: envelope });
    if (this.failure) return Promise.reject(this.takeFailure());
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Called by for-await on break, return or throw in the loop body. */
  return(): Promise<IteratorResult<EventEnvelope>> {
    this.end();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends without error, dropping anything not yet consumed (abort, break). */
  end(): void {
    this.queued.length = 0;
    this.failure = undefined;
    this.ended = true;
    this.stopDelivery();
    for (const waiter of this.waiters.splice(0)) waiter.resolve(DONE);
  }

  private overflow(): void {
    this.failure = new ResourceExhaustedError(
      `event subscriber fell more than ${this.capacity} events behind and was dropped`,
    );
    this.stopDelivery();
  }

  /** The failure is reported once; after it the iterator is simply done. */
  private takeFailure(): Error | undefined {
    const failure = this.failure;
    this.failure = undefined;
    this.ended = true;
    return failure;
  }

  private stopDelivery(): void {
    if (this.detached) return;
    this.detached = true;
    this.detach();
  }
}
