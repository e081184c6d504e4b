/**
 * A worker thread that extracts one layer at a time into a directory as an
 * overlay upper dir with no layers below (whiteouts become 0/0 devices,
 * opaque markers xattrs), scanning its headers on the way (tar-scan.ts).
 * The layer arrives compressed, in chunks, from the main thread, which keeps
 * a bounded number in flight: each is acknowledged once taken.
 *
 * Extraction makes its metadata calls synchronously (they are many and
 * small), so layers extracted in threads of their own overlap where one
 * thread would do them one after another.
 */
import { parentPort } from 'worker_threads';
import { Readable } from 'stream';
import * as zlib from 'zlib';
import { applyLayerToOverlayUpper } from '@berth/differ';
import type { SymlinkPolicy } from '@berth/core';
import { LayerScanner } from './tar-scan';
import type { WorkerReply, WorkerRequest } from './apply-pool';

const GZIP_MAGIC = [0x1f, 0x8b];

interface Job {
  id: number;
  queue: Buffer[];
  ended: boolean;
  aborted: boolean;
  wake: (() => void) | undefined;
}

let job: Job | undefined;

function post(reply: WorkerReply): void {
  parentPort!.postMessage(reply);
}

async function* compressedChunks(current: Job): AsyncGenerator<Buffer> {
  for (;;) {
    if (current.aborted) throw new Error('layer extraction aborted');
    const next = current.queue.shift();
    if (next) {
      post({ type: 'ack', id: current.id });
      yield next;
      continue;
    }
    if (current.ended) return;
    await new Promise<void>((resolve) => (current.wake = resolve));
    current.wake = undefined;
  }
}

/** The uncompressed tar, gzip or plain by magic bytes; other compressions are the caller's to handle. */
async function* uncompressed(source: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  const first = await source.next();
  if (first.done) return;
  const head = first.value;
  if (head.length >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) {
    const inflater = zlib.createGunzip({ chunkSize: 64 * 1024 });
    const input = Readable.from((async function* () {
      yield head;
      yield* source;
    })(), { objectMode: false });
    input.on('error', (err) => inflater.destroy(err));
    input.pipe(inflater);
    try {
      for await (const chunk of inflater) yield chunk as Buffer;
    } finally {
      input.destroy();
      inflater.destroy();
    }
    return;
  }
  // A plain tar starts with a name, not a compression magic; anything else is refused here.
  if (head[0] === 0x28 && head[1] === 0xb5) throw Object.assign(new Error('zstd layers are extracted in place'), { unsupported: true });
  yield head;
  yield* source;
}

async function run(request: Extract<WorkerRequest, { type: 'start' }>, current: Job): Promise<void> {
  const scanner = new LayerScanner();
  const scanned = async function* () {
    for await (const chunk of uncompressed(compressedChunks(current))) {
      scanner.feed(chunk);
      yield chunk;
    }
  };
  try {
    const applied = await applyLayerToOverlayUpper(Readable.from(scanned(), { objectMode: false }), request.dir, [], {
      maxBytes: request.maxBytes,
      symlinks: request.symlinks as SymlinkPolicy | undefined,
      opaqueXattr: request.opaqueXattr,
    });
    post({ type: 'done', id: current.id, diffID: applied.diffID, size: applied.size, scan: scanner.finish() });
  } catch (err) {
    const e = err as { message?: string; kind?: string; unsupported?: boolean };
    post({ type: 'error', id: current.id, message: e.message ?? String(err), kind: e.kind, unsupported: e.unsupported === true });
  }
}

parentPort!.on('message', (request: WorkerRequest) => {
  switch (request.type) {
    case 'start':
      job = { id: request.id, queue: [], ended: false, aborted: false, wake: undefined };
      void run(request, job).finally(() => {
        if (job?.id === request.id) job = undefined;
      });
      break;
    case 'chunk':
      if (job?.id !== request.id) return;
      job.queue.push(Buffer.from(request.data));
      job.wake?.();
      break;
    case 'end':
      if (job?.id !== request.id) return;
      job.ended = true;
      job.wake?.();
      break;
    case 'abort':
      if (job?.id !== request.id) return;
      job.aborted = true;
      job.wake?.();
      break;
  }
});
