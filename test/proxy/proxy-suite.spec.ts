import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { snapshotterSuite, type Snapshotter, type SnapshotterFactory } from '@berth/core';
import { NativeSnapshotter } from '@berth/snapshotter-native';
import { OverlaySnapshotter } from '@berth/snapshotter-overlayfs';
import { ProxySnapshotter, serveSnapshotters } from '@berth/snapshotter-proxy';
import { lgetxattr, lsetxattr, mountAll, mountPoints, unmountAll } from '@berth/sys';

const tempPrefix = 'berth-proxy-suite-';

/**
 * The conformance suite through the wire: a ProxySnapshotter talking over a
 * real unix socket to snapshotsServer in this process, serving a real
 * snapshotter. Every mount the suite makes is one the backend returned and
 * gRPC carried.
 */
function overProxy(open: (root: string) => Promise<Snapshotter>): SnapshotterFactory {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), tempPrefix));
    const root = path.join(dir, 'root');
    const backend = await open(root);
    const server = await serveSnapshotters(path.join(dir, 'sn.sock'), () => backend);
    const snapshotter = await ProxySnapshotter.connect(server.socket, 'suite', { timeoutMs: 5000 });
    return {
      snapshotter,
      root,
      async cleanup() {
        try {
          await server.stop();
          await backend.close();
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  };
}

const mounter = { mountAll, unmountAll };

snapshotterSuite('proxy → native', overProxy((root) => NativeSnapshotter.open(root)), { mounter, xattrs: { lsetxattr, lgetxattr } });
snapshotterSuite('proxy → overlayfs', overProxy((root) => OverlaySnapshotter.open(root)), {
  mounter,
  xattrs: { lsetxattr, lgetxattr },
});

afterAll(() => {
  const ours = (point: string) => point.includes(tempPrefix) || point.includes('berth-snapshotter-suite-proxy');
  expect(mountPoints().filter(ours)).toEqual([]);
  expect(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(tempPrefix))).toEqual([]);
});
