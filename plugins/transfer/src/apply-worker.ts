/**
 * A worker thread that extracts one layer at a time into a directory: as an
 * overlay upper dir (whiteouts become 0/0 devices, opaque markers xattrs),
 * with no layers below and its headers scanned on the way (tar-scan.ts) when
 * it is staged, or on its lowers, or plainly into a parentless snapshot.
 * The layer arrives compressed, in chunks, from the main thread, which keeps
 * a bounded number in flight: each is acknowledged once taken.
 *
 * Extraction makes its metadata calls and small writes synchronously (they
 * are many and small), and inflates on this thread, so layers extracted in
 * threads of their own overlap where one thread would do them one after
 * another.
 */
import { parentPort } from 'worker_threads';
import { Readable } from 'stream';
import { applyLayer, applyLayerToOverlayUpper } from '@berth/differ';
import type { SymlinkPolicy } from '@berth/core';
import { LayerScanner } from './tar-scan';
import type { WorkerReply, WorkerRequest } from './apply-pool';

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

async function run(request: Extract<WorkerRequest, { type: 'start' }>, current: Job): Promise<void> {
  const scanner = request.scan ? new LayerScanner() : undefined;
  try {
    // The differ finds the compression (gzip, zstd or none) by magic bytes.
    const layer = Readable.from(compressedChunks(current), { objectMode: false });
    const options = {
      maxBytes: request.maxBytes,
      symlinks: request.symlinks as SymlinkPolicy | undefined,
      onEntry: scanner ? (name: string, type: string) => scanner.observe(name, type === 'directory') : undefined,
    };
    const applied =
      request.mode === 'naive'
        ? await applyLayer(layer, request.dir, options)
        : await applyLayerToOverlayUpper(layer, request.dir, request.lowerDirs, { ...options, opaqueXattr: request.opaqueXattr });
    post({ type: 'done', id: current.id, diffID: applied.diffID, size: applied.size, scan: scanner?.finish() });
  } catch (err) {
    const e = err as { message?: string; kind?: string };
    post({ type: 'error', id: current.id, message: e.message ?? String(err), kind: e.kind });
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
