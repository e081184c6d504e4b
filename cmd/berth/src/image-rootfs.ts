import { createHash } from 'crypto';
import {
  type Berth,
  type Descriptor,
  hostPlatform,
  InvalidArgumentError,
  isIndexType,
  isManifestType,
  NotFoundError,
  parsePlatform,
  type Platform,
  platformMatches,
} from '@berth/core';

async function readJson(client: Berth, digest: string): Promise<Record<string, unknown>> {
  const stream = await client.content.read(digest);
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
}

/** The manifest of `target` for `platform` (an index's first match, or the manifest itself). */
async function platformManifest(client: Berth, target: Descriptor, platform: Platform): Promise<Descriptor> {
  if (isManifestType(target.mediaType)) return target;
  if (!isIndexType(target.mediaType)) throw new InvalidArgumentError(`${target.digest}: ${target.mediaType} is not an image`);
  const index = await readJson(client, target.digest);
  const children = (index.manifests as Descriptor[] | undefined) ?? [];
  for (const child of children) {
    if (child.platform && !platformMatches(platform, child.platform)) continue;
    if (isManifestType(child.mediaType)) return child;
    if (isIndexType(child.mediaType) && !child.platform) return platformManifest(client, child, platform);
  }
  const p = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
  throw new NotFoundError(`no manifest for platform ${p} in ${target.digest}`);
}

/**
 * The chain ID of an image's rootfs: the name of the snapshot its unpacked
 * top layer is committed as (containerd's identity.ChainID of the config's
 * diff_ids).
 */
export async function imageChainID(client: Berth, target: Descriptor, platform?: string): Promise<string> {
  const manifest = await platformManifest(client, target, platform ? parsePlatform(platform) : hostPlatform());
  const doc = await readJson(client, manifest.digest);
  const config = doc.config as Descriptor | undefined;
  if (!config) throw new InvalidArgumentError(`manifest ${manifest.digest} has no config`);
  const rootfs = (await readJson(client, config.digest)).rootfs as { diff_ids?: string[] } | undefined;
  const diffIDs = rootfs?.diff_ids ?? [];
  if (diffIDs.length === 0) throw new InvalidArgumentError(`image config ${config.digest} has no layers`);
  return diffIDs.reduce((parent, diffID) =>
    parent === '' ? diffID : `sha256:${createHash('sha256').update(`${parent} ${diffID}`).digest('hex')}`,
  '');
}
