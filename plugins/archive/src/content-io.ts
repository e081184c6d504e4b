import { createHash, randomBytes } from 'crypto';
import {
  InvalidArgumentError,
  isAlreadyExists,
  isNotFound,
  type ContentIngester,
  type ContentProvider,
  type ContentWriter,
  type IngestManager,
  type Labels,
} from '@berth/core';

export function sha256Of(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A ref no other ingest uses, so concurrent imports of one archive never wait on each other's locks. */
export function uniqueRef(purpose: string): string {
  return `${purpose}-${randomBytes(8).toString('hex')}`;
}

/**
 * A whole blob in memory, for manifests, indexes and configs only: anything
 * over `limit` bytes is refused before it is read in full.
 */
export async function readSmallBlob(provider: ContentProvider, digest: string, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const stream = await provider.read(digest);
  try {
    for await (const chunk of stream) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      total += buf.length;
      if (total > limit) {
        throw new InvalidArgumentError(`${what} ${digest} is larger than the ${formatBytes(limit)} limit for JSON documents`);
      }
      chunks.push(buf);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}

/** Whether the provider holds `digest`, asked by opening it (a provider has no `info`). */
export async function providerHas(provider: ContentProvider, digest: string): Promise<boolean> {
  try {
    const stream = await provider.read(digest);
    stream.destroy();
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Stores bytes we made ourselves (a generated manifest or index); present already is fine. */
export async function storeGeneratedBlob(
  ingester: ContentIngester & Pick<IngestManager, 'abort'>,
  data: Uint8Array,
  labels: Labels,
): Promise<string> {
  const digest = sha256Of(data);
  const ref = uniqueRef('archive-generated');
  let writer: ContentWriter;
  try {
    writer = await ingester.writer({ ref, expected: { size: data.length, digest } });
  } catch (err) {
    if (isAlreadyExists(err)) return digest;
    throw err;
  }
  try {
    await writer.write(data);
    await writer.commit(data.length, digest, { labels });
  } catch (err) {
    if (!isAlreadyExists(err)) {
      await discardIngest(ingester, writer);
      throw err;
    }
  }
  await writer.close();
  return digest;
}

/** Closes a failed writer and removes what it wrote: a unique ref would never be resumed. */
export async function discardIngest(ingests: Pick<IngestManager, 'abort'>, writer: ContentWriter): Promise<void> {
  await writer.close().catch(() => undefined);
  await ingests.abort(writer.ref).catch(() => undefined);
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}
