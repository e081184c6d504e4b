import type { Readable, Writable } from 'stream';
import type { Image } from '../images/types';
import type { Labels } from '../metadata/types';

/** How to reach registries for one transfer. */
export interface RegistryOptions {
  /** Speak plain HTTP instead of HTTPS. */
  plainHttp?: boolean;
  /** Directory of containerd-style `certs.d/<host>/hosts.toml` files. */
  hostsDir?: string;
  /** `user:password`; never logged or echoed in errors. */
  credentials?: string;
  /** Abort a transfer that makes no progress for this long. */
  progressTimeoutMs?: number;
  skipVerify?: boolean;
}

/**
 * Where a layer of a pull stands in unpacking: `waiting` (for its blob or
 * its parent), `unpacking`, `unpacked`, or `exists` (its snapshot was there).
 */
export type UnpackStatus = 'waiting' | 'unpacking' | 'unpacked' | 'exists';

/** Progress of one blob in a pull or push. */
export interface BlobProgress {
  digest: string;
  mediaType: string;
  offset: number;
  total: number;
  status: 'waiting' | 'downloading' | 'uploading' | 'done' | 'exists';
  /** Layers of an unpacking pull: how far their snapshot is. */
  unpack?: UnpackStatus;
}

export type ProgressListener = (blobs: BlobProgress[]) => void;

export interface PullOptions {
  /** `os/arch[/variant]`; default the host's. */
  platforms?: string[];
  allPlatforms?: boolean;
  registry?: RegistryOptions;
  /** Name to store the image under; default the reference. */
  name?: string;
  labels?: Labels;
  /**
   * Unpack the layers into snapshots, as `ctr images pull` does (`false`: fetch
   * only, as `ctr content fetch`). Default: unpack when the daemon has a
   * snapshot service and a differ.
   */
  unpack?: boolean;
  /** Snapshotter to unpack into; default the snapshot service's default (`overlayfs`). */
  snapshotter?: string;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface PushOptions {
  /** Destination reference; default the image name. */
  ref?: string;
  platforms?: string[];
  allPlatforms?: boolean;
  registry?: RegistryOptions;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface ImportOptions {
  /** Prefix for names without a registry (ctr's --base-name). */
  baseName?: string;
  /** Name for the archive's whole index (ctr's --index-name). */
  indexName?: string;
  /** Unpack the host platform's layers into snapshots, as `ctr images import` does (default: when the berth can). */
  unpack?: boolean;
  /** Snapshotter to unpack into; default the snapshot service's default. */
  snapshotter?: string;
}

export interface ExportOptions {
  platforms?: string[];
  allPlatforms?: boolean;
}

/**
 * Moves images between registries or archives and the local stores: the
 * daemon-side work behind `berth images pull|push|import|export`.
 */
export interface TransferService {
  pull(namespace: string, ref: string, options?: PullOptions): Promise<Image>;
  push(namespace: string, name: string, options?: PushOptions): Promise<void>;
  import(namespace: string, archive: Readable, options?: ImportOptions): Promise<Image[]>;
  export(namespace: string, names: string[], out: Writable, options?: ExportOptions): Promise<void>;
}
export const TransferService = Symbol.for('io.berth.TransferService');
