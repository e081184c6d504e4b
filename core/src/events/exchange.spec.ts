import { getEventListeners } from 'events';
import { InvalidArgumentError, ResourceExhaustedError, isInvalidArgument } from '../errdefs';
import { AnyMessage, EventEnvelope, Exchange, envelopeAdaptor, validateTopic } from './index';

const event = (n = 0): AnyMessage => ({ typeUrl: 'containerd.events.TaskExit', value: Uint8Array.of(n) });

/** Takes `count` envelopes from a subscription, leaving it open. */
async function take(iterator: AsyncIterator<EventEnvelope>, count: number): Promise<EventEnvelope[]> {
  const taken: EventEnvelope[] = [];
  while (taken.length < count) {
    const result = await iterator.next();
    if (result.done) break;
    taken.push(result.value);
  }
  return taken;
}

const topics = (envelopes: EventEnvelope[]) => envelopes.map((e) => `${e.namespace}${e.topic}`);

/** Resolves once pending promise callbacks have run, to observe "nothing happened". */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('Exchange', () => {
  let exchange: Exchange;
  beforeEach(() => {
    exchange = new Exchange();
  });

  it('stamps published events and delivers them in order', async () => {
    const subscription = exchange.subscribe([]);
    const before = Date.now();
    for (let i = 0; i < 100; i++) await exchange.publish('default', `/tasks/t${i}`, event(i));
    const received = await take(subscription, 100);
    await subscription.return?.();

    expect(received.map((e) => e.topic)).toEqual(Array.from({ length: 100 }, (_, i) => `/tasks/t${i}`));
    expect(received[7].event).toEqual(event(7));
    expect(received[0].namespace).toBe('default');
    for (const { timestamp } of received) {
      expect(timestamp.getTime()).toBeGreaterThanOrEqual(before);
      expect(timestamp.getTime()).toBeLessThanOrEqual(Date.now());
    }
  });

  it('delivers what was published between subscribe and the first next()', async () => {
    const subscription = exchange.subscribe([]);
    await exchange.publish('default', '/tasks/exit', event());
    expect(topics(await take(subscription, 1))).toEqual(['default/tasks/exit']);
    await subscription.return?.();
  });

  it('wakes a consumer already waiting', async () => {
    const subscription = exchange.subscribe([]);
    const pending = subscription.next();
    await exchange.publish('default', '/tasks/exit', event());
    await expect(pending).resolves.toMatchObject({ done: false, value: { topic: '/tasks/exit' } });
    await subscription.return?.();
  });

  it('filters by topic and namespace, OR-ing filter strings', async () => {
    const exits = exchange.subscribe(['topic=="/tasks/exit"']);
    const k8sTasks = exchange.subscribe(['namespace==k8s.io,topic~="^/tasks/"']);
    const either = exchange.subscribe(['namespace==moby', 'topic~=|^/images/|']);
    const notDefault = exchange.subscribe(['namespace!=default']);

    await exchange.publish('default', '/tasks/exit', event());
    await exchange.publish('k8s.io', '/tasks/start', event());
    await exchange.publish('k8s.io', '/tasks/exit', event());
    await exchange.publish('moby', '/containers/create', event());
    await exchange.publish('default', '/images/update', event());
    await exchange.publish('default', '/snapshot/prepare', event());

    expect(topics(await take(exits, 2))).toEqual(['default/tasks/exit', 'k8s.io/tasks/exit']);
    expect(topics(await take(k8sTasks, 2))).toEqual(['k8s.io/tasks/start', 'k8s.io/tasks/exit']);
    expect(topics(await take(either, 2))).toEqual(['moby/containers/create', 'default/images/update']);
    expect(topics(await take(notDefault, 3))).toEqual([
      'k8s.io/tasks/start',
      'k8s.io/tasks/exit',
      'moby/containers/create',
    ]);
    for (const subscription of [exits, k8sTasks, either, notDefault]) await subscription.return?.();
    expect(exchange.subscriberCount).toBe(0);
  });

  it('gives every subscriber every event, independently', async () => {
    const first = exchange.subscribe([]);
    const second = exchange.subscribe(['']);
    await exchange.publish('default', '/a', event());
    await exchange.publish('default', '/b', event());

    expect(topics(await take(first, 2))).toEqual(['default/a', 'default/b']);
    await first.return?.();
    await exchange.publish('default', '/c', event());
    expect(topics(await take(second, 3))).toEqual(['default/a', 'default/b', 'default/c']);
    await second.return?.();
  });

  it('shares one frozen envelope so subscribers cannot affect each other', async () => {
    const first = exchange.subscribe([]);
    await exchange.publish('default', '/a', event());
    const [received] = await take(first, 1);
    expect(Object.isFrozen(received)).toBe(true);
    expect(Object.isFrozen(received.event)).toBe(true);
    await first.return?.();
  });

  it('forwards envelopes keeping their timestamp', async () => {
    const subscription = exchange.subscribe(['topic=="/tasks/oom"']);
    const timestamp = new Date('2020-05-06T07:08:09Z');
    await exchange.forward({ timestamp, namespace: 'k8s.io', topic: '/tasks/oom', event: event(3) });
    const [received] = await take(subscription, 1);
    expect(received).toEqual({ timestamp, namespace: 'k8s.io', topic: '/tasks/oom', event: event(3) });
    await subscription.return?.();
  });

  describe('ending', () => {
    it('ends iteration when the signal aborts, removing its listeners', async () => {
      const controller = new AbortController();
      const subscription = exchange.subscribe([], controller.signal);
      expect(exchange.subscriberCount).toBe(1);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);

      const seen: string[] = [];
      const loop = (async () => {
        for await (const envelope of subscription) {
          seen.push(envelope.topic);
          if (seen.length === 2) controller.abort();
        }
      })();
      await exchange.publish('default', '/one', event());
      await exchange.publish('default', '/two', event());
      await loop;
      await exchange.publish('default', '/three', event());

      expect(seen).toEqual(['/one', '/two']);
      expect(exchange.subscriberCount).toBe(0);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    });

    it('resolves a waiting next() as done on abort', async () => {
      const controller = new AbortController();
      const subscription = exchange.subscribe([], controller.signal);
      const pending = subscription.next();
      controller.abort();
      await expect(pending).resolves.toEqual({ done: true, value: undefined });
    });

    it('drops events still queued when aborted', async () => {
      const controller = new AbortController();
      const subscription = exchange.subscribe([], controller.signal);
      await exchange.publish('default', '/queued', event());
      controller.abort(new Error('any reason ends cleanly'));
      await expect(subscription.next()).resolves.toEqual({ done: true, value: undefined });
    });

    it('yields nothing and registers nothing for an already aborted signal', async () => {
      const signal = AbortSignal.abort();
      const subscription = exchange.subscribe([], signal);
      expect(exchange.subscriberCount).toBe(0);
      await exchange.publish('default', '/a', event());
      const seen: EventEnvelope[] = [];
      for await (const envelope of subscription) seen.push(envelope);
      expect(seen).toEqual([]);
    });

    it('removes the listener when the consumer breaks out of for-await', async () => {
      const controller = new AbortController();
      const subscription = exchange.subscribe([], controller.signal);
      await exchange.publish('default', '/a', event());
      await exchange.publish('default', '/b', event());
      for await (const envelope of subscription) {
        expect(envelope.topic).toBe('/a');
        break;
      }
      expect(exchange.subscriberCount).toBe(0);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
      await expect(subscription.next()).resolves.toEqual({ done: true, value: undefined });
    });

    it('removes the listener when the loop body throws', async () => {
      const subscription = exchange.subscribe([]);
      await exchange.publish('default', '/a', event());
      await expect(
        (async () => {
          for await (const envelope of subscription) throw new Error(`failed on ${envelope.topic}`);
        })(),
      ).rejects.toThrow('failed on /a');
      expect(exchange.subscriberCount).toBe(0);
    });

    it('does not leak across many short subscriptions', async () => {
      const controller = new AbortController();
      for (let i = 0; i < 200; i++) {
        const subscription = exchange.subscribe(['topic=="/x"'], controller.signal);
        await exchange.publish('default', '/x', event());
        await take(subscription, 1);
        await subscription.return?.();
      }
      expect(exchange.subscriberCount).toBe(0);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    });
  });

  describe('slow consumers', () => {
    it('buffers up to the bound without loss', async () => {
      const bounded = new Exchange({ subscriberBufferSize: 5 });
      const subscription = bounded.subscribe([]);
      for (let i = 0; i < 5; i++) await bounded.publish('default', `/e${i}`, event(i));
      expect(bounded.subscriberCount).toBe(1);
      expect((await take(subscription, 5)).map((e) => e.topic)).toEqual(['/e0', '/e1', '/e2', '/e3', '/e4']);
      await subscription.return?.();
    });

    it('drops a subscriber past the bound: queued events first, then ResourceExhausted', async () => {
      const bounded = new Exchange({ subscriberBufferSize: 3 });
      const slow = bounded.subscribe([]);
      const fast = bounded.subscribe([]);
      const fastSeen: string[] = [];
      const fastLoop = (async () => {
        for await (const envelope of fast) {
          fastSeen.push(envelope.topic);
          if (fastSeen.length === 6) break;
        }
      })();

      for (let i = 0; i < 6; i++) {
        await bounded.publish('default', `/e${i}`, event(i));
        await settle();
      }
      await fastLoop;
      expect(bounded.subscriberCount).toBe(0);
      expect(fastSeen).toEqual(['/e0', '/e1', '/e2', '/e3', '/e4', '/e5']);

      expect((await take(slow, 3)).map((e) => e.topic)).toEqual(['/e0', '/e1', '/e2']);
      const failure = slow.next();
      await expect(failure).rejects.toBeInstanceOf(ResourceExhaustedError);
      await expect(failure).rejects.toThrow('3 events');
      await expect(slow.next()).resolves.toEqual({ done: true, value: undefined });
    });

    it('ends a for-await loop with the overflow error', async () => {
      const bounded = new Exchange({ subscriberBufferSize: 1 });
      const subscription = bounded.subscribe([]);
      await bounded.publish('default', '/a', event());
      await bounded.publish('default', '/b', event());
      expect(bounded.subscriberCount).toBe(0);
      const seen: string[] = [];
      await expect(
        (async () => {
          for await (const envelope of subscription) seen.push(envelope.topic);
        })(),
      ).rejects.toBeInstanceOf(ResourceExhaustedError);
      expect(seen).toEqual(['/a']);
    });

    it('only counts events that pass the filter', async () => {
      const bounded = new Exchange({ subscriberBufferSize: 1 });
      const subscription = bounded.subscribe(['topic=="/keep"']);
      for (let i = 0; i < 10; i++) await bounded.publish('default', '/skip', event());
      await bounded.publish('default', '/keep', event());
      expect(bounded.subscriberCount).toBe(1);
      expect(topics(await take(subscription, 1))).toEqual(['default/keep']);
      await subscription.return?.();
    });

    it('rejects a bound that is not a positive integer', () => {
      expect(() => new Exchange({ subscriberBufferSize: 0 })).toThrow(InvalidArgumentError);
      expect(() => new Exchange({ subscriberBufferSize: 1.5 })).toThrow(InvalidArgumentError);
    });
  });

  describe('validation', () => {
    it.each([
      ['', 'must not be empty'],
      ['Bad Namespace', 'must match'],
      ['-leading', 'must match'],
      ['trailing.', 'must match'],
      ['double..dot', 'must match'],
      ['a'.repeat(77), 'at most 76'],
    ])('rejects namespace %j', async (namespace, problem) => {
      const published = exchange.publish(namespace, '/tasks/exit', event());
      await expect(published).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(published).rejects.toThrow(problem);
      await expect(published).rejects.toThrow(JSON.stringify(namespace));
    });

    it.each(['default', 'k8s.io', 'moby', 'a-b_c.d', 'A1', 'a'.repeat(76)])('accepts namespace %j', async (namespace) => {
      await expect(exchange.publish(namespace, '/tasks/exit', event())).resolves.toBeUndefined();
    });

    it.each([
      ['', 'must not be empty'],
      ['tasks/exit', "must start with '/'"],
      ['/', 'at least one component'],
      ['/tasks/', 'component ""'],
      ['//tasks', 'component ""'],
      ['/tasks//exit', 'component ""'],
      ['/tasks/exit now', 'component "exit now"'],
      [`/${'x'.repeat(77)}`, 'at most 76'],
    ])('rejects topic %j', async (topic, problem) => {
      const published = exchange.publish('default', topic, event());
      await expect(published).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(published).rejects.toThrow(problem);
      await expect(published).rejects.toThrow(JSON.stringify(topic));
    });

    it.each(['/tasks/exit', '/images/create', '/snapshot/prepare', '/a.b/c-d/e_f', '/x'])('accepts topic %j', (topic) => {
      expect(() => validateTopic(topic)).not.toThrow();
    });

    it('validates forwarded envelopes, including their timestamp', async () => {
      const good = { timestamp: new Date(), namespace: 'default', topic: '/tasks/exit', event: event() };
      await expect(exchange.forward({ ...good, namespace: 'no spaces' })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(exchange.forward({ ...good, topic: 'tasks' })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(exchange.forward({ ...good, timestamp: new Date(NaN) })).rejects.toThrow('timestamp');
      await expect(exchange.forward(good)).resolves.toBeUndefined();
    });

    it('publishes nothing when validation fails', async () => {
      const subscription = exchange.subscribe([]);
      await exchange.publish('bad ns', '/a', event()).catch(() => undefined);
      await exchange.publish('default', '/ok', event());
      expect(topics(await take(subscription, 1))).toEqual(['default/ok']);
      await subscription.return?.();
    });

    it('throws InvalidArgument from subscribe for a bad filter, registering nothing', () => {
      let failure: unknown;
      try {
        exchange.subscribe(['topic==/tasks/exit']);
      } catch (err) {
        failure = err;
      }
      expect(isInvalidArgument(failure)).toBe(true);
      expect(String(failure)).toContain('topic==/tasks/exit');
      expect(exchange.subscriberCount).toBe(0);
    });
  });
});

describe('envelopeAdaptor', () => {
  const adapt = envelopeAdaptor({
    timestamp: new Date(),
    namespace: 'default',
    topic: '/tasks/exit',
    event: event(),
  });

  it.each<[string[], string | undefined]>([
    [['topic'], '/tasks/exit'],
    [['namespace'], 'default'],
    [['timestamp'], undefined],
    [['event'], undefined],
    [['event', 'container_id'], undefined],
    [[], undefined],
  ])('%j', (path, expected) => {
    expect(adapt(path)).toBe(expected);
  });
});
