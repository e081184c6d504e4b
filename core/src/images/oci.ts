/**
 * OCI and Docker image media types, and the GC labels a parent blob carries
 * for its children: shared by pull, push, import, export and unpack.
 */
export const MediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  containerdCheckpoint: 'application/vnd.containerd.container.criu.checkpoint.criu.tar',
  containerdCheckpointConfig: 'application/vnd.containerd.container.checkpoint.config.v1+proto',
} as const;

export function isIndexType(mediaType: string): boolean {
  return mediaType === MediaTypes.ociIndex || mediaType === MediaTypes.dockerManifestList;
}

export function isManifestType(mediaType: string): boolean {
  return mediaType === MediaTypes.ociManifest || mediaType === MediaTypes.dockerManifest;
}

/** Manifests and indexes: the documents a registry serves from `/manifests/`. */
export function isManifestOrIndexType(mediaType: string): boolean {
  return isIndexType(mediaType) || isManifestType(mediaType);
}

export function isConfigType(mediaType: string): boolean {
  return (
    mediaType === MediaTypes.ociConfig ||
    mediaType === MediaTypes.dockerConfig ||
    mediaType === MediaTypes.containerdCheckpoint ||
    mediaType === MediaTypes.containerdCheckpointConfig
  );
}

export function isLayerType(mediaType: string): boolean {
  return mediaType.startsWith('application/vnd.oci.image.layer.') || mediaType.startsWith('application/vnd.docker.image.rootfs.');
}

/**
 * The GC label key prefix a parent gets for a child, as containerd's
 * images.ChildGCLabels: `.config` once; `.m.`, `.l.` and bare `.` numbered per prefix.
 */
export function childGcLabelPrefix(mediaType: string): string {
  if (isConfigType(mediaType)) return 'containerd.io/gc.ref.content.config';
  if (isManifestType(mediaType)) return 'containerd.io/gc.ref.content.m.';
  if (isLayerType(mediaType)) return 'containerd.io/gc.ref.content.l.';
  return 'containerd.io/gc.ref.content.';
}

/** The labels a parent blob carries for `children`, numbered as containerd numbers them. */
export function childGcLabels(children: readonly { mediaType: string; digest: string }[]): Record<string, string> {
  const labels: Record<string, string> = {};
  const counters = new Map<string, number>();
  for (const child of children) {
    const prefix = childGcLabelPrefix(child.mediaType);
    const idx = counters.get(prefix) ?? 0;
    counters.set(prefix, idx + 1);
    const key = idx > 0 || prefix.endsWith('.') ? `${prefix}${idx}` : prefix;
    labels[key] = child.digest;
  }
  return labels;
}
