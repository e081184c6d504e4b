import { isAlreadyExists } from '../errdefs';
import type { Labels } from '../metadata/types';
import type { ContentIngester, ContentProvider, ContentWriter } from './types';

/** A whole committed blob in memory (containerd's content.ReadBlob). Meant for manifests and configs, not layers. */
export async function readBlob(provider: ContentProvider, digest: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await provider.read(digest)) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  }
  return Buffer.concat(chunks);
}

export interface WriteBlobOptions {
  /** What `data` must be; checked at commit. */
  expected?: { size?: number; digest?: string };
  labels?: Labels;
}

/**
 * Writes `data` under `ref` and commits it (containerd's content.WriteBlob).
 * A blob that is already present is success. An interrupted ingest for `ref`
 * resumes where it stopped; if what it holds is not a prefix of `data`, the
 * commit fails (FailedPrecondition) and the ingest is gone, so a retry starts clean.
 */
export async function writeBlob(
  ingester: ContentIngester,
  ref: string,
  data: Uint8Array,
  options: WriteBlobOptions = {},
): Promise<void> {
  const expected = options.expected ?? {};
  let writer: ContentWriter;
  try {
    writer = await ingester.writer({ ref, expected });
  } catch (err) {
    if (isAlreadyExists(err)) return;
    throw err;
  }
  try {
    if (writer.offset < data.length) await writer.write(data.subarray(writer.offset));
    await writer.commit(expected.size ?? data.length, expected.digest ?? '', { labels: options.labels });
  } catch (err) {
    if (isAlreadyExists(err)) return;
    throw err;
  } finally {
    await writer.close();
  }
}
