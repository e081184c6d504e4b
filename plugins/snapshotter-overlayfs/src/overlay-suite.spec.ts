import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshotterSuite, type SnapshotterFactory } from '@berth/core';
import { lgetxattr, lsetxattr, mountAll, mountPoints, unmountAll } from '@berth/sys';
import { OverlaySnapshotter, type OverlaySnapshotterOptions } from './overlay-snapshotter';

const tempPrefix = 'berth-overlay-suite-';

function factory(options: OverlaySnapshotterOptions): SnapshotterFactory {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), tempPrefix));
    const snapshotter = await OverlaySnapshotter.open(root, options);
    return { snapshotter, root, cleanup: async () => rmSync(root, { recursive: true, force: true }) };
  };
}

const suiteOptions = { mounter: { mountAll, unmountAll }, xattrs: { lsetxattr, lgetxattr } };

snapshotterSuite('overlayfs', factory({}), suiteOptions);
// Removal deletes directories inline there, under the same tests.
snapshotterSuite('overlayfs (sync_remove)', factory({ syncRemove: true }), suiteOptions);

afterAll(() => {
  const ours = (point: string) => point.includes(tempPrefix) || point.includes('berth-snapshotter-suite-');
  expect(mountPoints().filter(ours)).toEqual([]);
});
