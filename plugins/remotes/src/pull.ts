import { createHash } from 'crypto';
import type { Readable } from 'stream';
import {
  CanceledError,
  type ContentStore,
  type ContentWriter,
  DataLossError,
  type Descriptor,
  errorKind,
  InvalidArgumentError,
  isAlreadyExists,
  isFailedPrecondition,
  isNotFound,
  isUnavailable,
  NotFoundError,
  NotImplementedError,
  type Platform,
  UnavailableError,
} from '@berth/core';
import { Limiter } from './limiter';
import {
  childGcLabels,
  ingestRefFor,
  isIndexType,
  isManifestOrIndexType,
  isManifestType,
} from './media-types';
import { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformMatches } from './platforms';
import { parseReference } from './reference';
import { type Fetcher, RegistryResolver, type ResolverOptions } from './resolver';
import { isRetryable, sleep } from './transport';

/** Where one blob of a pull or push stands. `uploading` is for pushes. */
export type BlobStatus = 'waiting' | 'downloading' | 'uploading' | 'done' | 'exists';

/** One progress event; `offset` counts bytes held so far (a resumed blob starts above 0). */
export interface BlobProgress {
  digest: string;
  mediaType: string;
  total: number;
  offset: number;
  status: BlobStatus;
}

export type BlobProgressListener = (event: BlobProgress) => void;

export interface PullImageOptions extends ResolverOptions {
  /** Where content goes. The caller creates the image record from the result. */
  store: ContentStore;
  /** Reuse a resolver (its connections and tokens); otherwise one is made from these options and closed. */
  resolver?: RegistryResolver;
  /** `os/arch[/variant]` strings or Platforms; default the host's. One manifest per platform is fetched. */
  platforms?: readonly (string | Platform)[];
  /** Fetch every manifest of an index. */
  allPlatforms?: boolean;
  /** Blobs downloaded at once (default 3). */
  concurrency?: number;
  onProgress?: BlobProgressListener;
  signal?: AbortSignal;
  /**
   * Concurrent pulls with the same key download each blob once; the others
   * wait and then find it. Default: the `store` object. Give a string (e.g.
   * `content:<namespace>`) when each pull gets a fresh view of one store.
   */
  dedupeKey?: string | object;
}

export interface PullResult {
  /** Normalised reference, e.g. `docker.io/library/busybox:latest`: the image name to record. */
  name: string;
  /** The manifest or index the reference resolved to: the image record's target. */
  target: Descriptor;
  /** The platform manifests fetched (the target itself when it is a manifest). */
  manifests: Descriptor[];
}

/** The label containerd puts on pulled blobs so a push can mount them from their source repository. */
export const distributionSourceLabelPrefix = 'containerd.io/distribution.source.';

interface PullContext {
  store: ContentStore;
  dedupeKey: string | object;
  fetcher: Fetcher;
  limiter: Limiter;
  emit: BlobProgressListener;
  signal: AbortSignal;
  stopSiblings: AbortController;
  retries: number;
  retryDelayMs: number;
  progressTimeoutMs: number;
  sourceLabel: Record<string, string>;
  wanted: Platform[] | 'all';
  manifests: Descriptor[];
}

/**
 * One download per blob per dedupe key at a time, across concurrent pulls in
 * this process: a second pull of the same blob waits for the first and then
 * finds it.
 */
const inflightByObject = new WeakMap<object, Map<string, Promise<unknown>>>();
// Kept for the process's life: one small map per distinct key (namespaces are few).
const inflightByName = new Map<string, Map<string, Promise<unknown>>>();

function inflightFor(key: string | object): Map<string, Promise<unknown>> {
  const existing = typeof key === 'string' ? inflightByName.get(key) : inflightByObject.get(key);
  if (existing) return existing;
  const map = new Map<string, Promise<unknown>>();
  if (typeof key === 'string') inflightByName.set(key, map);
  else inflightByObject.set(key, map);
  return map;
}

/** Runs `task` unless another caller already runs it for this key and digest; then waits and tries again. */
async function once<T>(scope: string | object, digest: string, onWait: () => void, task: () => Promise<T>): Promise<T> {
  const map = inflightFor(scope);
  for (;;) {
    const running = map.get(digest);
    if (running) {
      onWait();
      await running.catch(() => undefined);
      continue;
    }
    const promise = task();
    map.set(digest, promise);
    try {
      return await promise;
    } finally {
      if (map.get(digest) === promise) map.delete(digest);
    }
  }
}

/**
 * Pulls an image into a content store, like containerd's pull without unpack:
 * resolves the reference, fetches the index and the manifests for the wanted
 * platforms, then configs and layers (bounded concurrency, retries, resumed
 * from partial ingests), verifying every digest and size on commit and
 * labelling parents with containerd's GC references to their children.
 */
export async function pullImage(reference: string, options: PullImageOptions): Promise<PullResult> {
  if (!options?.store) throw new InvalidArgumentError('pullImage needs a content store (options.store)');
  const wanted: Platform[] | 'all' = options.allPlatforms
    ? 'all'
    : (options.platforms?.length ? options.platforms : [hostPlatform()]).map((p) =>
        typeof p === 'string' ? parsePlatform(p) : normalizePlatform(p),
      );
  const ref = parseReference(reference);
  const resolver = options.resolver ?? new RegistryResolver(options);
  // The first failure stops the sibling transfers (their partial ingests stay for a resume).
  const stopSiblings = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stopSiblings.signal]) : stopSiblings.signal;
  try {
    const { name, descriptor } = await resolver.resolve(reference, { signal: options.signal });
    const ctx: PullContext = {
      store: options.store,
      dedupeKey: options.dedupeKey ?? options.store,
      fetcher: resolver.fetcher(name),
      limiter: new Limiter(options.concurrency ?? 3),
      emit: options.onProgress ?? (() => undefined),
      signal,
      stopSiblings,
      retries: options.retries ?? 3,
      retryDelayMs: options.retryDelayMs ?? 250,
      progressTimeoutMs: options.progressTimeoutMs ?? 30_000,
      sourceLabel: { [`${distributionSourceLabelPrefix}${ref.domain}`]: ref.path },
      wanted,
      manifests: [],
    };
    await pullDescriptor(ctx, descriptor, name);
    return { name, target: descriptor, manifests: ctx.manifests };
  } finally {
    if (!options.resolver) await resolver.close();
  }
}

async function pullDescriptor(ctx: PullContext, desc: Descriptor, name: string): Promise<void> {
  if (isIndexType(desc.mediaType)) {
    let children: Descriptor[] = [];
    await ensureDocument(ctx, desc, (bytes) => {
      children = selectManifests(parseIndex(bytes, desc), ctx.wanted, desc, name);
      return childGcLabels(children);
    });
    await settleAll(ctx, children.map((child) => pullDescriptor(ctx, child, name)));
    return;
  }
  if (isManifestType(desc.mediaType)) {
    let children: Descriptor[] = [];
    await ensureDocument(ctx, desc, (bytes) => {
      children = parseManifest(bytes, desc);
      return childGcLabels(children);
    });
    ctx.manifests.push(desc);
    await settleAll(ctx, children.map((child) => fetchBlob(ctx, child)));
    return;
  }
  throw new NotImplementedError(
    `${name}: cannot pull ${desc.digest} of unsupported media type "${desc.mediaType}"; ` +
      'berth reads OCI image indexes and manifests and Docker schema 2 manifest lists and manifests',
  );
}

/**
 * Waits for every task, so nothing of a pull still runs when it returns; the
 * first failure cancels the others and is the one reported.
 */
async function settleAll(ctx: PullContext, tasks: Promise<void>[]): Promise<void> {
  let first: { error: unknown } | undefined;
  await Promise.all(
    tasks.map((t) =>
      t.catch((error: unknown) => {
        if (!first) {
          first = { error };
          ctx.stopSiblings.abort();
        }
      }),
    ),
  );
  if (first) throw first.error;
}

// ---- documents (indexes and manifests) ----

interface DescriptorJson {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  platform?: unknown;
  annotations?: unknown;
  urls?: unknown;
}

function checkDescriptor(d: DescriptorJson, where: string): Descriptor {
  if (typeof d !== 'object' || d === null) throw new InvalidArgumentError(`${where}: descriptor is not an object`);
  if (typeof d.mediaType !== 'string' || !d.mediaType) throw new InvalidArgumentError(`${where}: descriptor has no mediaType`);
  if (typeof d.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(d.digest)) {
    throw new InvalidArgumentError(`${where}: descriptor digest "${String(d.digest)}" is not a sha256 digest`);
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new InvalidArgumentError(`${where}: descriptor ${d.digest} has an invalid size`);
  }
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.platform && typeof d.platform === 'object') out.platform = d.platform as Platform;
  if (d.annotations && typeof d.annotations === 'object') out.annotations = d.annotations as Record<string, string>;
  if (Array.isArray(d.urls)) out.urls = d.urls.filter((u): u is string => typeof u === 'string');
  return out;
}

function parseJson(bytes: Buffer, desc: Descriptor): Record<string, unknown> {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as unknown;
    if (typeof doc === 'object' && doc !== null && !Array.isArray(doc)) return doc as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new InvalidArgumentError(`${desc.mediaType} ${desc.digest} is not a JSON object`);
}

/** An index's child descriptors. */
export function parseIndex(bytes: Buffer, desc: Descriptor): Descriptor[] {
  const doc = parseJson(bytes, desc);
  if (!Array.isArray(doc.manifests)) throw new InvalidArgumentError(`index ${desc.digest} has no "manifests" list`);
  return doc.manifests.map((m: DescriptorJson, i: number) => checkDescriptor(m, `index ${desc.digest} manifests[${i}]`));
}

/** A manifest's children: config first, then layers in order (containerd's images.Children). */
export function parseManifest(bytes: Buffer, desc: Descriptor): Descriptor[] {
  const doc = parseJson(bytes, desc);
  if (doc.schemaVersion === 1) {
    throw new NotImplementedError(`manifest ${desc.digest} is Docker schema 1, which is deprecated and not supported`);
  }
  const config = checkDescriptor(doc.config as DescriptorJson, `manifest ${desc.digest} config`);
  if (!Array.isArray(doc.layers)) throw new InvalidArgumentError(`manifest ${desc.digest} has no "layers" list`);
  const layers = doc.layers.map((l: DescriptorJson, i: number) => checkDescriptor(l, `manifest ${desc.digest} layers[${i}]`));
  return [config, ...layers];
}

function samePlatform(a: Platform, b: Platform): boolean {
  const x = normalizePlatform(a);
  const y = normalizePlatform(b);
  return x.os === y.os && x.architecture === y.architecture && (x.variant ?? '') === (y.variant ?? '');
}

/**
 * The children of an index to fetch: every manifest for `all`, else for each
 * wanted platform the exact match or, failing that, the first compatible one.
 * Nested indexes without a platform are walked. Index order is kept.
 */
export function selectManifests(children: Descriptor[], wanted: Platform[] | 'all', index: Descriptor, name: string): Descriptor[] {
  const candidates = children.filter((c) => isManifestOrIndexType(c.mediaType));
  if (wanted === 'all') return candidates;
  const chosen = new Set<Descriptor>();
  for (const w of wanted) {
    const withPlatform = candidates.filter((c) => c.platform && isManifestType(c.mediaType));
    const match =
      withPlatform.find((c) => samePlatform(c.platform!, w)) ?? withPlatform.find((c) => platformMatches(w, c.platform!));
    if (match) chosen.add(match);
  }
  for (const c of candidates) if (!c.platform && isIndexType(c.mediaType)) chosen.add(c);
  if (chosen.size === 0) {
    // containerd keeps children that declare no platform.
    for (const c of candidates) if (!c.platform) chosen.add(c);
  }
  if (chosen.size === 0) {
    const available = candidates
      .filter((c) => c.platform)
      .map((c) => formatPlatform(normalizePlatform(c.platform!)))
      .join(', ');
    throw new NotFoundError(
      `${name}: no manifest for platform ${wanted.map(formatPlatform).join(', ')} in index ${index.digest}` +
        ` (it has: ${available || 'no platforms'})`,
    );
  }
  return candidates.filter((c) => chosen.has(c));
}

async function exists(store: ContentStore, digest: string): Promise<boolean> {
  try {
    await store.info(digest);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/**
 * Makes sure an index or manifest is in the store with labels for the
 * children `labelsFor` picks, and returns its bytes. Present documents are
 * read locally and get the new labels merged in (so pulling another platform
 * later keeps the first one referenced).
 */
async function ensureDocument(
  ctx: PullContext,
  desc: Descriptor,
  labelsFor: (bytes: Buffer) => Record<string, string>,
): Promise<Buffer> {
  const progress = (status: BlobStatus, offset: number) =>
    ctx.emit({ digest: desc.digest, mediaType: desc.mediaType, total: desc.size, offset, status });
  return once(
    ctx.dedupeKey,
    desc.digest,
    () => progress('waiting', 0),
    async () => {
      if (await exists(ctx.store, desc.digest)) {
        const bytes = await readStream(await ctx.store.read(desc.digest));
        await mergeGcLabels(ctx.store, desc.digest, labelsFor(bytes));
        progress('exists', desc.size);
        return bytes;
      }
      progress('waiting', 0);
      const bytes = await ctx.limiter.run(() => downloadDocument(ctx, desc, progress));
      const labels = { ...labelsFor(bytes), ...ctx.sourceLabel };
      const ref = ingestRefFor(desc.mediaType, desc.digest);
      const writer = await openWriter(ctx, ref, desc);
      if (!writer) {
        await mergeGcLabels(ctx.store, desc.digest, labels);
      } else {
        try {
          if (writer.offset > 0) await writer.truncate(0);
          await writer.write(bytes);
          await writer.commit(desc.size, desc.digest, { labels });
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
          await mergeGcLabels(ctx.store, desc.digest, labels);
        } finally {
          await writer.close().catch(() => undefined);
        }
      }
      progress('done', desc.size);
      return bytes;
    },
  );
}

/** Downloads a whole manifest or index (they are small), retrying, and verifies it. */
async function downloadDocument(
  ctx: PullContext,
  desc: Descriptor,
  progress: (status: BlobStatus, offset: number) => void,
): Promise<Buffer> {
  for (let attempt = 0; ; attempt++) {
    try {
      let received = 0;
      const { body } = await ctx.fetcher.fetch(desc, {
        signal: ctx.signal,
        onBytes: (n) => progress('downloading', (received += n)),
      });
      const bytes = await readStream(body);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      if (bytes.length !== desc.size || digest !== desc.digest) {
        throw new DataLossError(
          `${desc.mediaType} ${desc.digest}: the registry sent ${bytes.length} bytes with digest ${digest}, ` +
            `expected ${desc.size} bytes; nothing was stored`,
        );
      }
      return bytes;
    } catch (err) {
      if (ctx.signal?.aborted) throw new CanceledError(`pull canceled while fetching ${desc.digest}`);
      if (!isRetryable(err) || attempt >= ctx.retries) throw err;
      await sleep(ctx.retryDelayMs * 2 ** attempt, ctx.signal);
    }
  }
}

/**
 * Adds containerd GC references to a stored parent without dropping the ones
 * it has: a child already referenced keeps its key; a new child gets the next
 * free number for its prefix.
 */
async function mergeGcLabels(store: ContentStore, digest: string, labels: Record<string, string>): Promise<void> {
  const info = await store.info(digest);
  const current = info.labels ?? {};
  const referenced = new Set(Object.values(current));
  const updates: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    if (!key.startsWith('containerd.io/gc.ref.content')) {
      if (current[key] === undefined) updates[key] = value;
      continue;
    }
    if (referenced.has(value)) continue;
    let target = key;
    if (current[target] !== undefined && current[target] !== value) {
      const prefix = key.replace(/\d+$/, '');
      let i = 0;
      while (current[`${prefix}${i}`] !== undefined || updates[`${prefix}${i}`] !== undefined) i++;
      target = `${prefix}${i}`;
    }
    updates[target] = value;
    referenced.add(value);
  }
  const keys = Object.keys(updates);
  if (keys.length === 0) return;
  await store.update({ digest, labels: updates }, keys.map((k) => `labels.${k}`));
}

// ---- blobs (configs and layers) ----

/**
 * Opens the ingest writer for `ref`. While another writer holds it (another
 * process pulling the same blob), waits as long as that ingest keeps growing;
 * returns undefined if the blob shows up committed meanwhile.
 */
async function openWriter(ctx: PullContext, ref: string, desc: Descriptor): Promise<ContentWriter | undefined> {
  let lastOffset = -1;
  let lastChange = Date.now();
  for (;;) {
    try {
      return await ctx.store.writer({ ref, expected: { size: desc.size, digest: desc.digest } });
    } catch (err) {
      // Committed by whoever held the ingest while we waited: done, as containerd's fetch treats it.
      if (isAlreadyExists(err)) return undefined;
      if (!isUnavailable(err)) throw err;
    }
    if (await exists(ctx.store, desc.digest)) return undefined;
    const status = await ctx.store.status(ref).catch(() => undefined);
    if (status && status.offset !== lastOffset) {
      lastOffset = status.offset;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > ctx.progressTimeoutMs) {
      throw new UnavailableError(`ingest ${ref} is locked by another writer that has made no progress`);
    }
    await sleep(100, ctx.signal);
  }
}

function blobProgress(ctx: PullContext, desc: Descriptor) {
  return (status: BlobStatus, offset: number) =>
    ctx.emit({ digest: desc.digest, mediaType: desc.mediaType, total: desc.size, offset, status });
}

async function fetchBlob(ctx: PullContext, desc: Descriptor): Promise<void> {
  const progress = blobProgress(ctx, desc);
  await once(
    ctx.dedupeKey,
    desc.digest,
    () => progress('waiting', 0),
    async () => {
      if (await exists(ctx.store, desc.digest)) {
        progress('exists', desc.size);
        return;
      }
      progress('waiting', 0);
      await ctx.limiter.run(() => downloadBlob(ctx, desc, progress));
    },
  );
}

/** Marks errors that mean "the bytes were wrong", as opposed to "the transfer broke". */
class ContentMismatch extends DataLossError {}

async function downloadBlob(
  ctx: PullContext,
  desc: Descriptor,
  progress: (status: BlobStatus, offset: number) => void,
): Promise<void> {
  const ref = ingestRefFor(desc.mediaType, desc.digest);
  let restartedFromZero = false;
  for (let attempt = 0; ; attempt++) {
    const writer = await openWriter(ctx, ref, desc);
    if (!writer) {
      progress('exists', desc.size);
      return;
    }
    let resumedFrom = 0;
    try {
      if (writer.offset > desc.size) await writer.truncate(0);
      resumedFrom = writer.offset;
      if (writer.offset < desc.size) await transfer(ctx, desc, writer, progress);
      try {
        await writer.commit(desc.size, desc.digest, { labels: ctx.sourceLabel });
      } catch (err) {
        if (isAlreadyExists(err)) {
          progress('exists', desc.size);
          return;
        }
        if (isFailedPrecondition(err)) {
          await ctx.store.abort(ref).catch(() => undefined);
          throw new ContentMismatch(
            `blob ${desc.digest} (${desc.mediaType}) failed verification: the data received does not match its digest and size ` +
              `(${desc.size} bytes); nothing was committed`,
            { cause: err },
          );
        }
        throw err;
      }
      progress('done', desc.size);
      return;
    } catch (err) {
      // An empty ingest holds nothing worth resuming.
      if (writer.offset === 0) {
        await writer.close().catch(() => undefined);
        await ctx.store.abort(ref).catch(() => undefined);
      }
      if (ctx.signal?.aborted) throw new CanceledError(`pull canceled while fetching blob ${desc.digest}`);
      // Data appended to an old partial ingest may be what was wrong: start over once.
      if (err instanceof ContentMismatch && resumedFrom > 0 && !restartedFromZero) {
        restartedFromZero = true;
        continue;
      }
      if (err instanceof ContentMismatch || !isRetryable(err) || attempt >= ctx.retries) throw err;
      await sleep(ctx.retryDelayMs * 2 ** attempt, ctx.signal);
    } finally {
      await writer.close().catch(() => undefined);
    }
  }
}

/** Streams the rest of a blob into `writer`, resuming at its offset when the registry honours Range. */
async function transfer(
  ctx: PullContext,
  desc: Descriptor,
  writer: ContentWriter,
  progress: (status: BlobStatus, offset: number) => void,
): Promise<void> {
  const { body, offset } = await ctx.fetcher.fetch(desc, { offset: writer.offset, signal: ctx.signal });
  // The registry ignored the Range and sends everything: drop what we had.
  if (offset !== writer.offset) await writer.truncate(0);
  let held = writer.offset;
  progress('downloading', held);
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      if (held + buf.length > desc.size) {
        await ctx.store.abort(writer.ref).catch(() => undefined);
        throw new ContentMismatch(
          `blob ${desc.digest}: the registry sent more than the ${desc.size} bytes its descriptor declares; nothing was committed`,
        );
      }
      await writer.write(buf);
      held += buf.length;
      progress('downloading', held);
    }
  } catch (err) {
    body.destroy();
    if (errorKind(err) === 'unavailable' && !(err instanceof ContentMismatch)) {
      throw new UnavailableError(
        `blob ${desc.digest}: transfer broke after ${held} of ${desc.size} bytes (${(err as Error).message}); ` +
          'the partial download is kept and resumes on retry',
        { cause: err },
      );
    }
    throw err;
  }
  if (held < desc.size) {
    throw new UnavailableError(
      `blob ${desc.digest}: the registry ended the transfer after ${held} of ${desc.size} bytes (truncated); ` +
        'the partial download is kept and resumes on retry',
    );
  }
}

