import {
  MediaTypes,
  childGcLabelPrefix,
  childGcLabels,
  isConfigType,
  isIndexType,
  isLayerType,
  isManifestOrIndexType,
  isManifestType,
} from '@berth/core';

// The media types and GC labels themselves are shared through @berth/core.
export {
  MediaTypes,
  childGcLabelPrefix,
  childGcLabels,
  isConfigType,
  isIndexType,
  isLayerType,
  isManifestOrIndexType,
  isManifestType,
};

/** What a registry is asked for when resolving a tag: every manifest kind we can read. */
export const manifestAcceptTypes: readonly string[] = [
  MediaTypes.ociIndex,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifestList,
  MediaTypes.dockerManifest,
];

/** Strips parameters (`; charset=...`) registries sometimes add to Content-Type. */
export function baseMediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

/** The ingest ref prefix containerd uses per kind of blob (`layer-sha256:...`). */
export function ingestRefFor(mediaType: string, digest: string): string {
  let kind = 'unknown';
  if (isIndexType(mediaType)) kind = 'index';
  else if (isManifestType(mediaType)) kind = 'manifest';
  else if (isConfigType(mediaType)) kind = 'config';
  else if (isLayerType(mediaType)) kind = 'layer';
  return `${kind}-${digest}`;
}

