import { createHash } from 'crypto';
import type { Readable } from 'stream';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  isAlreadyExists,
  isNotFound,
  NotFoundError,
  type ContentInfo,
  type ContentStore,
  type ContentWriter,
  type Descriptor,
  type Labels,
  type Platform,
} from '@berth/core';
import { discardIngest, formatBytes, readSmallBlob, storeGeneratedBlob, uniqueRef } from './content-io';
import { indexChildLabels, manifestChildLabels } from './gc-labels';
import { DEFAULT_JSON_SIZE_LIMIT, OCI_LAYOUT_VERSION } from './limits';
import { dockerLayerMediaType, isIndexType, isManifestType, MediaTypes } from './media-types';
import {
  descriptorJson,
  parseDockerArchiveManifest,
  parseImageIndex,
  parseImageManifest,
  parseJson,
  platformOfConfig,
} from './oci-json';
import { formatPlatform, platformMatches, toPlatforms, type PlatformSpec } from './platforms';
import {
  IMAGE_NAME_ANNOTATION,
  normalizeDockerReference,
  ociReferenceName,
  REF_NAME_ANNOTATION,
  translateRefName,
} from './references';
import { archivePath, readTar, type TarMember } from './tar-reader';

// Nested indexes deeper than this are an attack on the walk, not an image.
const MAX_INDEX_DEPTH = 8;

export interface ImportArchiveOptions {
  /**
   * Where blobs go. Until the caller creates image records, nothing references
   * them; give a view bound to a lease (as ctr does) so GC leaves them alone.
   */
  store: ContentStore;
  /**
   * ctr's `--base-name`: OCI ref names that are bare tags become `<baseName>:<tag>`,
   * and full ref names are kept only if they are under `baseName`. Without it,
   * bare tags get ctr's default prefix `import-<yyyy-MM-dd>` and full names are kept.
   * Names from `io.containerd.image.name` and docker RepoTags are always kept.
   */
  baseName?: string;
  /** ctr's `--index-name`: also name the archive's whole index (index.json, or one built for docker-save). */
  indexName?: string;
  /** ctr's `--digests`: also name every image `<prefix>@<digest>`. */
  digests?: boolean;
  /**
   * Only these platforms (`linux/arm64` or Platform objects) are required and
   * named. Default: every platform; index children the archive leaves out (as
   * ctr exports for one platform do) are skipped, but a manifest the archive
   * holds must be complete.
   */
  platforms?: ReadonlyArray<PlatformSpec>;
  /** Size limit for JSON documents (index.json, manifest.json, manifests, configs). Default 4 MiB. */
  jsonSizeLimit?: number;
}

/** An image the archive names, for the caller to create (or update) as an image record. */
export interface ImportedImage {
  name: string;
  target: Descriptor;
}

/** A regular file of the archive, as stored in the content store. */
interface StoredFile {
  digest: string;
  size: number;
  /** The first bytes, to tell compressed layers from plain tars. */
  head: Buffer;
}

// The metadata documents of both formats, kept in memory (size-capped).
const metadataFiles = new Set(['oci-layout', 'index.json', 'manifest.json']);
// Legacy docker-save files nothing here reads.
const ignoredDockerFiles = /^(repositories|[^/]+\/(json|VERSION))$/;
const ociBlobPath = /^blobs\/sha256\/([0-9a-f]{64})$/;

/**
 * Imports an OCI image layout tar or a `docker save` tar, like `ctr images import`:
 * every blob is streamed into the store as the tar is read (hashed on the way
 * and verified again by the store's commit), and the images the archive names
 * come back for the caller to record. Blobs the store already holds need not
 * be in the archive.
 *
 * OCI layouts: blobs are checked against the digest in their file name; names
 * come from index.json's `io.containerd.image.name` (full name) or
 * `org.opencontainers.image.ref.name` annotations. docker-save: files are stored
 * under the digest of their content, and a Docker schema 2 manifest is built and
 * stored for each image from manifest.json; names are its RepoTags, normalised
 * (`busybox:latest` → `docker.io/library/busybox:latest`).
 *
 * Manifests and indexes get the GC labels a pull sets (`gc.ref.content.m.<i>`,
 * `.config`, `.l.<i>`). On any failure nothing is returned: blobs that committed
 * stay (content-addressed; GC collects them) but no image is named.
 * `archive` is consumed, and destroyed if reading stops early.
 */
export async function importArchive(archive: Readable, options: ImportArchiveOptions): Promise<ImportedImage[]> {
  const { store } = options;
  const limit = options.jsonSizeLimit ?? DEFAULT_JSON_SIZE_LIMIT;
  const platforms = options.platforms?.length ? toPlatforms(options.platforms) : undefined;

  const contents = await readArchive(archive, store, limit);

  let topLevel: Descriptor[];
  let wholeIndex: { bytes: Buffer; mediaType: string };
  const layout = contents.metadata.get('oci-layout');
  const indexJson = contents.metadata.get('index.json');
  const dockerManifest = contents.metadata.get('manifest.json');
  if (layout || (indexJson && !dockerManifest)) {
    if (layout) checkLayoutVersion(layout);
    if (!indexJson) throw new InvalidArgumentError('OCI image layout has no index.json');
    const index = parseImageIndex(indexJson, 'index.json');
    topLevel = index.manifests;
    wholeIndex = { bytes: indexJson, mediaType: index.mediaType ?? MediaTypes.ociIndex };
  } else if (dockerManifest) {
    topLevel = await buildDockerImages(contents, dockerManifest, store, limit);
    const built = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: topLevel.map(descriptorJson) };
    wholeIndex = { bytes: Buffer.from(JSON.stringify(built)), mediaType: MediaTypes.ociIndex };
  } else {
    throw new InvalidArgumentError(
      'unrecognized archive: neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)',
    );
  }

  const walk = new ImportWalk(store, platforms, limit);
  const kept: Descriptor[] = [];
  for (const [i, descriptor] of topLevel.entries()) {
    if (platforms && descriptor.platform && !platformMatches(descriptor.platform, platforms)) continue;
    if (!(await walk.visit(descriptor, 0))) {
      throw new NotFoundError(`image ${describeTopLevel(descriptor, i)}: ${descriptor.digest} is not in the archive`);
    }
    kept.push(descriptor);
  }

  const named = new Map<string, Descriptor>();
  if (options.indexName) {
    const labels = indexChildLabels(kept);
    const digest = await storeGeneratedBlob(store, wholeIndex.bytes, labels);
    walk.labels.set(digest, labels);
    named.set(options.indexName, { mediaType: wholeIndex.mediaType, digest, size: wholeIndex.bytes.length });
  }
  const prefix = options.baseName ?? `import-${new Date().toISOString().slice(0, 10)}`;
  for (const descriptor of kept) {
    const name = imageName(descriptor, prefix, options.baseName !== undefined);
    if (name) named.set(checkImageName(name), descriptor);
    if (options.digests) named.set(`${prefix}@${descriptor.digest}`, descriptor);
  }

  // Only now, with every image complete, do labels change: a failed import names nothing and labels nothing.
  for (const [digest, labels] of walk.labels) {
    await store.update({ digest, labels }, Object.keys(labels).map((key) => `labels.${key}`));
  }
  return [...named].map(([name, target]) => ({ name, target }));
}

/** What reading the tar left: stored files by archive path, links, and the metadata documents. */
class ArchiveContents {
  readonly files = new Map<string, StoredFile>();
  readonly links = new Map<string, string>();
  readonly metadata = new Map<string, Buffer>();

  /** The stored file at `name` (a path from manifest.json), following links inside the archive. */
  resolve(name: string, what: string): StoredFile {
    let path = archivePath(name);
    for (let hops = 0; hops < 16; hops++) {
      const file = this.files.get(path);
      if (file) return file;
      const target = this.links.get(path);
      if (target === undefined) break;
      path = target;
    }
    throw new InvalidArgumentError(`${what} ${JSON.stringify(name)} is not a file in the archive`);
  }
}

async function readArchive(archive: Readable, store: ContentStore, limit: number): Promise<ArchiveContents> {
  const contents = new ArchiveContents();
  for await (const member of readTar(archive)) {
    if (member.kind === 'symlink' || member.kind === 'hardlink') {
      // docker save links a layer shared by two images instead of storing it twice.
      contents.links.set(member.path, member.linkTarget ?? '');
      member.skip();
      continue;
    }
    if (member.kind !== 'file') {
      member.skip();
      continue;
    }
    if (metadataFiles.has(member.path)) {
      contents.metadata.set(member.path, await readMetadataFile(member, limit));
      continue;
    }
    const blob = ociBlobPath.exec(member.path);
    if (blob) {
      contents.files.set(member.path, await ingestMember(store, member, `sha256:${blob[1]}`));
      continue;
    }
    // A docker save archive names its layers and configs in manifest.json, which
    // may come last; until the format is known, any other file may be one. An
    // OCI layout (oci-layout seen) needs nothing outside blobs/.
    if (member.path.startsWith('blobs/') || ignoredDockerFiles.test(member.path) || contents.metadata.has('oci-layout')) {
      member.skip();
      continue;
    }
    contents.files.set(member.path, await ingestMember(store, member, undefined));
  }
  return contents;
}

async function readMetadataFile(member: TarMember, limit: number): Promise<Buffer> {
  if (member.size > limit) {
    member.skip();
    throw new InvalidArgumentError(
      `${member.path} in the archive is ${member.size} bytes, over the ${formatBytes(limit)} limit for JSON files`,
    );
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of member.body) {
    total += chunk.length;
    if (total > limit) throw new InvalidArgumentError(`${member.path} in the archive is over the ${formatBytes(limit)} limit`);
    chunks.push(chunk);
  }
  checkComplete(member, total);
  return Buffer.concat(chunks);
}

function checkComplete(member: TarMember, received: number): void {
  if (received !== member.size) {
    throw new InvalidArgumentError(
      `archive is truncated: ${JSON.stringify(member.rawPath)} ended after ${received} of ${member.size} bytes`,
    );
  }
}

async function infoOf(store: ContentStore, digest: string): Promise<ContentInfo | undefined> {
  try {
    return await store.info(digest);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const HEAD_BYTES = 8;

/**
 * Streams one member into the store. With `expected` (an OCI blob) the content
 * must hash to it; without (a docker save file) it is stored under whatever it
 * hashes to. A blob already present is hashed but not written again, so a
 * corrupt copy in the archive is still refused.
 */
async function ingestMember(store: ContentStore, member: TarMember, expected: string | undefined): Promise<StoredFile> {
  const hash = createHash('sha256');
  let head = Buffer.alloc(0);
  let received = 0;
  let writer: ContentWriter | undefined;
  if (!expected || !(await infoOf(store, expected))) {
    try {
      writer = await store.writer({
        ref: uniqueRef('archive-import'),
        expected: { size: member.size, digest: expected },
      });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }
  try {
    if (writer && writer.offset > 0) await writer.truncate(0);
    for await (const chunk of member.body) {
      hash.update(chunk);
      if (head.length < HEAD_BYTES) head = Buffer.concat([head, chunk.subarray(0, HEAD_BYTES - head.length)]);
      received += chunk.length;
      if (writer) await writer.write(chunk);
    }
    checkComplete(member, received);
    const digest = `sha256:${hash.digest('hex')}`;
    if (expected && digest !== expected) {
      throw new FailedPreconditionError(
        `blob ${expected} in the archive (${JSON.stringify(member.rawPath)}) does not match its digest: its content hashes to ${digest}`,
      );
    }
    if (writer) {
      try {
        await writer.commit(received, digest);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
      await writer.close();
      writer = undefined;
    }
    return { digest, size: received, head };
  } finally {
    if (writer) await discardIngest(store, writer);
  }
}

function checkLayoutVersion(layout: Buffer): void {
  const value = parseJson(layout, 'oci-layout') as { imageLayoutVersion?: unknown } | null;
  const version = value && typeof value === 'object' ? value.imageLayoutVersion : undefined;
  if (version !== OCI_LAYOUT_VERSION) {
    throw new InvalidArgumentError(
      `unsupported OCI image layout version ${JSON.stringify(version)} in oci-layout (supported: ${OCI_LAYOUT_VERSION})`,
    );
  }
}

/** Builds and stores a Docker schema 2 manifest per manifest.json entry; returns index entries naming them. */
async function buildDockerImages(
  contents: ArchiveContents,
  manifestJson: Buffer,
  store: ContentStore,
  limit: number,
): Promise<Descriptor[]> {
  const entries = parseDockerArchiveManifest(manifestJson);
  const images: Descriptor[] = [];
  for (const [i, entry] of entries.entries()) {
    const where = `manifest.json[${i}]`;
    const configFile = contents.resolve(entry.Config, `${where} config`);
    const config: Descriptor = { mediaType: MediaTypes.dockerConfig, digest: configFile.digest, size: configFile.size };
    const layers: Descriptor[] = entry.Layers.map((layer, l) => {
      const file = contents.resolve(layer, `${where} layer ${l}`);
      return { mediaType: dockerLayerMediaType(file.head), digest: file.digest, size: file.size };
    });
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: descriptorJson(config),
      layers: layers.map(descriptorJson),
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = await storeGeneratedBlob(store, bytes, manifestChildLabels(config, layers));
    const descriptor: Descriptor = { mediaType: MediaTypes.dockerManifest, digest, size: bytes.length };
    const platform = platformOfConfig(await readSmallBlob(store, config.digest, limit, 'image config'));
    if (platform) descriptor.platform = platform;

    if (!entry.RepoTags?.length) {
      images.push(descriptor);
      continue;
    }
    for (const tag of entry.RepoTags) {
      const name = normalizeDockerReference(tag);
      images.push({
        ...descriptor,
        annotations: { [IMAGE_NAME_ANNOTATION]: name, [REF_NAME_ANNOTATION]: ociReferenceName(name) },
      });
    }
  }
  return images;
}

/**
 * Checks what the archive's images reference and works out their GC labels,
 * changing nothing: manifests and indexes are read back from the store, every
 * config and layer must be there, each blob's size must be what its descriptor says.
 */
class ImportWalk {
  /** Labels to set, by digest, once the whole import has succeeded. */
  readonly labels = new Map<string, Labels>();
  private readonly visited = new Map<string, boolean>();

  constructor(
    private readonly store: ContentStore,
    private readonly platforms: Platform[] | undefined,
    private readonly limit: number,
  ) {}

  /** Whether `descriptor` is present (and, for manifests and indexes, complete); throws if present but broken. */
  async visit(descriptor: Descriptor, depth: number): Promise<boolean> {
    const known = this.visited.get(descriptor.digest);
    if (known !== undefined) return known;
    if (depth > MAX_INDEX_DEPTH) {
      throw new InvalidArgumentError(`indexes nested deeper than ${MAX_INDEX_DEPTH} levels at ${descriptor.digest}`);
    }
    const present = await this.present(descriptor, 'blob');
    if (present) {
      if (isManifestType(descriptor.mediaType)) await this.visitManifest(descriptor);
      else if (isIndexType(descriptor.mediaType)) await this.visitIndex(descriptor, depth);
    }
    this.visited.set(descriptor.digest, present);
    return present;
  }

  private async present(descriptor: Descriptor, what: string): Promise<boolean> {
    const info = await infoOf(this.store, descriptor.digest);
    if (info && info.size !== descriptor.size) {
      throw new InvalidArgumentError(
        `${what} ${descriptor.digest} is ${info.size} bytes, but the descriptor referring to it says ${descriptor.size}`,
      );
    }
    return info !== undefined;
  }

  private async visitManifest(descriptor: Descriptor): Promise<void> {
    const what = `manifest ${descriptor.digest}`;
    const manifest = parseImageManifest(await readSmallBlob(this.store, descriptor.digest, this.limit, 'manifest'), what);
    const children: Array<[Descriptor, string]> = [
      [manifest.config, 'config'],
      ...manifest.layers.map((layer, i): [Descriptor, string] => [layer, `layer ${i}`]),
    ];
    for (const [child, role] of children) {
      if (!(await this.present(child, `${what} ${role}`))) {
        throw new NotFoundError(`${what} needs ${role} ${child.digest}, which is not in the archive`);
      }
    }
    this.labels.set(descriptor.digest, manifestChildLabels(manifest.config, manifest.layers));
  }

  private async visitIndex(descriptor: Descriptor, depth: number): Promise<void> {
    const what = `index ${descriptor.digest}`;
    const index = parseImageIndex(await readSmallBlob(this.store, descriptor.digest, this.limit, 'index'), what);
    const held: Descriptor[] = [];
    for (const child of index.manifests) {
      const wanted = !this.platforms || !child.platform || platformMatches(child.platform, this.platforms);
      if (!wanted) continue;
      if (await this.visit(child, depth + 1)) {
        held.push(child);
      } else if (this.platforms) {
        const platform = child.platform ? ` (${formatPlatform(child.platform)})` : '';
        throw new NotFoundError(`${what} needs manifest ${child.digest}${platform}, which is not in the archive`);
      }
    }
    if (held.length === 0) {
      const scope = this.platforms ? ` for ${this.platforms.map(formatPlatform).join(', ')}` : '';
      throw new NotFoundError(`${what} has no manifest${scope} in the archive`);
    }
    this.labels.set(descriptor.digest, indexChildLabels(held));
  }
}

function describeTopLevel(descriptor: Descriptor, i: number): string {
  const name = descriptor.annotations?.[IMAGE_NAME_ANNOTATION] ?? descriptor.annotations?.[REF_NAME_ANNOTATION];
  return name ? JSON.stringify(name) : `#${i}`;
}

/** containerd's rule: the full-name annotation wins; otherwise the OCI ref name, through the prefix. */
function imageName(descriptor: Descriptor, prefix: string, onlyPrefixed: boolean): string | undefined {
  const full = descriptor.annotations?.[IMAGE_NAME_ANNOTATION];
  if (full) return full;
  const ref = descriptor.annotations?.[REF_NAME_ANNOTATION];
  return ref ? translateRefName(ref, prefix, onlyPrefixed) : undefined;
}

function checkImageName(name: string): string {
  // Names become keys in the image store and appear in CLI output: no control characters or spaces.
  if (name.length > 4096 || /[\s\p{Cc}]/u.test(name)) {
    throw new InvalidArgumentError(`archive names an image ${JSON.stringify(name.slice(0, 200))}, which is not a valid image name`);
  }
  return name;
}
