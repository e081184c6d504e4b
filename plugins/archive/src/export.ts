import { createHash } from 'crypto';
import { Readable, type Writable } from 'stream';
import { pipeline } from 'stream/promises';
import {
  DataLossError,
  InvalidArgumentError,
  NotFoundError,
  type ContentProvider,
  type Descriptor,
  type Platform,
} from '@berth/core';
import { providerHas, readSmallBlob } from './content-io';
import { DEFAULT_JSON_SIZE_LIMIT, OCI_LAYOUT_VERSION } from './limits';
import { isIndexType, isManifestType, MediaTypes } from './media-types';
import { descriptorJson, isSha256Digest, parseImageIndex, parseImageManifest, type ImageManifest } from './oci-json';
import { formatPlatform, platformMatches, platformPreference, toPlatforms, type PlatformSpec } from './platforms';
import { familiarDockerTag, IMAGE_NAME_ANNOTATION, ociReferenceName, REF_NAME_ANNOTATION } from './references';
import { tarEnd, tarHeader, tarPadding } from './tar-writer';

/** An image to put in an archive: its name and the manifest or index it points at. */
export interface ExportImage {
  name: string;
  target: Descriptor;
}

export interface ExportArchiveOptions {
  provider: ContentProvider;
  images: ReadonlyArray<ExportImage>;
  /**
   * Export only these platforms of multi-platform images (`linux/amd64` or
   * Platform objects), like ctr's `--platform`; their content must be present.
   * Default: every platform whose content is present locally; platforms not
   * pulled are left out (the index still lists them, as ctr's exports do).
   */
  platforms?: ReadonlyArray<PlatformSpec>;
  /** Every platform of every index, all of which must be present (ctr's `--all-platforms`). */
  allPlatforms?: boolean;
  /** Leave out the Docker-compatible manifest.json that lets `docker load` read the archive. */
  skipDockerManifest?: boolean;
  /** Size limit for manifests and indexes read while walking. Default 4 MiB. */
  jsonSizeLimit?: number;
}

type ChildPolicy = 'required' | 'if-present' | 'skip';

interface ExportPlan {
  /** index.json entries, one per image. */
  index: Descriptor[];
  /** Every blob, in walk order (index, manifests, configs, layers), once each. */
  blobs: Map<string, Descriptor>;
  /** manifest.json entries for `docker load`. */
  dockerImages: Array<{ manifest: ImageManifest; tags: string[] }>;
}

/**
 * Writes `images` to `out` as an OCI image layout tar (oci-layout, index.json,
 * blobs/sha256/…), as `ctr images export` does: each image is one index.json
 * entry annotated with `io.containerd.image.name` (full name) and
 * `org.opencontainers.image.ref.name` (tag), and a Docker manifest.json is added
 * for `docker load`. The archive imports with `ctr images import`,
 * `skopeo copy oci-archive:…` and `importArchive`.
 *
 * Everything is checked before the first byte is written: a missing blob an
 * exported image needs is a NotFoundError naming its digest, and `out` is left
 * untouched. Blobs are streamed from the provider and verified on the way;
 * a blob that does not match its digest fails the export (DataLossError) and
 * destroys `out`. On success `out` is ended.
 */
export async function exportArchive(out: Writable, options: ExportArchiveOptions): Promise<void> {
  const plan = await planExport(options);
  const files: Array<[string, Buffer, number]> = [
    ['oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION })), 0o444],
    [
      'index.json',
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: plan.index.map(descriptorJson) })),
      0o644,
    ],
  ];
  if (!options.skipDockerManifest && plan.dockerImages.length > 0) {
    const entries = plan.dockerImages.map(({ manifest, tags }) => ({
      Config: blobPath(manifest.config.digest),
      RepoTags: tags.length ? tags : null,
      Layers: manifest.layers.map((layer) => blobPath(layer.digest)),
    }));
    files.push(['manifest.json', Buffer.from(JSON.stringify(entries)), 0o644]);
  }
  await pipeline(Readable.from(archiveBytes(files, plan.blobs, options.provider), { objectMode: false }), out);
}

function blobPath(digest: string): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

async function* archiveBytes(
  files: ReadonlyArray<[string, Buffer, number]>,
  blobs: Map<string, Descriptor>,
  provider: ContentProvider,
): AsyncGenerator<Buffer> {
  // Metadata first, so a reader of the stream knows what is in it before the layers come.
  for (const [path, bytes, mode] of files) {
    yield tarHeader(path, 'file', bytes.length, mode);
    yield bytes;
    yield tarPadding(bytes.length);
  }
  yield tarHeader('blobs/', 'directory', 0, 0o755);
  yield tarHeader('blobs/sha256/', 'directory', 0, 0o755);
  for (const blob of blobs.values()) {
    yield tarHeader(blobPath(blob.digest), 'file', blob.size, 0o444);
    yield* verifiedBlob(provider, blob);
    yield tarPadding(blob.size);
  }
  yield tarEnd();
}

/** A blob's bytes, checked against its size and digest as they pass: the tar header has already promised them. */
async function* verifiedBlob(provider: ContentProvider, blob: Descriptor): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let written = 0;
  const stream = await provider.read(blob.digest);
  try {
    for await (const data of stream) {
      const chunk = typeof data === 'string' ? Buffer.from(data) : (data as Buffer);
      written += chunk.length;
      if (written > blob.size) break;
      hash.update(chunk);
      yield chunk;
    }
  } finally {
    stream.destroy();
  }
  if (written !== blob.size) {
    throw new DataLossError(`blob ${blob.digest} in the content store is not the ${blob.size} bytes its descriptor says`);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== blob.digest) {
    throw new DataLossError(`blob ${blob.digest} in the content store does not match its digest (content hashes to ${digest})`);
  }
}

async function planExport(options: ExportArchiveOptions): Promise<ExportPlan> {
  const platforms = options.platforms?.length ? toPlatforms(options.platforms) : undefined;
  const walk = new ExportWalk(options.provider, options.jsonSizeLimit ?? DEFAULT_JSON_SIZE_LIMIT, {
    allPlatforms: options.allPlatforms ?? false,
    platforms,
  });
  const plan: ExportPlan = { index: [], blobs: new Map(), dockerImages: [] };
  const dockerByManifest = new Map<string, { manifest: ImageManifest; tags: string[] }>();

  for (const { name, target } of options.images) {
    if (!name) throw new InvalidArgumentError('an exported image needs a name');
    if (!isSha256Digest(target.digest)) {
      throw new InvalidArgumentError(`image ${JSON.stringify(name)}: target digest ${JSON.stringify(target.digest)} is not sha256:<64 hex>`);
    }
    if (!isManifestType(target.mediaType) && !isIndexType(target.mediaType)) {
      throw new InvalidArgumentError(
        `image ${JSON.stringify(name)}: only manifests and indexes can be exported, not ${JSON.stringify(target.mediaType)}`,
      );
    }
    const blobs = await walk.collect(target, 'required', 0, `image ${JSON.stringify(name)}`);
    if (!blobs) throw new NotFoundError(`image ${JSON.stringify(name)}: ${target.digest} is not in the content store`);
    for (const blob of blobs) if (!plan.blobs.has(blob.digest)) plan.blobs.set(blob.digest, blob);

    plan.index.push({
      ...target,
      annotations: { ...target.annotations, [IMAGE_NAME_ANNOTATION]: name, [REF_NAME_ANNOTATION]: ociReferenceName(name) },
    });

    const dockerManifest = walk.dockerManifestFor(target, platforms);
    if (dockerManifest) {
      let entry = dockerByManifest.get(dockerManifest.digest);
      if (!entry) {
        entry = { manifest: dockerManifest.manifest, tags: [] };
        dockerByManifest.set(dockerManifest.digest, entry);
        plan.dockerImages.push(entry);
      }
      const tag = familiarDockerTag(name);
      if (tag && !entry.tags.includes(tag)) entry.tags.push(tag);
    }
  }
  return plan;
}

/** Works out which blobs an image needs, reading manifests and indexes from the provider. */
class ExportWalk {
  private readonly manifests = new Map<string, ImageManifest>();
  /** Children of each index that made it into the archive. */
  private readonly exportedChildren = new Map<string, Descriptor[]>();

  constructor(
    private readonly provider: ContentProvider,
    private readonly limit: number,
    private readonly filter: { allPlatforms: boolean; platforms: Platform[] | undefined },
  ) {}

  /**
   * The blobs `descriptor` needs, itself first. `required` content that is
   * missing is a NotFoundError naming the digest; `if-present` content that is
   * missing anywhere below gives undefined, and none of it is exported.
   */
  async collect(descriptor: Descriptor, policy: ChildPolicy, depth: number, what: string): Promise<Descriptor[] | undefined> {
    if (depth > 8) throw new InvalidArgumentError(`${what}: indexes nested deeper than 8 levels at ${descriptor.digest}`);
    if (!(await this.has(descriptor, policy, what))) return undefined;
    if (isManifestType(descriptor.mediaType)) return this.collectManifest(descriptor, policy, what);
    if (isIndexType(descriptor.mediaType)) return this.collectIndex(descriptor, policy, depth, what);
    return [descriptor];
  }

  private async has(descriptor: Descriptor, policy: ChildPolicy, what: string): Promise<boolean> {
    if (await providerHas(this.provider, descriptor.digest)) return true;
    if (policy === 'required') throw new NotFoundError(`${what}: ${descriptor.digest} is not in the content store`);
    return false;
  }

  private async collectManifest(descriptor: Descriptor, policy: ChildPolicy, what: string): Promise<Descriptor[] | undefined> {
    const manifest = parseImageManifest(
      await readSmallBlob(this.provider, descriptor.digest, this.limit, 'manifest'),
      `manifest ${descriptor.digest}`,
    );
    const children = [manifest.config, ...manifest.layers];
    for (const child of children) {
      if (!(await this.has(child, policy, `${what}, manifest ${descriptor.digest}`))) return undefined;
    }
    this.manifests.set(descriptor.digest, manifest);
    return [descriptor, ...children];
  }

  private async collectIndex(
    descriptor: Descriptor,
    policy: ChildPolicy,
    depth: number,
    what: string,
  ): Promise<Descriptor[] | undefined> {
    const index = parseImageIndex(
      await readSmallBlob(this.provider, descriptor.digest, this.limit, 'index'),
      `index ${descriptor.digest}`,
    );
    const blobs: Descriptor[] = [descriptor];
    const exported: Descriptor[] = [];
    for (const child of index.manifests) {
      const childPolicy = this.policyFor(child);
      if (childPolicy === 'skip') continue;
      const platform = child.platform ? ` (${formatPlatform(child.platform)})` : '';
      const childBlobs = await this.collect(child, childPolicy, depth + 1, `${what}${platform}`);
      if (!childBlobs) continue;
      blobs.push(...childBlobs);
      exported.push(child);
    }
    if (exported.length === 0) {
      if (policy !== 'required') return undefined;
      const scope = this.filter.platforms ? ` for ${this.filter.platforms.map(formatPlatform).join(', ')}` : '';
      throw new NotFoundError(`${what}: index ${descriptor.digest} has no manifest${scope} in the content store`);
    }
    this.exportedChildren.set(descriptor.digest, exported);
    return blobs;
  }

  private policyFor(child: Descriptor): ChildPolicy {
    if (this.filter.allPlatforms) return 'required';
    if (this.filter.platforms) {
      return !child.platform || platformMatches(child.platform, this.filter.platforms) ? 'required' : 'skip';
    }
    return 'if-present';
  }

  /**
   * The one manifest `docker load` should see for an image: the target itself,
   * or for an index the exported child for the first requested platform, or
   * its only exported child. Docker's manifest.json has no room for more.
   */
  dockerManifestFor(target: Descriptor, platforms: Platform[] | undefined): { digest: string; manifest: ImageManifest } | undefined {
    const direct = this.manifests.get(target.digest);
    if (direct) return { digest: target.digest, manifest: direct };
    const children = (this.exportedChildren.get(target.digest) ?? []).filter((c) => this.manifests.has(c.digest));
    let chosen: Descriptor | undefined;
    if (platforms) {
      let best = Infinity;
      for (const child of children) {
        const rank = child.platform ? platformPreference(child.platform, platforms) : -1;
        if (rank >= 0 && rank < best) {
          best = rank;
          chosen = child;
        }
      }
    } else if (children.length === 1) {
      chosen = children[0];
    }
    const manifest = chosen && this.manifests.get(chosen.digest);
    return chosen && manifest ? { digest: chosen.digest, manifest } : undefined;
  }
}
