import type { Mount, SnapshotKind } from '@berth/core';

/** Where a snapshot's directories are, by id. */
export interface SnapshotLayout {
  /** `<root>/snapshots/<id>/fs`: the upper dir of an active snapshot, the layer of a committed one. */
  fsPath(id: number): string;
  /** `<root>/snapshots/<id>/work`: overlay's work dir, active snapshots only. */
  workPath(id: number): string;
}

/**
 * The mounts containerd's overlay snapshotter returns for a snapshot, given
 * its parents nearest first.
 *
 * - no parents: a bind of its own `fs`, rw for active, ro for a view (overlay
 *   needs at least one lower dir, and a bind is cheaper anyway);
 * - view on one parent: a read-only bind of that parent's `fs`;
 * - active with parents: overlay with workdir, upperdir and all parents as lowerdir;
 * - view on several parents: overlay with lowerdir only, which the kernel mounts read-only.
 *
 * `baseOptions` (index=off, userxattr, configured mount_options) go first on
 * overlay mounts only: they mean nothing to a bind.
 */
export function snapshotMounts(
  layout: SnapshotLayout,
  snapshot: { id: number; kind: SnapshotKind },
  parentIds: readonly number[],
  baseOptions: readonly string[],
): Mount[] {
  if (parentIds.length === 0) {
    const access = snapshot.kind === 'view' ? 'ro' : 'rw';
    return [{ type: 'bind', source: layout.fsPath(snapshot.id), options: [access, 'rbind'] }];
  }
  const options = [...baseOptions];
  if (snapshot.kind === 'active') {
    options.push(`workdir=${layout.workPath(snapshot.id)}`, `upperdir=${layout.fsPath(snapshot.id)}`);
  } else if (parentIds.length === 1) {
    return [{ type: 'bind', source: layout.fsPath(parentIds[0]), options: ['ro', 'rbind'] }];
  }
  options.push(`lowerdir=${parentIds.map((id) => layout.fsPath(id)).join(':')}`);
  return [{ type: 'overlay', source: 'overlay', options }];
}
