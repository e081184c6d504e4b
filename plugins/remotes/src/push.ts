import type { Readable } from 'stream';
import {
  type ContentInfo,
  type ContentProvider,
  type Descriptor,
  FailedPreconditionError,
  InvalidArgumentError,
  isNotFound,
  NotImplementedError,
} from '@berth/core';
import { Limiter } from './limiter';
import { isIndexType, isManifestOrIndexType, isManifestType } from './media-types';
import { type BlobProgressListener, distributionSourceLabelPrefix, parseIndex, parseManifest } from './pull';
import { normalizeReference, parseReference, validateDigest } from './reference';
import { RegistryResolver, type ResolverOptions } from './resolver';

export interface PushImageOptions extends ResolverOptions {
  /** Reuse a resolver; otherwise one is made from these options and closed. */
  resolver?: RegistryResolver;
  /** Blobs uploaded at once (default 3). */
  concurrency?: number;
  onProgress?: BlobProgressListener;
  signal?: AbortSignal;
  /**
   * Repositories on the destination registry to mount blobs from instead of
   * uploading them. When the provider is a content store, the repositories in
   * its `containerd.io/distribution.source.<registry>` labels are tried too.
   */
  mountFrom?: readonly string[];
}

export interface PushResult {
  /** Normalised destination reference. */
  name: string;
  /** Every descriptor the push walked, children before parents, root last. */
  pushed: Descriptor[];
}

/** A provider that can also say what it knows of a blob (a ContentStore does). */
interface ProviderWithInfo extends ContentProvider {
  info(digest: string): Promise<ContentInfo>;
}

function hasInfo(p: ContentProvider): p is ProviderWithInfo {
  return typeof (p as Partial<ProviderWithInfo>).info === 'function';
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/**
 * Pushes an image graph from `provider` to `reference`: layers and configs
 * first (skipping what the registry has, mounting where it can), then
 * manifests by digest, then the root under the reference's tag. Every child of
 * an index must be in the provider: a partial image cannot be pushed as it is.
 */
export async function pushImage(
  reference: string,
  descriptor: Descriptor,
  provider: ContentProvider,
  options: PushImageOptions = {},
): Promise<PushResult> {
  const ref = parseReference(reference);
  validateDigest(descriptor.digest, 'image target digest');
  if (ref.digest && ref.digest !== descriptor.digest) {
    throw new InvalidArgumentError(`cannot push ${descriptor.digest} to ${reference}, which pins another digest`);
  }
  if (!isManifestOrIndexType(descriptor.mediaType)) {
    throw new NotImplementedError(`cannot push an image whose target has media type "${descriptor.mediaType}"`);
  }
  const resolver = options.resolver ?? new RegistryResolver(options);
  const emit = options.onProgress ?? (() => undefined);
  const limiter = new Limiter(options.concurrency ?? 3);
  const pushed: Descriptor[] = [];
  try {
    const pusher = resolver.pusher(reference);
    const blobsDone = new Map<string, Promise<void>>();

    const read = async (desc: Descriptor): Promise<Buffer> => {
      try {
        return await readAll(await provider.read(desc.digest));
      } catch (err) {
        if (isNotFound(err)) {
          const platform = desc.platform ? ` (${desc.platform.os}/${desc.platform.architecture})` : '';
          throw new FailedPreconditionError(
            `cannot push ${reference}: ${desc.mediaType} ${desc.digest}${platform} is not in the local store; ` +
              'pull the image with all platforms, or push a single platform manifest',
            { cause: err },
          );
        }
        throw err;
      }
    };

    const mountSources = async (digest: string): Promise<string[]> => {
      const sources = [...(options.mountFrom ?? [])];
      if (hasInfo(provider)) {
        try {
          const info = await provider.info(digest);
          const label = info.labels[`${distributionSourceLabelPrefix}${ref.domain}`];
          if (label) sources.push(...label.split(',').filter(Boolean));
        } catch {
          // no labels: just upload
        }
      }
      return [...new Set(sources)].filter((s) => s !== ref.path);
    };

    const pushBlob = (desc: Descriptor): Promise<void> => {
      let running = blobsDone.get(desc.digest);
      if (!running) {
        running = limiter.run(async () => {
          let sent = 0;
          const progress = (status: 'waiting' | 'uploading' | 'done' | 'exists', offset: number) =>
            emit({ digest: desc.digest, mediaType: desc.mediaType, total: desc.size, offset, status });
          progress('uploading', 0);
          const status = await pusher.push(desc, () => provider.read(desc.digest), {
            mountFrom: await mountSources(desc.digest),
            signal: options.signal,
            onBytes: (n) => progress('uploading', (sent += n)),
          });
          progress(status === 'exists' ? 'exists' : 'done', desc.size);
        });
        blobsDone.set(desc.digest, running);
      }
      return running;
    };

    const pushDocument = async (desc: Descriptor, bytes: Buffer, tag?: string): Promise<void> => {
      emit({ digest: desc.digest, mediaType: desc.mediaType, total: desc.size, offset: 0, status: 'uploading' });
      const status = await pusher.push(desc, () => bytes, { tag, signal: options.signal });
      emit({
        digest: desc.digest,
        mediaType: desc.mediaType,
        total: desc.size,
        offset: desc.size,
        status: status === 'exists' ? 'exists' : 'done',
      });
      pushed.push(desc);
    };

    const walk = async (desc: Descriptor, tag?: string): Promise<void> => {
      const bytes = await read(desc);
      if (isIndexType(desc.mediaType)) {
        const children = parseIndex(bytes, desc).filter((c) => isManifestOrIndexType(c.mediaType));
        await Promise.all(children.map((c) => walk(c)));
      } else if (isManifestType(desc.mediaType)) {
        const children = parseManifest(bytes, desc);
        for (const c of children) {
          emit({ digest: c.digest, mediaType: c.mediaType, total: c.size, offset: 0, status: 'waiting' });
        }
        await Promise.all(
          children.map(async (c) => {
            await pushBlob(c);
            pushed.push(c);
          }),
        );
      } else {
        throw new NotImplementedError(`cannot push ${desc.digest} of unsupported media type "${desc.mediaType}"`);
      }
      // Parents after children: registries check that what a manifest references exists.
      await pushDocument(desc, bytes, tag);
    };

    await walk(descriptor, ref.tag);
    return { name: normalizeReference(reference), pushed };
  } finally {
    if (!options.resolver) await resolver.close();
  }
}
