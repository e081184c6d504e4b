import { spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { BerthdHandle, makeTempDir, removeDir, startBerthd } from '../harness/daemon';
import { type FixtureImages, fixtureImages } from '../harness/images';
import { run } from '../harness/process';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { describeAsRoot } from '../harness/root';
import { host, ok, parseList } from './helpers';

/** OCI chain IDs of a layer stack: chainID(n) = sha256(chainID(n-1) + " " + diffID(n)). */
function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const previous = out.at(-1);
    out.push(previous ? `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}` : diffId);
  }
  return out;
}

/** Directories of the overlay snapshotter's snapshots on disk. */
function overlaySnapshotDirs(daemon: BerthdHandle): string[] {
  const dir = path.join(daemon.root, 'io.berth.snapshotter.v1.overlayfs', 'snapshots');
  return fs.readdirSync(dir).sort();
}

// ctr 1.6 pulls client-side: it fetches into Content, then unpacks each layer
// through Snapshots.Stat/Prepare (with its lease), Diff.Apply on the prepared
// mounts, Snapshots.Commit under the chain ID, and finally labels the image
// config with containerd.io/gc.ref.snapshot.overlayfs.
describeAsRoot('ctr images pull against berthd unpacks through Snapshots and Diff', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let daemon: BerthdHandle;
  let work: string;

  beforeAll(async () => {
    fixtures = await fixtureImages();
    registry = await startRegistry();
    // The interval collector stays off: every collection below is one the test asks for.
    daemon = await startBerthd({ config: 'version = 2\n[plugins."io.berth.gc.v1.scheduler"]\ninterval_ms = 0\n' });
    work = makeTempDir('berth-pull-');
  });
  afterAll(async () => {
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
    await registry?.stop();
    if (work) removeDir(work);
  });

  const ctr = (...args: string[]) => daemon.ctr(...args);
  /** `ctr -n <namespace> images pull --plain-http <args>`. */
  const pullWithCtr = (args: string[], namespace = 'default') =>
    run('ctr', ['-a', daemon.address, '-n', namespace, 'images', 'pull', '--plain-http', ...args], {
      env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
      timeoutMs: 120_000,
    });

  it('pulls busybox, commits the chain under its chain IDs, and GC removes it with the image', async () => {
    const ref = registry.ref('busybox:latest');
    // ctr's own event stream watches the unpack.
    const events = spawn('ctr', ['-a', daemon.address, 'events', 'topic~="^/snapshot/"'], {
      env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let seen = '';
    events.stdout.setEncoding('utf8').on('data', (d: string) => (seen += d));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pull = await pullWithCtr(['--print-chainid', ref]);
    if (pull.code !== 0) throw new Error(`ctr pull failed:\n${pull.stderr}\n${pull.stdout}\n${daemon.output.slice(-4000)}`);
    const chain = chainIds(fixtures.busybox.diffIds);
    expect(pull.stdout).toContain(`unpacking linux/amd64 ${fixtures.busybox.manifest.digest}...`);
    expect(pull.stdout).toContain(`image chain ID: ${chain.at(-1)}`);

    // Each layer: prepared under an `extract-<unique> <chainID>` key on the previous chain ID, committed as its chain ID.
    for (let i = 0; i < 50 && (seen.match(/\/snapshot\/commit/g) ?? []).length < chain.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    events.kill();
    const lines = seen.trim().split('\n').map((line) => /^\S+ \S+ \S+ \S+ default (\S+) (.*)$/.exec(line));
    expect(lines.map((m) => m?.[1])).toEqual(chain.flatMap(() => ['/snapshot/prepare', '/snapshot/commit']));
    chain.forEach((chainId, i) => {
      const prepare = JSON.parse(lines[2 * i]![2]) as { key: string; parent?: string };
      const commit = JSON.parse(lines[2 * i + 1]![2]) as { key: string; name: string };
      expect(prepare.key).toMatch(new RegExp(`^extract-\\S+ ${chainId}$`));
      expect(prepare.parent).toBe(i === 0 ? undefined : chain[i - 1]);
      expect(commit).toEqual({ key: prepare.key, name: chainId });
    });

    // The committed chain, named by chain ID, each on the one below; the extract keys are gone.
    const listed = parseList(ok(await ctr('snapshots', 'ls')));
    expect(listed.sort((a, b) => a.key.localeCompare(b.key))).toEqual(
      chain
        .map((key, i) => ({ key, parent: i === 0 ? '' : chain[i - 1], kind: 'Committed' }))
        .sort((a, b) => a.key.localeCompare(b.key)),
    );
    const info = JSON.parse(ok(await ctr('snapshots', 'info', chain[1]))) as { Labels?: Record<string, string> };
    expect(info.Labels?.['containerd.io/snapshot.ref']).toBeUndefined();

    // The labels ctr set: the snapshot reference on the config, diffIDs on the layers.
    const content = ok(await ctr('content', 'ls'));
    const configLine = content.split('\n').find((line) => line.startsWith(fixtures.busybox.config.digest));
    expect(configLine).toContain(`containerd.io/gc.ref.snapshot.overlayfs=${chain.at(-1)}`);
    fixtures.busybox.layers.forEach((layer, i) => {
      const line = content.split('\n').find((l) => l.startsWith(layer.digest));
      expect(line).toContain(`containerd.io/uncompressed=${fixtures.busybox.diffIds[i]}`);
    });

    // The unpacked rootfs, seen through a view ctr mounts for us.
    const target = path.join(work, 'rootfs');
    fs.mkdirSync(target);
    ok(await ctr('snapshots', 'view', 'rootfs-view', chain.at(-1) as string));
    const mountLine = ok(await ctr('snapshots', 'mounts', target, 'rootfs-view')).trim();
    const m = /^mount -t (\S+) (\S+) (\S+) -o (\S+)$/.exec(mountLine);
    expect(m).not.toBeNull();
    ok(await host('mount', ['-t', m![1], '-o', m![4], m![2], m![3]]));
    try {
      expect(fs.statSync(path.join(target, 'bin', 'busybox')).mode & 0o111).not.toBe(0);
      expect(fs.readlinkSync(path.join(target, 'bin', 'sh'))).toMatch(/busybox$/);
      expect(fs.existsSync(path.join(target, 'etc'))).toBe(true);
    } finally {
      ok(await host('umount', [target]));
    }
    ok(await ctr('snapshots', 'rm', 'rootfs-view'));

    // A second pull finds the chain and unpacks nothing.
    const again = await pullWithCtr([ref]);
    expect(again.code).toBe(0);
    expect(parseList(ok(await ctr('snapshots', 'ls')))).toHaveLength(chain.length);

    // Another namespace unpacks its own chain, under the same names.
    expect((await pullWithCtr([ref], 'second')).code).toBe(0);
    expect(parseList(ok(await ctr('-n', 'second', 'snapshots', 'ls'))).map((s) => s.key).sort()).toEqual([...chain].sort());
    expect(overlaySnapshotDirs(daemon)).toHaveLength(2 * chain.length);

    // While the images are there, collections keep the chains.
    ok(await ctr('leases', 'create', '--id', 'poke'));
    ok(await ctr('leases', 'rm', '--sync', 'poke'));
    expect(parseList(ok(await ctr('snapshots', 'ls')))).toHaveLength(chain.length);

    // Removing the image with --sync collects its chain and the directories; the other namespace's stays.
    ok(await ctr('images', 'rm', '--sync', ref));
    expect(parseList(ok(await ctr('snapshots', 'ls')))).toEqual([]);
    expect(parseList(ok(await ctr('-n', 'second', 'snapshots', 'ls')))).toHaveLength(chain.length);
    expect(overlaySnapshotDirs(daemon)).toHaveLength(chain.length);
    ok(await ctr('-n', 'second', 'images', 'rm', '--sync', ref));
    expect(parseList(ok(await ctr('-n', 'second', 'snapshots', 'ls')))).toEqual([]);
    expect(overlaySnapshotDirs(daemon)).toEqual([]);
  });
});
