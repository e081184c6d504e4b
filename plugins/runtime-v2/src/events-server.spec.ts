import { mkdtempSync, rmSync, statSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { EventEnvelope } from '@berth/core';
import { containerdEvents, eventsTtrpcV1, packAny } from '@berth/proto';
import { TtrpcConnection } from '@berth/ttrpc';
import { ShimEventsServer } from './events-server';

describe('ShimEventsServer', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'berth-rtv2-ev-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('serves containerd Events/Forward over ttrpc and hands envelopes to the sink', async () => {
    const received: EventEnvelope[] = [];
    const address = join(dir, 'events.ttrpc');
    const server = await ShimEventsServer.listen(address, async (e) => {
      received.push(e);
    });
    expect(statSync(address).mode & 0o777).toBe(0o600);
    const conn = await TtrpcConnection.connect(`unix://${address}`);
    try {
      const client = conn.client(eventsTtrpcV1.EventsDefinition);
      const event = packAny(containerdEvents.TaskStart, { containerId: 'c1', pid: 42 });
      const timestamp = new Date('2024-03-04T05:06:07.089Z');
      await client.forward({ envelope: { timestamp, namespace: 'ns', topic: '/tasks/start', event } });
      expect(received).toHaveLength(1);
      expect(received[0]).toMatchObject({ timestamp, namespace: 'ns', topic: '/tasks/start' });
      expect(received[0].event.typeUrl).toBe('containerd.events.TaskStart');
      expect(containerdEvents.TaskStart.decode(received[0].event.value)).toMatchObject({ containerId: 'c1', pid: 42 });

      await expect(client.forward({ envelope: { namespace: 'ns', topic: '/tasks/start' } })).rejects.toMatchObject({
        kind: 'invalid-argument',
      });
    } finally {
      conn.close();
      await server.close();
    }
  });

  it('names a socket path too long for a unix socket', async () => {
    const address = join(dir, 'x'.repeat(120), 'events.ttrpc');
    await expect(ShimEventsServer.listen(address, async () => undefined)).rejects.toThrow(/longer than 107 bytes/);
  });

  it('passes the sink’s errors back to the shim', async () => {
    const address = join(dir, 'events.ttrpc');
    const server = await ShimEventsServer.listen(address, async () => {
      throw Object.assign(new Error('namespace "bad ns": invalid'), { kind: 'invalid-argument' });
    });
    const conn = await TtrpcConnection.connect(address);
    try {
      const event = packAny(containerdEvents.TaskStart, { containerId: 'c1', pid: 1 });
      await expect(
        conn.client(eventsTtrpcV1.EventsDefinition).forward({ envelope: { namespace: 'bad ns', topic: '/tasks/start', event } }),
      ).rejects.toMatchObject({ kind: 'invalid-argument', message: 'namespace "bad ns": invalid' });
    } finally {
      conn.close();
      await server.close();
    }
  });
});
