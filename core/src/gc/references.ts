import { GcLabels } from '../leases/types';
import type { Labels } from '../metadata/types';
import type { GcResource } from './types';

const contentRefPrefix = `${GcLabels.refContent}.`;
const snapshotRefPrefix = `${GcLabels.refSnapshot}.`;

/**
 * What an object's labels keep alive, in its own namespace:
 * `containerd.io/gc.ref.content[.<suffix>]` = digest, and
 * `containerd.io/gc.ref.snapshot.<snapshotter>[/<suffix>]` = snapshot key.
 */
export function labelReferences(namespace: string, labels: Labels): GcResource[] {
  const refs: GcResource[] = [];
  for (const [key, value] of Object.entries(labels)) {
    if (value === '') continue;
    if (key === GcLabels.refContent || key.startsWith(contentRefPrefix)) {
      refs.push({ type: 'content', namespace, id: value });
    } else if (key.startsWith(snapshotRefPrefix)) {
      const snapshotter = key.slice(snapshotRefPrefix.length).split('/')[0];
      if (snapshotter !== '') refs.push({ type: `snapshots/${snapshotter}`, namespace, id: value });
    }
  }
  return refs;
}

export function isGcRoot(labels: Labels): boolean {
  return Object.prototype.hasOwnProperty.call(labels, GcLabels.root);
}

/** A set of resources, keyed by type, namespace and id. */
export class ResourceSet {
  private readonly keys = new Set<string>();

  /** False if it was there already. */
  add(resource: GcResource): boolean {
    const key = resourceKey(resource);
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    return true;
  }

  has(resource: GcResource): boolean {
    return this.keys.has(resourceKey(resource));
  }
}

// NUL cannot appear in a type or namespace, so the key is unambiguous.
function resourceKey({ type, namespace, id }: GcResource): string {
  return `${type}\u0000${namespace}\u0000${id}`;
}
