import { InvalidArgumentError, type Mount, type SnapshotInfo, type SnapshotKind } from '@berth/core';
import type { containerdTypes } from '@berth/proto';
import { snapshotsV1 } from '@berth/proto';

const kindToProto: Record<SnapshotKind, snapshotsV1.Kind> = {
  view: snapshotsV1.Kind.VIEW,
  active: snapshotsV1.Kind.ACTIVE,
  committed: snapshotsV1.Kind.COMMITTED,
};

export function toProtoKind(kind: SnapshotKind): snapshotsV1.Kind {
  return kindToProto[kind];
}

/** InvalidArgument for UNKNOWN or a value this build does not know: a snapshot always has a kind. */
export function fromProtoKind(kind: snapshotsV1.Kind): SnapshotKind {
  switch (kind) {
    case snapshotsV1.Kind.VIEW:
      return 'view';
    case snapshotsV1.Kind.ACTIVE:
      return 'active';
    case snapshotsV1.Kind.COMMITTED:
      return 'committed';
    default:
      throw new InvalidArgumentError(`snapshot kind ${kind} is not view, active or committed`);
  }
}

export function toProtoInfo(info: SnapshotInfo): snapshotsV1.Info {
  return {
    name: info.name,
    parent: info.parent,
    kind: toProtoKind(info.kind),
    createdAt: info.createdAt,
    updatedAt: info.updatedAt,
    labels: info.labels,
  };
}

export function fromProtoInfo(info: snapshotsV1.Info): SnapshotInfo {
  return {
    kind: fromProtoKind(info.kind),
    name: info.name,
    parent: info.parent,
    labels: { ...info.labels },
    createdAt: info.createdAt ?? new Date(0),
    updatedAt: info.updatedAt ?? new Date(0),
  };
}

export function toProtoMount(m: Mount): containerdTypes.Mount {
  return { type: m.type, source: m.source, target: m.target ?? '', options: [...m.options] };
}

/** An empty `target` (every mount before containerd 1.7) is left out. */
export function fromProtoMount(m: containerdTypes.Mount): Mount {
  const mount: Mount = { type: m.type, source: m.source, options: [...m.options] };
  if (m.target) mount.target = m.target;
  return mount;
}
