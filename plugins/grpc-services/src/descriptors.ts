import type { Descriptor } from '@berth/core';
import type { containerdTypes } from '@berth/proto';

/** containerd.types.Descriptor → berth's Descriptor (proto3 leaves absent fields empty). */
export function fromProtoDescriptor(d: containerdTypes.Descriptor | undefined): Descriptor | undefined {
  if (!d) return undefined;
  const annotations = d.annotations && Object.keys(d.annotations).length ? { ...d.annotations } : undefined;
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(annotations ? { annotations } : {}) };
}

export function toProtoDescriptor(d: Descriptor): containerdTypes.Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: d.annotations ?? {} };
}
