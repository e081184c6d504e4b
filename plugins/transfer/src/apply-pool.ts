import * as fs from 'fs';
import * as path from 'path';
import type { Readable } from 'stream';
import { Worker } from 'worker_threads';
import { BerthError, CanceledError, type ErrorKind, type Logger, silentLogger } from '@berth/core';
import type { LayerScan } from './tar-scan';

/**
 * How a worker extracts: `upper` as an overlay upper dir on `lowerDirs` (none
 * for a staged layer), `naive` into a plain directory (a parentless snapshot).
 */
export type ExtractMode = 'upper' | 'naive';

export type WorkerRequest =
  | {
      type: 'start';
      id: number;
      dir: string;
      mode: ExtractMode;
      lowerDirs: string[];
      /** Scan the headers for a rebase (staged layers only). */
      scan: boolean;
      maxBytes?: number;
      symlinks?: string;
      opaqueXattr?: string;
    }
  | { type: 'chunk'; id: number; data: ArrayBuffer }
  | { type: 'end'; id: number }
  | { type: 'abort'; id: number };

export type WorkerReply =
  | { type: 'ack'; id: number }
  | { type: 'done'; id: number; diffID: string; size: number; scan?: LayerScan }
  | { type: 'error'; id: number; message: string; kind?: string };

export interface IsolatedApply {
  diffID: string;
  size: number;
  /** What a staged layer needs for its rebase (when scanning was asked for). */
  scan?: LayerScan;
}

export interface ExtractOptions {
  /** Default `upper` with no lowers: a staged layer. */
  mode?: ExtractMode;
  lowerDirs?: string[];
  /** Scan the headers for a rebase (default true). */
  scan?: boolean;
  maxBytes?: number;
  symlinks?: string;
  opaqueXattr?: string;
  signal?: AbortSignal;
  /** Queue position when all threads are busy: lower goes first (the layer's place in its chain). */
  order?: number;
  /** Among equal `order`, larger blobs go first. */
  size?: number;
}

/** Chunks sent to a worker and not yet taken: bounds the memory a layer holds in flight. */
const WINDOW = 16;

/** The worker's script: the compiled one, or the sources through a transpiling loader (tests). */
function workerScript(): { file: string; eval: boolean } {
  const compiled = path.join(__dirname, 'apply-worker.js');
  if (fs.existsSync(compiled)) return { file: compiled, eval: false };
  const loader = path.join(__dirname, 'test-fixtures', 'ts-worker-loader.js');
  const source = path.join(__dirname, 'apply-worker.ts');
  return { file: `require(${JSON.stringify(loader)}); require(${JSON.stringify(source)});`, eval: true };
}

interface Slot {
  worker: Worker;
  busy: boolean;
}

/**
 * Worker threads that extract layers into directories on their own, for
 * unpacking layers side by side and off the main thread. Threads start on
 * first use and stay.
 */
export class ApplyPool {
  private readonly slots: Slot[] = [];
  /**
   * Jobs waiting for a thread, lowest `order` first: layers are committed in
   * chain order, so the base layer's extraction gates every commit after it.
   */
  private readonly waiting: { order: number; size: number; take: (slot: Slot) => void }[] = [];
  private nextId = 1;
  private closed = false;
  private readonly logger: Logger;

  constructor(
    readonly size: number,
    logger?: Logger,
  ) {
    this.logger = logger ?? silentLogger();
  }

  /**
   * Extracts `blob` (tar, gzip or zstd) into `dir`: by default as an upper
   * dir with no layers below, scanning its headers. When all threads are
   * busy, the lowest `order` gets the next one.
   */
  async extract(blob: Readable, dir: string, options: ExtractOptions = {}): Promise<IsolatedApply> {
    const slot = await this.acquire(options.order ?? 0, options.size ?? 0);
    const id = this.nextId++;
    const { worker } = slot;
    let inFlight = 0;
    let drained: (() => void) | undefined;
    let settle!: { resolve: (r: IsolatedApply) => void; reject: (e: unknown) => void };
    let settled = false;
    const result = new Promise<IsolatedApply>((resolve, reject) => (settle = { resolve, reject }));
    // Once the worker has answered, the pump must not wait for acknowledgements any more.
    void result.then(
      () => ((settled = true), drained?.()),
      () => ((settled = true), drained?.()),
    );
    const onMessage = (reply: WorkerReply) => {
      if (reply.id !== id) return;
      if (reply.type === 'ack') {
        inFlight--;
        drained?.();
      } else if (reply.type === 'done') {
        settle.resolve({ diffID: reply.diffID, size: reply.size, scan: reply.scan });
      } else {
        settle.reject(new BerthError((reply.kind as ErrorKind | undefined) ?? 'unknown', reply.message));
      }
    };
    const onError = (err: Error) => settle.reject(err);
    worker.on('message', onMessage);
    worker.once('error', onError);
    const send = (request: WorkerRequest, transfer?: ArrayBuffer[]) => worker.postMessage(request, transfer);
    const onAbort = () => send({ type: 'abort', id });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let outcome: 'ok' | 'failed' = 'failed';
    try {
      send({
        type: 'start',
        id,
        dir,
        mode: options.mode ?? 'upper',
        lowerDirs: options.lowerDirs ?? [],
        scan: options.scan ?? true,
        maxBytes: options.maxBytes,
        symlinks: options.symlinks,
        opaqueXattr: options.opaqueXattr,
      });
      const pump = (async () => {
        for await (const chunk of blob as AsyncIterable<Buffer>) {
          if (options.signal?.aborted) throw new CanceledError('unpack canceled');
          // A copy the worker can own: read buffers may share a pooled slab.
          const data = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.length) as ArrayBuffer;
          while (inFlight >= WINDOW && !settled) await new Promise<void>((resolve) => (drained = resolve));
          drained = undefined;
          if (settled) return;
          inFlight++;
          send({ type: 'chunk', id, data }, [data]);
        }
        send({ type: 'end', id });
      })();
      pump.catch(() => send({ type: 'abort', id }));
      const [applied] = await Promise.all([result, pump]);
      outcome = 'ok';
      return applied;
    } finally {
      blob.destroy();
      options.signal?.removeEventListener('abort', onAbort);
      if (outcome === 'failed') {
        send({ type: 'abort', id });
        // Whatever the worker still does for this job ends with a reply; wait for it before reuse.
        await result.catch(() => undefined);
      }
      worker.off('message', onMessage);
      worker.off('error', onError);
      this.release(slot);
    }
  }

  /** Starts up to `count` threads ahead of use (a thread takes a fraction of a second to load). */
  warm(count: number): void {
    while (!this.closed && this.slots.length < Math.min(count, this.size)) this.slots.push(this.spawn(false));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }

  private async acquire(order: number, size: number): Promise<Slot> {
    if (this.closed) throw new CanceledError('the unpack worker pool is closed');
    const idle = this.slots.find((s) => !s.busy);
    if (idle) {
      idle.busy = true;
      idle.worker.ref();
      return idle;
    }
    if (this.slots.length < this.size) {
      const slot = this.spawn(true);
      this.slots.push(slot);
      return slot;
    }
    return new Promise((take) => {
      const at = this.waiting.findIndex((w) => w.order > order || (w.order === order && w.size < size));
      this.waiting.splice(at < 0 ? this.waiting.length : at, 0, { order, size, take });
    });
  }

  private spawn(busy: boolean): Slot {
    const script = workerScript();
    const worker = new Worker(script.file, { eval: script.eval });
    const slot: Slot = { worker, busy };
    // Idle threads must not keep the process alive.
    if (!busy) worker.unref();
    worker.on('error', (err) => this.logger.warn({ err }, 'unpack worker failed'));
    worker.on('exit', () => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
    });
    return slot;
  }

  private release(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) {
      next.take(slot);
      return;
    }
    slot.busy = false;
    // Idle threads must not keep the process alive.
    slot.worker.unref();
  }
}
