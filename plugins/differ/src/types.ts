export const MediaTypes = {
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Label on a compressed layer blob naming its diffID, as containerd sets it. */
export const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';

/** The Applier/Comparer contracts live in @berth/core; re-exported so existing imports keep working. */
export { Applier, Comparer, type ApplyOptions, type CompareOptions } from '@berth/core';
