import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Berth, connect, EventEnvelope } from '@berth/core';
import { Any, containerdEvents, eventsTtrpcV1, packAny } from '@berth/proto';
import { TtrpcConnection } from '@berth/ttrpc';
import { BerthdHandle, berthdBin, removeDir, repoRoot, startBerthd } from '../harness/daemon';
import { RunResult } from '../harness/process';
import { describeAsRoot } from '../harness/root';

const publishBinary = path.join(repoRoot, 'cmd', 'berthd', 'bin', 'berthd.js');

/** Runs the publish binary the way a shim does, with raw bytes on stdin. */
function runPublish(args: string[], input: Uint8Array): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(publishBinary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(Buffer.from(input));
  });
}

async function nextEvent(berth: Berth, filter: string, trigger: () => Promise<unknown>): Promise<EventEnvelope> {
  const abort = new AbortController();
  const iterator = berth.events.subscribe([filter], abort.signal)[Symbol.asyncIterator]();
  const first = iterator.next();
  // Subscriptions over gRPC start when the server sees the call; give it a moment.
  await new Promise((r) => setTimeout(r, 200));
  await trigger();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no event matching ${filter}`)), 10_000);
  });
  try {
    const result = await Promise.race([first, timeout]);
    return result.value as EventEnvelope;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

describeAsRoot('runtime v2 in berthd: publish binary and the events ttrpc socket', () => {
  let daemon: BerthdHandle;
  let berth: Berth;

  beforeAll(async () => {
    daemon = await startBerthd();
    berth = await connect(daemon.address, { namespace: 'rtv2-berthd' });
  });

  afterAll(async () => {
    await berth?.close();
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
  });

  it('loads the runtime plugin with berthd as its publish binary', async () => {
    const plugins = await berth.introspection.plugins();
    const runtime = plugins.find((p) => p.type === 'io.berth.runtime.v2' && p.id === 'task');
    expect(runtime).toMatchObject({ status: 'ok' });
    const dumped = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, [berthdBin, 'config', 'default']);
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.on('close', () => resolve(out));
    });
    expect(dumped).toContain(`publish_binary = "${publishBinary}"`);
    expect(fs.statSync(`${daemon.address}.ttrpc`).isSocket()).toBe(true);
  });

  it('`berthd --address A publish --topic T --namespace N` publishes the Any on stdin', async () => {
    const event = packAny(containerdEvents.TaskOOM, { containerId: 'oom-victim' });
    const envelope = await nextEvent(berth, 'topic=="/tasks/oom"', async () => {
      const result = await runPublish(
        ['--address', daemon.address, 'publish', '--topic', '/tasks/oom', '--namespace', 'rtv2-berthd'],
        Any.encode(event).finish(),
      );
      expect(result).toMatchObject({ code: 0, stderr: '' });
    });
    expect(envelope).toMatchObject({ namespace: 'rtv2-berthd', topic: '/tasks/oom' });
    expect(envelope.event.typeUrl).toBe('containerd.events.TaskOOM');
    expect(containerdEvents.TaskOOM.decode(envelope.event.value).containerId).toBe('oom-victim');
  });

  it('publish fails with a clear message for input that is not an Any, or a bad topic', async () => {
    const garbage = await runPublish(
      ['--address', daemon.address, 'publish', '--topic', '/tasks/oom', '--namespace', 'rtv2-berthd'],
      Buffer.from([0xff, 0xff, 0xff]),
    );
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/not a protobuf Any/);
    const badTopic = await runPublish(
      ['--address', daemon.address, 'publish', '--topic', 'no-slash', '--namespace', 'rtv2-berthd'],
      Any.encode(packAny(containerdEvents.TaskOOM, { containerId: 'x' })).finish(),
    );
    expect(badTopic.code).toBe(1);
    expect(badTopic.stderr).toMatch(/topic/);
  });

  it('forwards envelopes a shim sends to <address>.ttrpc to gRPC subscribers', async () => {
    const envelope = await nextEvent(berth, 'topic=="/tasks/paused"', async () => {
      const conn = await TtrpcConnection.connect(`${daemon.address}.ttrpc`);
      try {
        await conn.client(eventsTtrpcV1.EventsDefinition).forward({
          envelope: {
            timestamp: new Date('2024-01-02T03:04:05Z'),
            namespace: 'rtv2-berthd',
            topic: '/tasks/paused',
            event: packAny(containerdEvents.TaskPaused, { containerId: 'frozen' }),
          },
        });
      } finally {
        conn.close();
      }
    });
    expect(envelope.timestamp.toISOString()).toBe('2024-01-02T03:04:05.000Z');
    expect(containerdEvents.TaskPaused.decode(envelope.event.value).containerId).toBe('frozen');
  });
});
