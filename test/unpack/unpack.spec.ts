import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { BerthdHandle, berthBin, removeDir, startBerthd } from '../harness/daemon';
import { type FixtureImages, fixtureImages } from '../harness/images';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { type RegistryProxyHandle, startRegistryProxy } from '../harness/registry-proxy';
import { describeAsRoot } from '../harness/root';
import { chainIDs, isMountPoint, ok, snapshotRows, waitFor } from './helpers';

interface ContentJson {
  digest: string;
  labels: Record<string, string>;
}

// `berth images pull` unpacks into snapshots; the snapshots and images mount commands show and use them.
describeAsRoot('unpack: berth images pull, snapshots, images mount (real berthd and registry)', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let daemon: BerthdHandle;
  let chain: string[];
  let ref: string;

  beforeAll(async () => {
    fixtures = await fixtureImages();
    [registry, daemon] = await Promise.all([startRegistry(), startBerthd()]);
    chain = chainIDs(fixtures.busybox.diffIds);
    ref = registry.ref('busybox:latest');
  });
  afterAll(async () => {
    await daemon?.stop();
    await registry?.stop();
    if (daemon) removeDir(daemon.dir);
  });

  it('pulls and unpacks busybox into a chain of committed snapshots named by chain ID', async () => {
    const started = Date.now();
    const out = ok(await daemon.berth('-n', 'unpack', 'images', 'pull', '--plain-http', '--print-chainid', ref));
    const seconds = (Date.now() - started) / 1000;
    expect(out).toContain(`${ref}: pulled ${fixtures.busybox.manifest.digest}`);
    expect(out).toContain(`image chain ID: ${chain[2]}\n`);
    process.stdout.write(`berth images pull (fetch + unpack) of the busybox fixture: ${seconds.toFixed(2)} s, CLI included\n`);

    expect(snapshotRows(ok(await daemon.berth('-n', 'unpack', 'snapshots', 'ls')))).toEqual(
      [
        { key: chain[0], parent: '', kind: 'Committed' },
        { key: chain[1], parent: chain[0], kind: 'Committed' },
        { key: chain[2], parent: chain[1], kind: 'Committed' },
      ].sort((a, b) => a.key.localeCompare(b.key)),
    );
    expect(ok(await daemon.berth('-n', 'unpack', 'snapshots', 'tree'))).toBe(
      ` ${chain[0]}\n  \\_ ${chain[1]}\n    \\_ ${chain[2]}\n`,
    );

    // GC references: the config names the top snapshot, each layer its verified diffID.
    const content = JSON.parse(ok(await daemon.berth('-n', 'unpack', '--format', 'json', 'content', 'ls'))) as ContentJson[];
    const labelsOf = (digest: string) => content.find((c) => c.digest === digest)?.labels ?? {};
    expect(labelsOf(fixtures.busybox.config.digest)['containerd.io/gc.ref.snapshot.overlayfs']).toBe(chain[2]);
    fixtures.busybox.layers.forEach((layer, i) =>
      expect(labelsOf(layer.digest)['containerd.io/uncompressed']).toBe(fixtures.busybox.diffIds[i]),
    );
    // The pull's lease is gone: the image alone holds the snapshots now.
    expect(ok(await daemon.berth('-n', 'unpack', 'leases', 'ls')).trim().split('\n')).toHaveLength(1);

    const info = JSON.parse(ok(await daemon.berth('-n', 'unpack', 'snapshots', 'info', chain[1]))) as Record<string, unknown>;
    expect(info).toMatchObject({ Kind: 'Committed', Name: chain[1], Parent: chain[0] });
    expect((info.Labels as Record<string, string>)['containerd.io/snapshot.ref']).toBe(chain[1]);
  });

  it('mounts the image read-only with images mount, and unmount --rm removes the snapshot and its lease', async () => {
    const target = path.join(daemon.dir, 'mnt');
    fs.mkdirSync(target);
    expect(ok(await daemon.berth('-n', 'unpack', 'images', 'mount', ref, target))).toBe(`${target}\n`);
    try {
      expect(isMountPoint(target)).toBe(true);
      expect(fs.readFileSync(path.join(target, 'bin', 'busybox')).equals(fs.readFileSync('/bin/busybox'))).toBe(true);
      expect(fs.readlinkSync(path.join(target, 'bin', 'sh'))).toBe('busybox');
      expect(fs.readFileSync(path.join(target, 'etc', 'berth-fixture'), 'utf8')).toBe('hello from a berth fixture image\n');
      expect(fs.statSync(path.join(target, 'tmp')).mode & 0o7777).toBe(0o1777);
      expect(() => fs.writeFileSync(path.join(target, 'etc', 'x'), 'x')).toThrow(/EROFS|read-only/);
      // The mount's view, keyed by the target as ctr keys it, on the top of the chain.
      const rows = snapshotRows(ok(await daemon.berth('-n', 'unpack', 'snapshots', 'ls')));
      expect(rows).toContainEqual({ key: target, parent: chain[2], kind: 'View' });
      expect(ok(await daemon.berth('-n', 'unpack', 'leases', 'ls'))).toContain(`berth.io/mount.target=${target}`);
      // ctr's mount commands for it.
      expect(ok(await daemon.berth('-n', 'unpack', 'snapshots', 'mounts', '/x', target))).toMatch(/^mount -t (overlay|bind) \S+ \/x -o \S+\n$/);
    } finally {
      const out = ok(await daemon.berth('-n', 'unpack', 'images', 'unmount', '--rm', target));
      expect(out).toBe(`${target}\n`);
    }
    expect(isMountPoint(target)).toBe(false);
    expect(fs.readdirSync(target)).toEqual([]);
    const rows = snapshotRows(ok(await daemon.berth('-n', 'unpack', 'snapshots', 'ls')));
    expect(rows.map((r) => r.key).sort()).toEqual([...chain].sort());
    expect(ok(await daemon.berth('-n', 'unpack', 'leases', 'ls')).trim().split('\n')).toHaveLength(1);
  });

  it('a second pull finds every layer unpacked and creates nothing', async () => {
    const before = ok(await daemon.berth('-n', 'unpack', 'snapshots', 'info', chain[2]));
    ok(await daemon.berth('-n', 'unpack', 'images', 'pull', '--plain-http', ref));
    expect(ok(await daemon.berth('-n', 'unpack', 'snapshots', 'info', chain[2]))).toBe(before);
    expect(snapshotRows(ok(await daemon.berth('-n', 'unpack', 'snapshots', 'ls')))).toHaveLength(3);
  });

  it('--no-unpack and content fetch only fetch; --snapshotter native unpacks there', async () => {
    ok(await daemon.berth('-n', 'fetch-only', 'images', 'pull', '--plain-http', '--no-unpack', ref));
    ok(await daemon.berth('-n', 'fetch-only', 'content', 'fetch', '--plain-http', registry.ref('multi:latest')));
    expect(snapshotRows(ok(await daemon.berth('-n', 'fetch-only', 'snapshots', 'ls')))).toEqual([]);
    const mountErr = await daemon.berth('-n', 'fetch-only', 'images', 'mount', ref, daemon.dir);
    expect(mountErr.code).toBe(1);
    expect(mountErr.stderr).toMatch(/not unpacked/);

    ok(await daemon.berth('-n', 'native', 'images', 'pull', '--plain-http', '--snapshotter', 'native', ref));
    expect(snapshotRows(ok(await daemon.berth('-n', 'native', 'snapshots', 'ls')))).toEqual([]);
    const native = snapshotRows(ok(await daemon.berth('-n', 'native', 'snapshots', '--snapshotter', 'native', 'ls')));
    expect(native.map((r) => r.key).sort()).toEqual([...chain].sort());
    const target = path.join(daemon.dir, 'mnt-native');
    fs.mkdirSync(target);
    ok(await daemon.berth('-n', 'native', 'images', 'mount', '--snapshotter', 'native', ref, target));
    try {
      expect(fs.readFileSync(path.join(target, 'bin', 'busybox')).equals(fs.readFileSync('/bin/busybox'))).toBe(true);
    } finally {
      ok(await daemon.berth('-n', 'native', 'images', 'unmount', '--rm', '--snapshotter', 'native', target));
    }
  });

  it('snapshots prepare, commit, label, usage, rm work like ctr\'s', async () => {
    const ns = ['-n', 'manual'];
    ok(await daemon.berth(...ns, 'images', 'pull', '--plain-http', ref));
    const prepared = ok(await daemon.berth(...ns, 'snapshots', 'prepare', '--target', '/mnt/x', 'work', chain[2]));
    expect(prepared).toMatch(/^mount -t overlay overlay \/mnt\/x -o \S*lowerdir=\S+\n$/);
    const labels = ok(await daemon.berth(...ns, 'snapshots', 'label', 'work', 'a=b'));
    expect(labels).toMatch(/^a=b,containerd\.io\/gc\.root=\S+\n$/);
    ok(await daemon.berth(...ns, 'snapshots', 'commit', 'mine', 'work'));
    const usage = ok(await daemon.berth(...ns, 'snapshots', 'usage', '--b', 'mine'));
    expect(usage).toMatch(/^KEY\s+SIZE\s+INODES\nmine\s+\d+\s+1\n$/);
    const busy = await daemon.berth(...ns, 'snapshots', 'rm', chain[2]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/failed to remove .*children/);
    ok(await daemon.berth(...ns, 'snapshots', 'rm', 'mine'));
    expect(snapshotRows(ok(await daemon.berth(...ns, 'snapshots', 'ls'))).map((r) => r.key)).not.toContain('mine');
  });
});

// A daemon killed in the middle of an unpack leaves nothing half-made behind.
describeAsRoot('unpack: berthd killed mid-unpack (SIGKILL) and restarted', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let proxy: RegistryProxyHandle;
  let daemon: BerthdHandle | undefined;
  let dir: string;

  beforeAll(async () => {
    fixtures = await fixtureImages();
    registry = await startRegistry();
    proxy = await startRegistryProxy({ upstream: registry.url });
  });
  afterAll(async () => {
    await daemon?.stop();
    await proxy?.stop();
    await registry?.stop();
    if (dir) removeDir(dir);
  });

  it('shows only committed layers after the restart, cleans the extraction snapshot up, and a new pull completes', async () => {
    const chain = chainIDs(fixtures.busybox.diffIds);
    const stalled = fixtures.busybox.layers[1].digest;
    // The second layer's blob stops half way: the first layer gets unpacked, the second one's snapshot is being prepared.
    proxy.intercept = (req) => (req.url.includes(stalled) && req.method === 'GET' ? { stallAfter: 100 } : undefined);
    daemon = await startBerthd();
    dir = daemon.dir;
    const pull = spawn(process.execPath, [berthBin, '-a', daemon.address, 'images', 'pull', '--plain-http', `${proxy.host}/busybox:latest`], {
      stdio: 'ignore',
    });
    const pullExited = new Promise<void>((resolve) => pull.once('exit', () => resolve()));
    try {
      let last = '';
      const mid = await waitFor(() => `the first layer committed and the second one extracting (snapshots: ${last})`, async () => {
        last = ok(await daemon!.berth('snapshots', 'ls'));
        const rows = snapshotRows(last);
        return rows.some((r) => r.key === chain[0] && r.kind === 'Committed') && rows.some((r) => r.kind === 'Active' && r.parent === chain[0])
          ? rows
          : undefined;
      });
      // The second layer's extraction snapshot; with staging, the third layer's parentless staging snapshot may be there too.
      const active = mid.filter((r) => r.kind === 'Active');
      expect(active.find((r) => r.parent === chain[0])!.key).toMatch(new RegExp(`^extract-\\S+ ${chain[1]}$`));
      for (const r of active) expect(r.key).toMatch(/^extract-\S+ sha256:/);
      daemon.kill('SIGKILL');
      await daemon.exited;
    } finally {
      pull.kill('SIGKILL');
      await pullExited;
    }

    proxy.intercept = undefined;
    daemon = await startBerthd({ dir });
    expect(snapshotRows(ok(await daemon.berth('snapshots', 'ls')))).toEqual([{ key: chain[0], parent: '', kind: 'Committed' }]);
    // The removed extraction snapshot's directory goes with the next collection's backend sweep.
    const snapshotDirs = path.join(dir, 'root', 'io.berth.snapshotter.v1.overlayfs', 'snapshots');
    await waitFor('the leftover snapshot directory to be deleted', async () =>
      fs.readdirSync(snapshotDirs).length === 1 ? true : undefined,
    );

    ok(await daemon.berth('images', 'pull', '--plain-http', `${proxy.host}/busybox:latest`));
    expect(snapshotRows(ok(await daemon.berth('snapshots', 'ls'))).map((r) => [r.key, r.kind])).toEqual(
      chain.map((c) => [c, 'Committed']).sort((a, b) => a[0].localeCompare(b[0])),
    );
  });
});
