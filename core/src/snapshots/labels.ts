import { InvalidArgumentError } from '../errdefs';
import type { Labels } from '../metadata/types';

/**
 * The labels a snapshot has after `update(info, fieldpaths)`, by containerd's
 * rules: no fieldpaths or `labels` replace them all; `labels.<key>` sets or
 * (when `info` lacks the key) removes one; any other path is InvalidArgument,
 * since only labels are mutable. Empty values mean "no label".
 */
export function updatedLabels(current: Labels, update: Labels, fieldpaths: readonly string[] = []): Labels {
  if (fieldpaths.length === 0) return withoutEmpty(update);
  let next: Labels = { ...current };
  for (const path of fieldpaths) {
    if (path === 'labels') {
      next = withoutEmpty(update);
    } else if (path.startsWith('labels.') && path.length > 'labels.'.length) {
      const key = path.slice('labels.'.length);
      const value = Object.prototype.hasOwnProperty.call(update, key) ? update[key] : '';
      if (value) next[key] = value;
      else delete next[key];
    } else {
      throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} of a snapshot: only labels are mutable`);
    }
  }
  return next;
}

function withoutEmpty(labels: Labels): Labels {
  return Object.fromEntries(Object.entries(labels ?? {}).filter(([, v]) => v !== ''));
}
