import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import {
  MetadataGarbageCollector,
  SqliteLeaseManager,
  SqliteMetadataStore,
  SqliteSnapshotService,
  snapshotterSuite,
  type SnapshotterFactory,
} from '@berth/core';
import { OverlaySnapshotter } from '@berth/snapshotter-overlayfs';
import { lgetxattr, lsetxattr, mountAll, mountPoints, unmountAll } from '@berth/sys';
import { MemoryContentStore } from '../harness/memory-content-store';

const tempPrefix = 'berth-ns-overlay-suite-';

/**
 * The conformance suite through the metadata layer: a namespace's view over
 * overlayfs must behave as a snapshotter itself. With `collect`, every
 * snapshot is held by a lease and a collector runs after each remove, so
 * backend snapshots go in the background while the suite carries on.
 */
function factory(options: { collect: boolean }): SnapshotterFactory {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), tempPrefix));
    const metadata = new SqliteMetadataStore(join(root, 'meta.db'));
    const overlay = await OverlaySnapshotter.open(join(root, 'overlayfs'));
    const gc = options.collect
      ? new MetadataGarbageCollector({ metadata, content: new MemoryContentStore(), scheduleDelayMs: 0, intervalMs: 0 })
      : undefined;
    const service = new SqliteSnapshotService({ metadata, snapshotters: new Map([['overlayfs', overlay]]), gc });
    if (gc) await new SqliteLeaseManager({ metadata, gc }).create('suite', { id: 'suite' });
    return {
      snapshotter: service.forNamespace('suite', 'overlayfs', { lease: options.collect ? 'suite' : undefined }),
      root,
      async cleanup() {
        await gc?.close();
        service.close();
        await overlay.close();
        metadata.close();
        rmSync(root, { recursive: true, force: true });
      },
    };
  };
}

const suiteOptions = { mounter: { mountAll, unmountAll }, xattrs: { lsetxattr, lgetxattr } };

snapshotterSuite('namespaced view over overlayfs', factory({ collect: false }), suiteOptions);
snapshotterSuite('namespaced view over overlayfs, leased, collected', factory({ collect: true }), suiteOptions);

afterAll(() => {
  const ours = (point: string) => point.includes(tempPrefix) || point.includes('berth-snapshotter-suite-');
  expect(mountPoints().filter(ours)).toEqual([]);
});
