import type { BlobProgress, Descriptor, ProgressListener, UnpackStatus } from '@berth/core';
import type { BlobProgress as RemoteBlobProgress } from '@berth/remotes';

/**
 * Folds per-blob download events and per-layer unpack events into the whole
 * picture listeners get: one entry per blob, its download status and, for
 * layers being unpacked, how far their snapshot is.
 */
export class PullProgress {
  private readonly blobs = new Map<string, BlobProgress>();

  constructor(private readonly listener: ProgressListener | undefined) {}

  blob(event: RemoteBlobProgress): void {
    const unpack = this.blobs.get(event.digest)?.unpack;
    this.blobs.set(event.digest, unpack ? { ...event, unpack } : { ...event });
    this.emit();
  }

  unpack(layer: Descriptor, status: UnpackStatus): void {
    const current = this.blobs.get(layer.digest) ?? {
      digest: layer.digest,
      mediaType: layer.mediaType,
      offset: 0,
      total: layer.size,
      status: 'waiting' as const,
    };
    this.blobs.set(layer.digest, { ...current, unpack: status });
    this.emit();
  }

  private emit(): void {
    this.listener?.([...this.blobs.values()]);
  }
}

/**
 * Promises that a blob is in the content store, settled by the pull's
 * progress events ('done' or 'exists'), so unpacking can start on each layer
 * as soon as it is there.
 */
export class BlobArrivals {
  private readonly waiting = new Map<string, { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void }>();
  private readonly arrived = new Set<string>();
  private failure: { error: unknown } | undefined;
  private complete = false;

  /** The pull reports `digest` stored. */
  arrive(digest: string): void {
    this.arrived.add(digest);
    this.waiting.get(digest)?.resolve();
    this.waiting.delete(digest);
  }

  /** The pull finished: every blob it was asked for is stored. */
  finish(): void {
    this.complete = true;
    for (const w of this.waiting.values()) w.resolve();
    this.waiting.clear();
  }

  /** The pull failed: nothing more will arrive. */
  fail(error: unknown): void {
    this.failure = { error };
    for (const w of this.waiting.values()) w.reject(error);
    this.waiting.clear();
  }

  wait(desc: Descriptor): Promise<void> {
    if (this.complete || this.arrived.has(desc.digest)) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure.error);
    let entry = this.waiting.get(desc.digest);
    if (!entry) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      // A failed pull rejects waiters nobody may be awaiting any more.
      promise.catch(() => undefined);
      entry = { promise, resolve, reject };
      this.waiting.set(desc.digest, entry);
    }
    return entry.promise;
  }
}
