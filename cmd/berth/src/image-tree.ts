import type { Berth, Descriptor } from '@berth/core';
import { isNotFound } from '@berth/core';

const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const MANIFEST_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);

function hostPlatform(): { os: string; architecture: string } {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
  return { os: process.platform, architecture: arch };
}

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
 * does: an index contributes the matching manifest, a manifest its config and layers.
 */
export async function checkImage(client: Berth, target: Descriptor): Promise<ImageCheck> {
  const result: ImageCheck = { present: 0, missing: 0, presentBytes: 0, totalBytes: 0 };
  const host = hostPlatform();
  const visit = async (desc: Descriptor): Promise<void> => {
    result.totalBytes += desc.size;
    try {
      await client.content.info(desc.digest);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      result.missing++;
      return;
    }
    result.present++;
    result.presentBytes += desc.size;
    if (INDEX_TYPES.has(desc.mediaType)) {
      const index = (await readJson(client, desc.digest)) as { manifests?: Descriptor[] };
      const children = (index.manifests ?? []).filter(
        (m) => !m.platform || (m.platform.os === host.os && m.platform.architecture === host.architecture),
      );
      for (const child of children) await visit(child);
    } else if (MANIFEST_TYPES.has(desc.mediaType)) {
      const manifest = (await readJson(client, desc.digest)) as { config?: Descriptor; layers?: Descriptor[] };
      if (manifest.config) await visit(manifest.config);
      for (const layer of manifest.layers ?? []) await visit(layer);
    }
  };
  await visit(target);
  return result;
}
