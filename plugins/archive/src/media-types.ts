import { MediaTypes } from '@berth/core';

// Media types are shared through @berth/core.
export { isIndexType, isManifestType, MediaTypes } from '@berth/core';

/**
 * The media type for a layer found in a docker-save archive, which names none:
 * decided from its first bytes, as containerd's importer does.
 */
export function dockerLayerMediaType(head: Uint8Array): string {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return MediaTypes.dockerLayerGzip;
  // Docker's schema 2 has no zstd type; the OCI one is what containerd and buildkit write.
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    return MediaTypes.ociLayerZstd;
  }
  return MediaTypes.dockerLayer;
}
