import { randomUUID } from 'crypto';
import * as fs from 'fs/promises';
import { tmpdir } from 'os';
import { join } from 'path';
import {
  type ContentIngester,
  type Descriptor,
  InvalidArgumentError,
  isAlreadyExists,
  type Mount,
  NotImplementedError,
} from '@berth/core';
import { type AppliedLayer, applyLayer, applyLayerToOverlayUpper, type SymlinkPolicy } from './apply';
import { type DiffCompression, layerDiff } from './compare';
import { DEFAULT_MAX_LAYER_BYTES } from './decompress';
import { mountAll, unmountAll } from './host-ops';
import {
  type Applier,
  type ApplyOptions,
  type Comparer,
  type CompareOptions,
  MediaTypes,
  UNCOMPRESSED_LABEL,
} from './types';

export interface WalkingDifferOptions {
  /** Where temporary mount points are made. Default: the OS temp dir. */
  tempDir?: string;
  /** Default ceiling on a layer's uncompressed size; ApplyOptions.maxBytes overrides it. */
  maxBytes?: number;
  /** Default symlink policy; ApplyOptions.symlinks overrides it. */
  symlinks?: SymlinkPolicy;
  /**
   * Write overlay layers straight into the upper dir (default). When false,
   * they are mounted and applied like any other mount.
   */
  overlayFastPath?: boolean;
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

function optionValue(mount: Mount, key: string): string | undefined {
  const prefix = `${key}=`;
  return mount.options.find((option) => option.startsWith(prefix))?.slice(prefix.length);
}

function isBind(mount: Mount): boolean {
  return mount.type === 'bind' || mount.options.includes('bind') || mount.options.includes('rbind');
}

/** The one directory that holds the tree, when no mount is needed to see it. */
function directTree(mounts: Mount[]): string | undefined {
  if (mounts.length !== 1) return undefined;
  const [mount] = mounts;
  return isBind(mount) && !mount.target ? mount.source : undefined;
}

/**
 * Read-only versions of mounts, as containerd's WithReadonlyTempMount: an
 * overlay's upperdir becomes its top lowerdir (so the mount needs no workdir
 * and cannot race a writer on it), other mounts get `ro`.
 */
export function readonlyMounts(mounts: Mount[]): Mount[] {
  return mounts.map((mount) => {
    if (mount.type === 'overlay') {
      const upper = optionValue(mount, 'upperdir');
      const lowers = optionValue(mount, 'lowerdir')?.split(':') ?? [];
      const layers = [...(upper ? [upper] : []), ...lowers];
      const rest = mount.options.filter(
        (option) => !/^(upperdir|workdir|lowerdir)=/.test(option) && option !== 'rw' && option !== 'ro',
      );
      // overlayfs wants two layers without an upper; one is just a read-only bind.
      if (layers.length === 1) return { type: 'bind', source: layers[0], target: mount.target, options: ['rbind', 'ro'] };
      return { ...mount, options: [...rest, `lowerdir=${layers.join(':')}`, 'ro'] };
    }
    return { ...mount, options: [...mount.options.filter((option) => option !== 'rw' && option !== 'ro'), 'ro'] };
  });
}

function compressionOf(mediaType: string): DiffCompression {
  switch (mediaType) {
    case MediaTypes.layer:
      return 'none';
    case MediaTypes.layerGzip:
    case MediaTypes.dockerLayerGzip:
      return 'gzip';
    default:
      throw new NotImplementedError(`cannot write a layer of media type ${JSON.stringify(mediaType)}: only tar and tar+gzip`);
  }
}

/**
 * containerd's walking differ (`io.containerd.differ.v1.walking`): applies
 * layers by extracting them (straight into an overlay's upper dir when it
 * can), and computes layers by walking two trees side by side.
 */
export class WalkingDiffer implements Applier, Comparer {
  private readonly tempDir: string;
  private readonly maxBytes: number;
  private readonly symlinks: SymlinkPolicy;
  private readonly overlayFastPath: boolean;

  constructor(options: WalkingDifferOptions = {}) {
    this.tempDir = options.tempDir ?? tmpdir();
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_LAYER_BYTES;
    this.symlinks = options.symlinks ?? 'refuse-outside-root';
    this.overlayFastPath = options.overlayFastPath ?? true;
  }

  /** What an apply uses when its options do not say: for appliers that extract on its behalf (workers). */
  get applyDefaults(): { maxBytes: number; symlinks: SymlinkPolicy } {
    return { maxBytes: this.maxBytes, symlinks: this.symlinks };
  }

  async apply(desc: Descriptor, mounts: Mount[], options: ApplyOptions): Promise<Descriptor> {
    if (desc.mediaType.includes('+encrypted')) {
      throw new NotImplementedError(`cannot apply an encrypted layer (${desc.mediaType})`);
    }
    if (mounts.length === 0) throw new InvalidArgumentError('apply needs at least one mount');
    const layerOptions = {
      maxBytes: options.maxBytes ?? this.maxBytes,
      symlinks: options.symlinks ?? this.symlinks,
      signal: options.signal,
    };
    const open = () => options.provider.read(desc.digest);
    let applied: AppliedLayer;
    const [first] = mounts;
    const upperDir = mounts.length === 1 && first.type === 'overlay' ? optionValue(first, 'upperdir') : undefined;
    // The fast path makes 0/0 character devices, which needs real root
    // (containerd skips it in a user namespace too).
    if (upperDir !== undefined && this.overlayFastPath && isRoot() && !first.target) {
      const lowerDirs = optionValue(first, 'lowerdir')?.split(':').filter((dir) => dir !== '') ?? [];
      const opaqueXattr = first.options.includes('userxattr') ? 'user.overlay.opaque' : 'trusted.overlay.opaque';
      applied = await applyLayerToOverlayUpper(await open(), upperDir, lowerDirs, { ...layerOptions, opaqueXattr });
    } else {
      const direct = directTree(mounts);
      if (direct !== undefined) {
        applied = await applyLayer(await open(), direct, layerOptions);
      } else {
        applied = await this.withMounted(mounts, async (dir) => applyLayer(await open(), dir, layerOptions));
      }
    }
    return { mediaType: MediaTypes.layer, digest: applied.diffID, size: applied.size };
  }

  async compare(lower: Mount[], upper: Mount[], options: CompareOptions): Promise<Descriptor> {
    const mediaType = options.mediaType ?? MediaTypes.layerGzip;
    const compression = compressionOf(mediaType);
    return this.withTree(lower, (lowerDir) =>
      this.withTree(upper, async (upperDir) => {
        const diff = layerDiff(lowerDir, upperDir, { compression });
        const ref = options.ref ?? `compare-${randomUUID()}`;
        const stored = await writeBlob(options.ingester, ref, diff.chunks, () => {
          const result = diff.result();
          return { digest: result.digest, size: result.size, labels: { ...options.labels, [UNCOMPRESSED_LABEL]: result.diffID } };
        });
        return { mediaType, digest: stored.digest, size: stored.size };
      }),
    );
  }

  /** Runs `fn` on a read-only view of `mounts` (an empty dir for none). */
  private async withTree<T>(mounts: Mount[], fn: (dir: string) => Promise<T>): Promise<T> {
    if (mounts.length === 0) {
      await fs.mkdir(this.tempDir, { recursive: true });
      const empty = await fs.mkdtemp(join(this.tempDir, 'berth-empty-'));
      try {
        return await fn(empty);
      } finally {
        await fs.rm(empty, { recursive: true, force: true });
      }
    }
    const direct = directTree(mounts);
    if (direct !== undefined) return fn(direct);
    return this.withMounted(readonlyMounts(mounts), fn);
  }

  /** Mounts on a fresh temp dir, runs `fn`, and unmounts whatever happened. */
  private async withMounted<T>(mounts: Mount[], fn: (dir: string) => Promise<T>): Promise<T> {
    await fs.mkdir(this.tempDir, { recursive: true });
    const dir = await fs.mkdtemp(join(this.tempDir, 'berth-mount-'));
    try {
      await mountAll(mounts, dir);
      try {
        return await fn(dir);
      } finally {
        await unmountAll(dir, { detach: false });
      }
    } finally {
      // rmdir, not rm -r: if the unmount failed this must not delete the mounted tree.
      await fs.rmdir(dir).catch(() => undefined);
    }
  }
}

/**
 * Writes chunks to a new ingest and commits them with the size, digest and
 * labels known at the end. A blob already present counts as written.
 */
async function writeBlob(
  ingester: ContentIngester,
  ref: string,
  chunks: AsyncIterable<Buffer>,
  identity: () => { digest: string; size: number; labels: Record<string, string> },
): Promise<{ digest: string; size: number }> {
  const writer = await ingester.writer({ ref });
  let committed = false;
  try {
    // A resumed ingest would prepend stale bytes; start from empty.
    if (writer.offset > 0) await writer.truncate(0);
    for await (const chunk of chunks) await writer.write(chunk);
    const { digest, size, labels } = identity();
    try {
      await writer.commit(size, digest, { labels });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      await writer.close().catch(() => undefined);
    }
    committed = true;
    return { digest, size };
  } finally {
    if (!committed) await writer.close().catch(() => undefined);
  }
}
