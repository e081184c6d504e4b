/**
 * @berth/differ: the walking differ. Applies OCI layers (tar, gzip, zstd) to
 * mounts, with the overlay fast path, and writes the layer between two trees.
 * Extraction never writes outside its target directory.
 */
export {
  applyLayer,
  applyLayerToOverlayUpper,
  type AppliedLayer,
  type ApplyLayerOptions,
  type OverlayUpperOptions,
  type SymlinkPolicy,
} from './apply';
export type { EntryType as LayerEntryType } from './tar-format';
export { layerDiff, type DiffCompression, type LayerDiff, type LayerDiffOptions, type LayerDiffResult } from './compare';
export { DEFAULT_MAX_LAYER_BYTES, type Compression } from './decompress';
export {
  Applier,
  Comparer,
  MediaTypes,
  UNCOMPRESSED_LABEL,
  type ApplyOptions,
  type CompareOptions,
} from './types';
export { readonlyMounts, WalkingDiffer, type WalkingDifferOptions } from './walking-differ';
export { walkingDifferPlugin, type WalkingDifferConfig } from './plugin';
