import { randomBytes } from 'crypto';
import type { Readable } from 'stream';
import {
  type Applier,
  BerthError,
  CanceledError,
  type ContentStore,
  DataLossError,
  errorKind,
  type Descriptor,
  FailedPreconditionError,
  InvalidArgumentError,
  isAlreadyExists,
  isCanceled,
  isLayerType,
  isNotFound,
  type Labels,
  type Logger,
  type Mount,
  type Snapshotter,
  silentLogger,
  type UnpackStatus,
} from '@berth/core';
import { parseManifest } from '@berth/remotes';
import type { IsolatedApply } from './apply-pool';
import { chainIDs } from './chain-id';
import { bindDirectory, fixUpDirectories, isRoot, type LayerStager, moveEntries, overlayUpperOf } from './staged-apply';

/** Label a layer's snapshot gets: the chain it will be committed as (containerd's `snapshot.ref`). */
export const SNAPSHOT_REF_LABEL = 'containerd.io/snapshot.ref';
/** Layer annotations with this prefix become labels of its snapshot, as containerd passes them on. */
const INHERITED_LABEL_PREFIX = 'containerd.io/snapshot/';
/** Label on a compressed layer blob naming its diffID, set once an apply has verified it. */
export const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';
/** Prefix of the label on an image config that keeps its unpacked chain from GC. */
export const GC_REF_SNAPSHOT_PREFIX = 'containerd.io/gc.ref.snapshot.';
/** Prefix of the keys of snapshots being extracted: `extract-<unique> <chainID>`, as containerd's. */
export const UNPACK_KEY_PREFIX = 'extract-';

/** Where an unpack puts layers: already scoped to one namespace (and the pull's lease). */
export interface UnpackTarget {
  /** The snapshotter, seen through the namespace (and lease). */
  snapshots: Snapshotter;
  /** Its name: the suffix of the config's `gc.ref.snapshot` label. */
  snapshotter: string;
  /** Where manifests, configs and layers are read, and their labels set. */
  content: ContentStore;
  applier: Applier;
  /**
   * What serialises unpacks of one chain in this process (e.g.
   * `<namespace>/<snapshotter>`): a second pull of the same image waits and
   * then finds the snapshots instead of extracting them again.
   */
  scope: string;
  /** Extract layers side by side in worker threads (overlayfs); without it, one after another in place. */
  stager?: LayerStager;
}

export interface UnpackOptions {
  /**
   * Resolves once a blob is in the content store. Unpacking during a pull
   * waits here for each layer's download; the default assumes it is there.
   */
  blobReady?: (desc: Descriptor) => Promise<void>;
  /** Each layer's unpack status as it changes. */
  onLayer?: (layer: Descriptor, status: UnpackStatus) => void;
  signal?: AbortSignal;
}

export interface UnpackedLayer {
  layer: Descriptor;
  diffID: string;
  chainID: string;
  /** False when its snapshot already existed. */
  unpacked: boolean;
}

export interface UnpackResult {
  config: Descriptor;
  /** The top snapshot: the image's rootfs parent. */
  chainID: string;
  layers: UnpackedLayer[];
}

interface Staged {
  /** Key of the parentless snapshot the layer went into. */
  key: string;
  /** Its directory, once the layer is extracted there. */
  dir?: string;
  applied?: IsolatedApply;
}

/** One layer of an unpack and where it stands. */
interface LayerJob {
  /** Its place in the chain (0: the base layer). */
  index: number;
  layer: Descriptor;
  diffID: string;
  chainID: string;
  parent: string;
  report: (status: UnpackStatus) => void;
  /** Its snapshot exists already. */
  skip?: boolean;
  release?: () => void;
  staged?: Promise<Staged | undefined>;
  stageKey?: string;
}

function wrongDiffID(layer: Descriptor, got: string, want: string): Error {
  return new DataLossError(`wrong diff id calculated on extraction of layer ${layer.digest}: got ${got}, the image config says ${want}`);
}

/** One key per in-process critical section; waiters run one after another. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async acquire(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}

const chainLocks = new KeyedLock();

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function readJson(content: ContentStore, desc: Descriptor): Promise<Record<string, unknown>> {
  const bytes = await readAll(await content.read(desc.digest));
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as unknown;
    if (typeof doc === 'object' && doc !== null && !Array.isArray(doc)) return doc as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new InvalidArgumentError(`${desc.mediaType} ${desc.digest} is not a JSON object`);
}

/** `config.rootfs.diff_ids` of an image config. */
export function configDiffIDs(config: Record<string, unknown>, desc: Descriptor): string[] {
  const rootfs = config.rootfs as { type?: unknown; diff_ids?: unknown } | undefined;
  if (!rootfs || !Array.isArray(rootfs.diff_ids) || !rootfs.diff_ids.every((d): d is string => typeof d === 'string')) {
    throw new InvalidArgumentError(`image config ${desc.digest} has no rootfs.diff_ids`);
  }
  return rootfs.diff_ids;
}

function inheritedLabels(layer: Descriptor): Labels {
  return Object.fromEntries(Object.entries(layer.annotations ?? {}).filter(([k]) => k.startsWith(INHERITED_LABEL_PREFIX)));
}

function uniquePart(): string {
  return `${process.hrtime.bigint() % 1_000_000_000n}-${randomBytes(3).toString('base64url')}`;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CanceledError('unpack canceled');
}

/** `promise`, or CanceledError as soon as `signal` aborts. */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  // Handled here even when we return early, so a failed pull cannot become an
  // unhandled rejection that takes the daemon down.
  promise.catch(() => undefined);
  throwIfAborted(signal);
  if (!signal) return promise;
  let onAbort!: () => void;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new CanceledError('unpack canceled'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Unpacks image layers into snapshots, as containerd's unpacker: for layer i
 * with chain ID Ci, if a snapshot Ci exists it is skipped; otherwise
 * `extract-<unique> Ci` is prepared on C(i-1), the layer applied to its
 * mounts, the diffID the apply computed checked against the config's, and
 * the snapshot committed as Ci. A failure removes the extraction snapshot,
 * so only complete layers are ever visible under a chain ID. Finally the
 * config gets `containerd.io/gc.ref.snapshot.<snapshotter>=<top chain ID>`.
 *
 * Layers are applied in chain order, each as soon as its blob is there
 * (`blobReady`), so extraction overlaps the download of later layers. With a
 * `stager` (overlayfs), each layer but the base one is also extracted as soon
 * as its blob is there, in a worker thread of its own, into a parentless
 * snapshot, and only moved into its real snapshot in chain order
 * (staged-apply.ts); the base layer, and layers that cannot be staged, are
 * applied in place, as above, but in a worker too. The worker queue takes
 * layers in chain order. Either way the committed snapshots are the same.
 */
export class Unpacker {
  private readonly logger: Logger;

  constructor(
    private readonly target: UnpackTarget,
    logger?: Logger,
  ) {
    this.logger = logger ?? silentLogger();
  }

  /** Unpacks the image of a platform manifest (which must be in the content store). */
  async unpack(manifest: Descriptor, options: UnpackOptions = {}): Promise<UnpackResult> {
    const [config, ...layers] = parseManifest(await readAll(await this.target.content.read(manifest.digest)), manifest);
    const notLayer = layers.find((l) => !isLayerType(l.mediaType));
    if (notLayer) {
      throw new InvalidArgumentError(`manifest ${manifest.digest}: cannot unpack ${notLayer.digest} of media type "${notLayer.mediaType}"`);
    }
    return this.unpackLayers(config, layers, options);
  }

  /** Unpacks `layers` described by `config` (its diff_ids, one per layer). */
  async unpackLayers(config: Descriptor, layers: Descriptor[], options: UnpackOptions = {}): Promise<UnpackResult> {
    const ready = options.blobReady ?? (async () => undefined);
    await untilAborted(ready(config), options.signal);
    const diffIDs = configDiffIDs(await readJson(this.target.content, config), config);
    if (diffIDs.length !== layers.length) {
      throw new InvalidArgumentError(
        `image config ${config.digest}: number of layers and diffIDs don't match: ${layers.length} != ${diffIDs.length}`,
      );
    }
    const chain = chainIDs(diffIDs);
    // A failure anywhere stops the stagings still running.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const jobs: LayerJob[] = layers.map((layer, i) => ({
      index: i,
      layer,
      diffID: diffIDs[i],
      chainID: chain[i],
      parent: i === 0 ? '' : chain[i - 1],
      report: (status: UnpackStatus) => options.onLayer?.(layer, status),
    }));
    const result: UnpackedLayer[] = [];
    // Threads load while the first blobs download.
    this.target.stager?.pool.warm(layers.length);
    try {
      // Locks in chain order (as every unpack takes them, so two never wait on each other),
      // each held until its layer is committed; layers staged as soon as they are locked.
      for (const job of jobs) {
        job.release = await chainLocks.acquire(`${this.target.scope}\0${job.chainID}`);
        throwIfAborted(signal);
        if (await this.exists(job.chainID)) {
          job.skip = true;
          job.report('exists');
          job.release();
          continue;
        }
        job.report('waiting');
        if (this.target.stager) job.staged = this.stage(job, ready, signal);
      }
      for (const job of jobs) {
        const unpacked = job.skip ? false : await this.unpackLayer(job, ready, signal);
        job.release?.();
        result.push({ layer: job.layer, diffID: job.diffID, chainID: job.chainID, unpacked });
      }
    } catch (err) {
      stop.abort();
      throw err;
    } finally {
      for (const job of jobs) job.release?.();
      await Promise.all(jobs.map((job) => this.discardStage(job)));
    }
    const top = chain[chain.length - 1] ?? '';
    if (top) {
      const key = `${GC_REF_SNAPSHOT_PREFIX}${this.target.snapshotter}`;
      await this.target.content.update({ digest: config.digest, labels: { [key]: top } }, [`labels.${key}`]);
    }
    this.logger.debug({ config: config.digest, chainID: top }, 'image unpacked');
    return { config, chainID: top, layers: result };
  }

  /**
   * Extracts a layer in a worker into a parentless snapshot of its own, once
   * its blob is there (staged-apply.ts). Resolves to undefined when it could
   * not: the layer is then extracted in place.
   */
  private async stage(job: LayerJob, ready: (desc: Descriptor) => Promise<void>, signal: AbortSignal): Promise<Staged | undefined> {
    const { snapshots, content, stager } = this.target;
    // A base layer goes in place: its snapshot is a plain directory, where whiteouts are not overlayfs's.
    if (!stager || job.parent === '' || !isRoot() || job.layer.mediaType.includes('+encrypted')) return undefined;
    await untilAborted(ready(job.layer), signal).catch(() => undefined);
    if (signal.aborted) return undefined;
    const key = `${UNPACK_KEY_PREFIX}${uniquePart()} ${job.chainID}`;
    let mounts: Mount[];
    try {
      mounts = await snapshots.prepare(key, '');
    } catch (err) {
      this.logger.debug({ err, layer: job.layer.digest }, 'could not stage a layer; extracting it in place');
      return undefined;
    }
    const staged: Staged = { key };
    job.stageKey = key;
    const dir = bindDirectory(mounts);
    if (dir === undefined) return staged;
    try {
      job.report('unpacking');
      const started = Date.now();
      staged.applied = await stager.pool.extract(await content.read(job.layer.digest), dir, {
        maxBytes: stager.maxBytes,
        symlinks: stager.symlinks,
        signal,
        order: job.index,
        size: job.layer.size,
      });
      staged.dir = dir;
      this.logger.debug({ layer: job.layer.digest, ms: Date.now() - started }, 'layer staged');
    } catch (err) {
      if (!signal.aborted) this.logger.debug({ err, layer: job.layer.digest }, 'staging a layer failed; extracting it in place');
    }
    return staged;
  }

  /** Removes a layer's staging snapshot, if it has one (after its rebase, or on failure). */
  private async discardStage(job: LayerJob): Promise<void> {
    await job.staged?.catch(() => undefined);
    const key = job.stageKey;
    if (!key) return;
    job.stageKey = undefined;
    await this.target.snapshots.remove(key).catch((err: unknown) => {
      if (!isNotFound(err)) this.logger.warn({ err, key }, 'failed to remove a staging snapshot');
    });
  }

  /** One layer, in chain order; true if it was extracted, false if its snapshot appeared meanwhile. */
  private async unpackLayer(job: LayerJob, ready: (desc: Descriptor) => Promise<void>, signal: AbortSignal): Promise<boolean> {
    const { snapshots, content, applier } = this.target;
    const { layer, diffID, chainID, parent, report } = job;
    const labels = { ...inheritedLabels(layer), [SNAPSHOT_REF_LABEL]: chainID };
    let key = '';
    let mounts: Mount[] | undefined;
    for (let attempt = 0; attempt < 3 && !mounts; attempt++) {
      key = `${UNPACK_KEY_PREFIX}${uniquePart()} ${chainID}`;
      try {
        mounts = await snapshots.prepare(key, parent, { labels });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        // The target chain appeared (another pull, or a snapshotter that has it already).
        if (await this.exists(chainID)) {
          report('exists');
          return false;
        }
      }
    }
    if (!mounts) throw new FailedPreconditionError(`unable to prepare an extraction snapshot for ${chainID}`);

    let committed = false;
    try {
      const staged = await job.staged;
      let applied: string | undefined;
      if (staged?.applied && staged.dir !== undefined) {
        if (staged.applied.diffID !== diffID) throw wrongDiffID(layer, staged.applied.diffID, diffID);
        const place = overlayUpperOf(mounts);
        const scan = staged.applied.scan;
        if (scan?.rebasable && place) {
          moveEntries(staged.dir, place.upper);
          fixUpDirectories(place.upper, place.lowers, scan);
          applied = staged.applied.diffID;
        } else {
          this.logger.debug({ layer: layer.digest, reason: scan?.reason }, 'extracting a layer in place');
        }
      }
      if (applied === undefined) {
        await untilAborted(ready(layer), signal);
        report('unpacking');
        try {
          const started = Date.now();
          applied = await this.applyInWorker(job, mounts, signal);
          if (applied !== undefined) this.logger.debug({ layer: layer.digest, ms: Date.now() - started }, 'layer extracted in place by a worker');
          applied ??= (await applier.apply(layer, mounts, { provider: content, signal })).digest;
        } catch (err) {
          throw wrap(err, `failed to extract layer ${diffID}`);
        }
        if (applied !== diffID) throw wrongDiffID(layer, applied, diffID);
      }
      try {
        const started = Date.now();
        await snapshots.commit(chainID, key, { labels });
        committed = true;
        this.logger.debug({ layer: layer.digest, chainID, commitMs: Date.now() - started }, 'layer committed');
      } catch (err) {
        // Committed by someone else meanwhile: theirs is as good as ours, if it is there.
        if (!isAlreadyExists(err) || !(await this.exists(chainID))) throw err;
      }
    } finally {
      if (!committed) {
        await snapshots.remove(key).catch((err: unknown) => {
          if (!isNotFound(err)) this.logger.warn({ err, key }, 'failed to remove the extraction snapshot');
        });
      }
      await this.discardStage(job);
    }
    // Recorded only now that an apply has verified it, as containerd does.
    await content.update({ digest: layer.digest, labels: { [UNCOMPRESSED_LABEL]: diffID } }, [`labels.${UNCOMPRESSED_LABEL}`]);
    report('unpacked');
    return true;
  }

  /**
   * Applies a layer in place, as the walking differ would, but in a worker
   * thread: into a parentless snapshot's directory (the base layer), or into
   * an overlay's upper dir on its lowers (a layer that could not be staged).
   * The main thread stays free for the download and the commits. Undefined
   * when the mounts are something else: then the applier does it.
   */
  private async applyInWorker(job: LayerJob, mounts: Mount[], signal: AbortSignal): Promise<string | undefined> {
    const { stager, content } = this.target;
    if (!stager || !isRoot() || job.layer.mediaType.includes('+encrypted')) return undefined;
    const dir = bindDirectory(mounts);
    const upper = dir === undefined ? overlayUpperOf(mounts) : undefined;
    const into = dir ?? upper?.upper;
    if (into === undefined) return undefined;
    const applied = await stager.pool.extract(await content.read(job.layer.digest), into, {
      mode: dir !== undefined ? 'naive' : 'upper',
      lowerDirs: upper?.lowers ?? [],
      scan: false,
      maxBytes: stager.maxBytes,
      symlinks: stager.symlinks,
      signal,
      order: job.index,
      size: job.layer.size,
    });
    return applied.diffID;
  }

  private async exists(chainID: string): Promise<boolean> {
    try {
      await this.target.snapshots.stat(chainID);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}

/** Prefixes the message, keeping the error's kind (as the cause). */
function wrap(err: unknown, context: string): Error {
  if (isCanceled(err)) return err as Error;
  return new BerthError(errorKind(err), `${context}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
