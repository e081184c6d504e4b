import { adaptObject, parseFilters } from '../filters';
import type { SnapshotInfo } from './types';

/**
 * A predicate for Snapshotter.walk's filters (containerd's syntax; fields
 * `kind`, `name`, `parent`, `labels.<key>`), matching when any filter does.
 * Throws InvalidArgument (FilterSyntaxError) for a malformed filter, before any
 * snapshot is looked at.
 */
export function snapshotFilter(filters: readonly string[] = []): (info: SnapshotInfo) => boolean {
  const filter = parseFilters(filters);
  return (info) =>
    filter.match(adaptObject({ kind: info.kind, name: info.name, parent: info.parent, labels: info.labels }));
}
