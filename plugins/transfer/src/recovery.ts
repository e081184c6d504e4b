import { isNotFound, type LeaseManager, type Logger, type SnapshotService } from '@berth/core';
import { UNPACK_KEY_PREFIX } from './unpacker';

/** Label of the leases transfers work under. */
export const TRANSFER_LEASE_LABEL = 'berth.io/transfer';

const SNAPSHOT_RESOURCE_PREFIX = 'snapshots/';

export interface RecoveryServices {
  namespaces: { list(): Promise<{ name: string }[]> };
  leases: LeaseManager;
  snapshots: SnapshotService;
  logger?: Logger;
}

/**
 * Removes the extraction snapshots (`extract-…`, never committed) that pulls
 * of a previous run left in their transfer leases when the daemon died, so
 * after a restart only complete layers are visible. Run at start, before any
 * pull of this run. The leases stay: their content lets a new pull resume.
 * Returns how many snapshots were removed.
 */
export async function removeInterruptedUnpacks(services: RecoveryServices): Promise<number> {
  const { namespaces, leases, snapshots, logger } = services;
  let removed = 0;
  for (const { name: namespace } of await namespaces.list()) {
    for (const lease of await leases.list(namespace)) {
      if (lease.labels[TRANSFER_LEASE_LABEL] === undefined) continue;
      for (const resource of await leases.listResources(namespace, lease.id)) {
        if (!resource.type.startsWith(SNAPSHOT_RESOURCE_PREFIX) || !resource.id.startsWith(UNPACK_KEY_PREFIX)) continue;
        const snapshotter = resource.type.slice(SNAPSHOT_RESOURCE_PREFIX.length);
        try {
          const view = snapshots.forNamespace(namespace, snapshotter, { lease: lease.id });
          if ((await view.stat(resource.id)).kind === 'committed') continue;
          await view.remove(resource.id);
          removed++;
          logger?.info({ namespace, snapshotter, key: resource.id }, 'removed the extraction snapshot of an interrupted pull');
        } catch (err) {
          if (!isNotFound(err)) logger?.warn({ err, namespace, key: resource.id }, 'could not remove an interrupted extraction snapshot');
        }
      }
    }
  }
  return removed;
}
