import { type Berth, type EventEnvelope, isNotFound } from '@berth/core';
import type { BerthdHandle } from '../harness/daemon';
import { run, type RunResult } from '../harness/process';

/** berthd with only the collections a test asks for: no interval, no scheduled run after a delete. */
export const MANUAL_GC_CONFIG =
  'version = 2\n[plugins."io.berth.gc.v1.scheduler"]\ninterval_ms = 0\nschedule_delay_ms = 600000\n';

export function ok(result: RunResult): string {
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** `ctr images pull --plain-http` into `namespace` (ctr unpacks into overlayfs). */
export async function pullWithCtr(daemon: BerthdHandle, ref: string, namespace = 'default'): Promise<void> {
  const pull = await run('ctr', ['-a', daemon.address, '-n', namespace, 'images', 'pull', '--plain-http', ref], {
    env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
    timeoutMs: 120_000,
  });
  if (pull.code !== 0) throw new Error(`ctr pull failed:\n${pull.stderr}\n${pull.stdout}\n${daemon.output.slice(-4000)}`);
}

/** Rows of `ctr containers ls` / `berth containers ls`: CONTAINER IMAGE RUNTIME. */
export function parseContainerTable(stdout: string): { id: string; image: string; runtime: string }[] {
  const [header, ...lines] = stdout.trimEnd().split('\n');
  expect(header).toMatch(/^CONTAINER\s+IMAGE\s+RUNTIME\s*$/);
  const imageAt = header.indexOf('IMAGE');
  const runtimeAt = header.indexOf('RUNTIME');
  return lines.map((line) => ({
    id: line.slice(0, imageAt).trim(),
    image: line.slice(imageAt, runtimeAt).trim(),
    runtime: line.slice(runtimeAt).trim(),
  }));
}

/** Runs one garbage collection to its end: deleting a lease with `sync` waits for it. */
export async function collectGarbage(client: Berth): Promise<void> {
  const lease = await client.leases.create({});
  await client.leases.delete(lease.id, { sync: true });
}

/** Whether the snapshot exists, through the facade. */
export async function snapshotExists(client: Berth, snapshotter: string, key: string): Promise<boolean> {
  try {
    await client.snapshots(snapshotter).stat(key);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

const PROBE_TOPIC = '/berth-test/probe';

/**
 * Subscribes to `topicPattern` and returns once the subscription is live
 * (a remote one starts streaming only after its first read): probe events
 * are published until one arrives. What follows arrives in publish order.
 */
export async function liveSubscription(client: Berth, topicPattern: string): Promise<AsyncIterator<EventEnvelope>> {
  const events = client.events.subscribe([`topic~="${topicPattern}"`, `topic=="${PROBE_TOPIC}"`])[Symbol.asyncIterator]();
  const first = events.next();
  let arrived = false;
  void first.then(() => (arrived = true), () => (arrived = true));
  for (let attempt = 0; !arrived && attempt < 100; attempt++) {
    await client.events.publish(PROBE_TOPIC, { typeUrl: 'berth.test.Probe', value: Buffer.alloc(0) });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const result = await first;
  if (result.done || result.value.topic !== PROBE_TOPIC) throw new Error('the subscription did not see its probe first');
  return {
    async next() {
      for (;;) {
        const next = await events.next();
        if (next.done || next.value.topic !== PROBE_TOPIC) return next;
      }
    },
    return: async () => events.return?.() ?? { done: true, value: undefined },
  };
}
