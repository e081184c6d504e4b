import { createHash, randomBytes } from 'crypto';
import { Readable, Writable } from 'stream';
import { Header, Parser, type ReadEntry } from 'tar';
import type { ContentStore, Descriptor, Platform } from '@berth/core';

export const OCI = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Commits `data` to the store and returns its descriptor. */
export async function putBlob(
  store: ContentStore,
  data: Buffer,
  mediaType: string,
  extra: Partial<Descriptor> = {},
): Promise<Descriptor> {
  const digest = sha256(data);
  const writer = await store.writer({ ref: `test-${digest}`, expected: { size: data.length, digest } });
  await writer.write(data);
  try {
    await writer.commit(data.length, digest);
  } catch (err) {
    if ((err as { kind?: string }).kind !== 'already-exists') throw err;
  }
  await writer.close();
  return { mediaType, digest, size: data.length, ...extra };
}

export const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

export interface TestImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

/** A single-platform image: `layerSizes` layers of random bytes, a config naming the platform, a manifest. */
export async function buildImage(
  store: ContentStore,
  platform: Platform = { os: 'linux', architecture: 'amd64' },
  layerSizes: number[] = [3000, 70_000, 1],
): Promise<TestImage> {
  const layers: Descriptor[] = [];
  for (const size of layerSizes) layers.push(await putBlob(store, randomBytes(size), OCI.layer));
  const config = await putBlob(
    store,
    json({ architecture: platform.architecture, os: platform.os, variant: platform.variant, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }),
    OCI.config,
  );
  const manifest = await putBlob(
    store,
    json({ schemaVersion: 2, mediaType: OCI.manifest, config, layers }),
    OCI.manifest,
    { platform },
  );
  return { manifest, config, layers };
}

/** An index over one image per platform. */
export async function buildIndex(
  store: ContentStore,
  platforms: Platform[] = [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64', variant: 'v8' },
  ],
): Promise<{ index: Descriptor; images: TestImage[] }> {
  const images: TestImage[] = [];
  for (const p of platforms) images.push(await buildImage(store, p));
  const index = await putBlob(
    store,
    json({ schemaVersion: 2, mediaType: OCI.index, manifests: images.map((i) => i.manifest) }),
    OCI.index,
  );
  return { index, images };
}

export function allDigests(image: TestImage): string[] {
  return [image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.digest)];
}

/** A writable that keeps everything written to it. */
export class Collector extends Writable {
  private readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    done();
  }
  get buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface TarListing {
  path: string;
  type: string;
  size: number;
  mode?: number;
  data: Buffer;
  linkpath?: string;
}

/** Every member of a tar, with its data (small archives only). */
export async function listTar(tar: Buffer): Promise<TarListing[]> {
  const members: TarListing[] = [];
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({ strict: true });
    parser.on('entry', (entry: ReadEntry) => {
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () =>
        members.push({
          path: entry.path,
          type: entry.type,
          size: entry.size,
          mode: entry.mode,
          data: Buffer.concat(chunks),
          linkpath: entry.linkpath,
        }),
      );
    });
    parser.on('error', reject);
    parser.on('end', () => resolve());
    parser.end(tar);
  });
  return members;
}

export interface RawMember {
  path: string;
  data?: Buffer | string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link';
  linkpath?: string;
  /** Header size when it should differ from the data (to fake a truncated member). */
  size?: number;
}

/**
 * A tar built header by header, so tests can write what no well-behaved tool
 * would: `../` names, absolute names, lying sizes.
 */
export function rawTar(members: RawMember[], { end = true }: { end?: boolean } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const m of members) {
    const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
    const header = new Header({
      path: m.path,
      mode: m.type === 'Directory' ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      size: m.size ?? (m.type === 'File' || m.type === undefined ? data.length : 0),
      mtime: new Date(0),
      type: m.type ?? 'File',
      linkpath: m.linkpath,
    });
    header.encode();
    blocks.push(header.block as Buffer, data);
    const rest = data.length % 512;
    if (rest) blocks.push(Buffer.alloc(512 - rest));
  }
  if (end) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A stream of `data` in small pieces, so parsing sees chunk boundaries everywhere. */
export function streamOf(data: Buffer, chunkSize = 7000): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkSize) chunks.push(data.subarray(i, i + chunkSize));
  return Readable.from(chunks);
}

/** A minimal valid tar holding one file: a layer real tools can unpack. */
export function layerTar(name: string, content: string): Buffer {
  return rawTar([{ path: name, data: content }]);
}
