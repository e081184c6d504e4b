import type { Berth, Descriptor } from '@berth/core';
import { hostPlatform, isIndexType, isManifestType, isNotFound, platformMatches } from '@berth/core';

async function readJson(client: Berth, digest: string): Promise<unknown> {
  const stream = await client.content.read(digest);
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export interface ImageCheck {
  present: number;
  missing: number;
  presentBytes: number;
  totalBytes: number;
}

/**
 * Counts the blobs of an image for the host's platform, as `ctr images check`
 * does: an index leads to the matching manifest, a manifest to its config and layers.
 */
export async function checkImage(client: Berth, target: Descriptor): Promise<ImageCheck> {
  const result: ImageCheck = { present: 0, missing: 0, presentBytes: 0, totalBytes: 0 };
  const host = hostPlatform();
  const visit = async (desc: Descriptor): Promise<void> => {
    // Like ctr, count the blobs an image needs (config and layers); a missing
    // manifest or index counts once, as what hides the rest.
    const isDocument = isIndexType(desc.mediaType) || isManifestType(desc.mediaType);
    try {
      await client.content.info(desc.digest);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      result.missing++;
      result.totalBytes += desc.size;
      return;
    }
    if (!isDocument) {
      result.present++;
      result.presentBytes += desc.size;
      result.totalBytes += desc.size;
    }
    if (isIndexType(desc.mediaType)) {
      const index = (await readJson(client, desc.digest)) as { manifests?: Descriptor[] };
      const children = (index.manifests ?? []).filter((m) => !m.platform || platformMatches(host, m.platform));
      for (const child of children) await visit(child);
    } else if (isManifestType(desc.mediaType)) {
      const manifest = (await readJson(client, desc.digest)) as { config?: Descriptor; layers?: Descriptor[] };
      if (manifest.config) await visit(manifest.config);
      for (const layer of manifest.layers ?? []) await visit(layer);
    }
  };
  await visit(target);
  return result;
}
