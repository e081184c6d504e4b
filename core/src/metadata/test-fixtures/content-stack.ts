import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { writeBlob } from '../../content/blobs';
import { sha256Digest } from '../../content/digest';
import type { ContentStore } from '../../content/types';
import { errorKind, type ErrorKind } from '../../errdefs';
import { Exchange } from '../../events/exchange';
import type { EventEnvelope } from '../../events/types';
import { MetadataGarbageCollector } from '../../gc/collector';
import { SqliteImageStore } from '../../images/image-store';
import { SqliteLeaseManager } from '../../leases/lease-manager';
import { SqliteNamespacedContentStore } from '../content';
import { SqliteMetadataStore } from '../metadata-store';
import type { Labels } from '../types';
import { MemoryContentStore } from './memory-content-store';

/** A controllable clock in unix milliseconds. */
export class TestClock {
  now = Date.UTC(2030, 0, 1);
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** Everything built on one metadata db, over an in-memory raw content store. */
export interface ContentStack {
  dir: string;
  metadata: SqliteMetadataStore;
  raw: MemoryContentStore;
  events: Exchange;
  clock: TestClock;
  gc: MetadataGarbageCollector;
  content: SqliteNamespacedContentStore;
  images: SqliteImageStore;
  leases: SqliteLeaseManager;
  close(): Promise<void>;
}

/**
 * Builds a stack in a fresh temp dir. The collector runs only when asked
 * (no interval, no schedule delay) unless `gc` options say otherwise.
 */
export function createContentStack(gc: { scheduleDelayMs?: number; intervalMs?: number } = {}): ContentStack {
  const dir = mkdtempSync(join(tmpdir(), 'berth-content-'));
  const metadata = new SqliteMetadataStore(join(dir, 'meta.db'));
  const raw = new MemoryContentStore();
  const events = new Exchange();
  const clock = new TestClock();
  const collector = new MetadataGarbageCollector({
    metadata,
    content: raw,
    scheduleDelayMs: gc.scheduleDelayMs ?? 0,
    intervalMs: gc.intervalMs ?? 0,
    clock: clock.read,
  });
  return {
    dir,
    metadata,
    raw,
    events,
    clock,
    gc: collector,
    content: new SqliteNamespacedContentStore({ metadata, content: raw, events, gc: collector, clock: clock.read }),
    images: new SqliteImageStore({ metadata, events, gc: collector, clock: clock.read }),
    leases: new SqliteLeaseManager({ metadata, gc: collector, clock: clock.read }),
    async close() {
      await collector.close();
      metadata.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh stack per test, closed afterwards. Call at describe level. */
export function useContentStack(gc?: { scheduleDelayMs?: number; intervalMs?: number }): () => ContentStack {
  let stack: ContentStack | undefined;
  beforeEach(() => {
    stack = createContentStack(gc);
  });
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });
  return () => {
    if (!stack) throw new Error('content stack used outside a test');
    return stack;
  };
}

/**
 * Writes and commits `data` as a pull does (expected size and digest known,
 * AlreadyExists is success); returns its digest.
 */
export async function commit(
  store: ContentStore,
  data: string | Uint8Array,
  options: { ref?: string; labels?: Labels } = {},
): Promise<string> {
  const bytes = Buffer.from(data);
  const digest = sha256Digest(bytes);
  const ref = options.ref ?? `ref-${digest.slice(7, 19)}`;
  await writeBlob(store, ref, bytes, { expected: { size: bytes.length, digest }, labels: options.labels });
  return digest;
}

export async function readAll(stream: Promise<Readable>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

/** The kind and message an action fails with; fails the test if it succeeds. */
export async function failure(action: () => unknown): Promise<{ kind: ErrorKind; message: string }> {
  try {
    await action();
  } catch (err) {
    return { kind: errorKind(err), message: (err as Error).message };
  }
  throw new Error('expected a failure, but the call succeeded');
}

/** Takes `count` envelopes from a subscription. */
export async function take(subscription: AsyncIterator<EventEnvelope>, count: number): Promise<EventEnvelope[]> {
  const taken: EventEnvelope[] = [];
  while (taken.length < count) {
    const next = await subscription.next();
    if (next.done) break;
    taken.push(next.value);
  }
  return taken;
}

export async function digestsIn(store: ContentStore): Promise<string[]> {
  const digests: string[] = [];
  for await (const info of store.walk()) digests.push(info.digest);
  return digests.sort();
}
