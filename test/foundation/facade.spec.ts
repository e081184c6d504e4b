import { Berth, EventEnvelope, isFailedPrecondition, isInvalidArgument, isNotFound } from '@berth/core';
import { containerdEvents } from '@berth/proto';
import { bothDoors, type Door } from '../harness/doors';

// One suite, two doors: the in-process facade and the gRPC one must agree.
describe.each(bothDoors())('facade: %s', (_name, makeDoor) => {
  let door: Door;
  let berth: Berth;
  beforeAll(async () => {
    door = makeDoor();
    berth = await door.open();
  });
  afterAll(() => door.close());

  it('reports version and a uuid', async () => {
    expect((await berth.version()).version).toBe('0.1.0');
    expect((await berth.introspection.server()).uuid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('creates, labels, lists and deletes namespaces', async () => {
    await berth.namespaces.create('alpha', { a: '1' });
    expect(await berth.namespaces.label('alpha', { b: '2', a: '' })).toEqual({ name: 'alpha', labels: { b: '2' } });
    expect(await berth.namespaces.list()).toEqual([{ name: 'alpha', labels: { b: '2' } }]);
    await berth.namespaces.delete('alpha');
    expect(await berth.namespaces.list()).toEqual([]);
  });

  it('returns typed errors', async () => {
    const bad = await berth.namespaces.create('../x').catch((e: unknown) => e);
    expect(isInvalidArgument(bad)).toBe(true);
    const missing = await berth.namespaces.delete('missing').catch((e: unknown) => e);
    expect(isNotFound(missing)).toBe(true);
    await berth.namespaces.create('dup');
    await expect(berth.namespaces.create('dup')).rejects.toMatchObject({ kind: 'already-exists' });
    expect(isFailedPrecondition(new Error('x'))).toBe(false);
  });

  it('delivers published and namespace events to filtered subscribers', async () => {
    const abort = new AbortController();
    const seen: EventEnvelope[] = [];
    const done = (async () => {
      for await (const env of berth.events.subscribe(['topic~="^/namespaces/"', 'topic=="/custom/ping"'], abort.signal)) {
        seen.push(env);
        if (seen.length === 2) abort.abort();
      }
    })();
    // let the subscription reach the exchange
    await new Promise((r) => setTimeout(r, 200));
    await berth.withNamespace('beta').events.publish('/other/ignored', { typeUrl: 'x.Y', value: new Uint8Array([1]) });
    await berth.namespaces.create('beta');
    await berth.withNamespace('beta').events.publish('/custom/ping', { typeUrl: 'x.Ping', value: new Uint8Array([7]) });
    await done;
    expect(seen.map((e) => [e.namespace, e.topic])).toEqual([
      ['beta', '/namespaces/create'],
      ['beta', '/custom/ping'],
    ]);
    expect(containerdEvents.NamespaceCreate.decode(seen[0].event.value)).toEqual({ name: 'beta', labels: {} });
    expect([...seen[1].event.value]).toEqual([7]);
    expect(seen[1].timestamp).toBeInstanceOf(Date);
  });

  it('lists plugins with filters', async () => {
    const meta = await berth.introspection.plugins(['type==io.berth.metadata.v1']);
    expect(meta.map((p) => [p.id, p.status])).toEqual([['sqlite', 'ok']]);
  });
});
