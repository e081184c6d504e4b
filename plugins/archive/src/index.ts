/**
 * @berth/archive: image archives, like `ctr images import` / `ctr images export`.
 * Reads OCI image layout tars and `docker save` tars into a content store, and
 * writes OCI image layout tars from one.
 */
export { importArchive, type ImportArchiveOptions, type ImportedImage } from './import';
export { exportArchive, type ExportArchiveOptions, type ExportImage } from './export';
export { DEFAULT_JSON_SIZE_LIMIT, OCI_LAYOUT_VERSION } from './limits';
export type { PlatformSpec } from './platforms';
