import { createHash } from 'crypto';
import type { Readable } from 'stream';
import type { ZlibOptions } from 'zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { Gunzip } from 'minizlib';
import { CanceledError, InvalidArgumentError, ResourceExhaustedError } from '@berth/core';

export type Compression = 'none' | 'gzip' | 'zstd';

/**
 * Default ceiling on a layer's uncompressed size. Real layers reach tens of
 * GiB (model weights); a decompression bomb is stopped here at the latest.
 */
export const DEFAULT_MAX_LAYER_BYTES = 64 * 1024 ** 3;

/** The uncompressed bytes of a layer, counted and hashed as they are read. */
export interface UncompressedLayer {
  readonly compression: Compression;
  readonly chunks: AsyncIterable<Buffer>;
  /** Uncompressed bytes read so far. */
  readonly bytesRead: number;
  /** `sha256:<hex>` of the uncompressed bytes read so far (the diffID once all are read). */
  digest(): string;
}

export interface DecompressOptions {
  maxBytes?: number;
  signal?: AbortSignal;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function startsWith(head: Buffer, magic: number[]): boolean {
  return head.length >= magic.length && magic.every((byte, i) => head[i] === byte);
}

function describeUnsupported(head: Buffer): string | undefined {
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  return undefined;
}

/** Reads until at least `n` bytes are in hand or the source ends. */
async function peek(source: AsyncIterator<Buffer>, n: number): Promise<{ head: Buffer; ended: boolean }> {
  const parts: Buffer[] = [];
  let length = 0;
  while (length < n) {
    const next = await source.next();
    if (next.done) return { head: Buffer.concat(parts), ended: true };
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
    parts.push(chunk);
    length += chunk.length;
  }
  return { head: Buffer.concat(parts), ended: false };
}

async function* prepend(head: Buffer, rest: AsyncIterator<Buffer>, ended: boolean): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  if (ended) return;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
  }
}

/**
 * Compressed bytes inflated in one call. Deflate expands at most ~1000:1, so
 * this bounds what one call can hold in memory (16 MiB) before it is consumed.
 */
const INFLATE_SLICE = 16 * 1024;

/**
 * gzip, inflated on this thread as the bytes arrive (minizlib: zlib's
 * synchronous calls, as node-tar uses). Node's zlib stream sends every 64 KiB
 * through libuv's thread pool and back; on a busy machine those round trips
 * cost more than the inflating, and a layer has thousands of them.
 */
async function* gunzip(compressed: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  // zlib's own options pass through to it.
  const options: ZlibOptions = { chunkSize: 64 * 1024 };
  const inflater = new Gunzip(options);
  let inflated: Buffer[] = [];
  let failure: Error | undefined;
  inflater.on('data', (chunk: Buffer) => inflated.push(chunk));
  inflater.on('error', (err: unknown) => {
    failure ??= err instanceof Error ? err : new Error(String(err));
  });
  const check = (): void => {
    if (failure === undefined) return;
    const message = failure.message.replace(/^zlib: /, '');
    throw new InvalidArgumentError(`layer is not valid gzip: ${message}`, { cause: failure });
  };
  const take = (): Buffer[] => {
    const out = inflated;
    inflated = [];
    return out;
  };
  try {
    for await (const chunk of compressed) {
      for (let offset = 0; offset < chunk.length; offset += INFLATE_SLICE) {
        inflater.write(chunk.subarray(offset, offset + INFLATE_SLICE));
        check();
        for (const piece of take()) yield piece;
      }
    }
    inflater.end();
    check();
    for (const piece of take()) yield piece;
  } finally {
    inflater.close();
  }
}

/**
 * zstd through fzstd (pure JS; Node 20's zlib has none). Input is fed in small
 * slices because one compressed byte can stand for kilobytes of output: the
 * output of one push is held in memory until it is consumed.
 */
async function* unzstd(compressed: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const SLICE = 1024;
  let pending: Buffer[] = [];
  const decoder = new ZstdDecompress((data) => {
    if (data.length > 0) pending.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });
  const push = (slice: Uint8Array, final: boolean): void => {
    try {
      decoder.push(slice, final);
    } catch (err) {
      throw new InvalidArgumentError(`layer is not valid zstd: ${(err as Error).message}`, { cause: err });
    }
  };
  for await (const chunk of compressed) {
    for (let offset = 0; offset < chunk.length; offset += SLICE) {
      push(chunk.subarray(offset, offset + SLICE), false);
      if (pending.length > 0) {
        const out = pending;
        pending = [];
        // fzstd reuses its window buffer: copy before handing the bytes on.
        for (const piece of out) yield Buffer.from(piece);
      }
    }
  }
  push(new Uint8Array(0), true);
  for (const piece of pending) yield Buffer.from(piece);
}

/**
 * Detects the compression of a layer by its magic bytes (gzip, zstd, or a
 * plain tar) and gives its uncompressed bytes, counting and hashing them.
 * Reading past `maxBytes` uncompressed bytes fails with ResourceExhausted: the
 * bound that contains decompression bombs.
 */
export async function openUncompressed(stream: Readable, options: DecompressOptions = {}): Promise<UncompressedLayer> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_LAYER_BYTES;
  const signal = options.signal;
  const source = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const { head, ended } = await peek(source, ZSTD_MAGIC.length);
  const unsupported = describeUnsupported(head);
  if (unsupported) {
    stream.destroy();
    throw new InvalidArgumentError(`layer is ${unsupported}-compressed; only gzip and zstd are supported`);
  }
  const compression: Compression = startsWith(head, GZIP_MAGIC) ? 'gzip' : startsWith(head, ZSTD_MAGIC) ? 'zstd' : 'none';
  const compressed = prepend(head, source, ended);
  const plain = compression === 'gzip' ? gunzip(compressed) : compression === 'zstd' ? unzstd(compressed) : compressed;

  const hash = createHash('sha256');
  let bytesRead = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of plain) {
        if (signal?.aborted) throw new CanceledError('layer apply was canceled');
        bytesRead += chunk.length;
        if (bytesRead > maxBytes) {
          throw new ResourceExhaustedError(`layer is larger than the limit of ${maxBytes} uncompressed bytes; refusing to read further`);
        }
        hash.update(chunk);
        yield chunk;
      }
    } finally {
      stream.destroy();
    }
  }
  return {
    compression,
    chunks: counted(),
    get bytesRead() {
      return bytesRead;
    },
    digest: () => `sha256:${hash.copy().digest('hex')}`,
  };
}
