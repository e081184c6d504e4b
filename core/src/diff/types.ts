import type { ContentIngester, ContentProvider, Descriptor } from '../content/types';
import type { Labels } from '../metadata/types';
import type { Mount } from '../snapshots/types';

/**
 * How an applier follows symlinked parent directories of entries:
 * `refuse-outside-root` fails a layer whose path leaves the root through a
 * symlink; `resolve-in-root` (containerd's) resolves it as if the root were `/`.
 */
export type SymlinkPolicy = 'refuse-outside-root' | 'resolve-in-root';

export interface ApplyOptions {
  /** Where the layer blob is read from (a namespace's content store). */
  provider: ContentProvider;
  /** Ceiling on the uncompressed size (decompression bombs). */
  maxBytes?: number;
  /** How symlinked parent directories are followed. */
  symlinks?: SymlinkPolicy;
  signal?: AbortSignal;
}

/**
 * containerd's diff.Applier: applies a layer onto mounts.
 *
 *   const mounts = await snapshotter.prepare(key, parent);
 *   const diff = await applier.apply(layerDesc, mounts, { provider: content });
 *   // diff.digest is the layer's diffID, to check against the image config
 *   await snapshotter.commit(chainID, key);
 */
export interface Applier {
  /**
   * Reads `desc` (tar, tar+gzip or tar+zstd, by magic bytes) and extracts it onto `mounts`.
   * Returns the descriptor of the uncompressed layer: its digest is the
   * diffID, computed while extracting.
   */
  apply(desc: Descriptor, mounts: Mount[], options: ApplyOptions): Promise<Descriptor>;
}
export const Applier = Symbol.for('io.berth.Applier');

export interface CompareOptions {
  /** Where the diff blob is written and committed (a namespace's content store, with its lease). */
  ingester: ContentIngester;
  /** `…tar` or `…tar+gzip` (default, as containerd's). */
  mediaType?: string;
  /** Ingest ref; default a unique one. */
  ref?: string;
  /** Labels for the committed blob, besides `containerd.io/uncompressed`. */
  labels?: Labels;
}

/** containerd's diff.Comparer: the layer between two mounted trees, stored as a blob. */
export interface Comparer {
  /**
   * Walks `lower` and `upper` (mounted read-only when they must be mounted at
   * all) and writes the OCI layer that turns one into the other. `lower` may
   * be empty (the first layer). Returns the stored blob's descriptor; its
   * diffID is in the blob's `containerd.io/uncompressed` label.
   */
  compare(lower: Mount[], upper: Mount[], options: CompareOptions): Promise<Descriptor>;
}
export const Comparer = Symbol.for('io.berth.Comparer');
