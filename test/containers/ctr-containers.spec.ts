import * as fs from 'fs';
import * as path from 'path';
import { type Berth, connect, errorKind, OCI_SPEC_TYPE_URL } from '@berth/core';
import { containerdEvents } from '@berth/proto';
import { BerthdHandle, makeTempDir, removeDir, startBerthd } from '../harness/daemon';
import { type FixtureImages, fixtureImages } from '../harness/images';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { describeAsRoot } from '../harness/root';
import { collectGarbage, liveSubscription, MANUAL_GC_CONFIG, ok, parseContainerTable, pullWithCtr, snapshotExists } from './helpers';

interface CtrContainerInfo {
  ID: string;
  Labels: Record<string, string> | null;
  Image: string;
  Runtime: { Name: string };
  Spec: { ociVersion: string; process: { args: string[]; env: string[] }; root: { path: string } };
  SnapshotKey: string;
  Snapshotter: string;
}

// ctr 1.6 does the work of `containers create` client side: it prepares the
// rootfs snapshot on the image's chain ID, builds the OCI spec from the image
// config, and sends both through Containers.Create; berthd only stores them.
describeAsRoot('ctr and berth containers against berthd', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let daemon: BerthdHandle;
  let client: Berth;
  let work: string;
  let ref: string;

  beforeAll(async () => {
    [fixtures, registry] = await Promise.all([fixtureImages(), startRegistry()]);
    daemon = await startBerthd({ config: MANUAL_GC_CONFIG });
    client = await connect(daemon.address);
    work = makeTempDir('berth-ctr-c-');
    ref = registry.ref('busybox:latest');
    await pullWithCtr(daemon, ref);
  });
  afterAll(async () => {
    await client?.close();
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
    await registry?.stop();
    if (work) removeDir(work);
  });

  const ctr = (...args: string[]) => daemon.ctr(...args);
  const stopSignal = { 'io.containerd.image.config.stop-signal': 'SIGTERM' };
  const berth = (...args: string[]) => daemon.berth(...args);
  const overlay = () => client.snapshots('overlayfs');

  // A failed test must not leave containers (or their snapshots) to the next one.
  afterEach(async () => {
    for (const namespace of ['default', 'ns-a', 'ns-b']) {
      const ids = ok(await ctr('-n', namespace, 'containers', 'ls', '-q')).split('\n').filter(Boolean);
      if (ids.length > 0) ok(await ctr('-n', namespace, 'containers', 'rm', ...ids));
    }
  });

  it('ctr containers create, ls, info, label and rm: the spec round trips and rm takes the snapshot', async () => {
    ok(await ctr('containers', 'create', '--label', 'team=a', ref, 'c1'));
    expect(parseContainerTable(ok(await ctr('containers', 'ls')))).toEqual([{ id: 'c1', image: ref, runtime: 'io.containerd.runc.v2' }]);
    expect(ok(await ctr('containers', 'ls', '-q'))).toBe('c1\n');

    const info = JSON.parse(ok(await ctr('containers', 'info', 'c1'))) as CtrContainerInfo;
    expect(info).toMatchObject({
      ID: 'c1',
      Labels: { team: 'a' },
      Image: ref,
      Runtime: { Name: 'io.containerd.runc.v2' },
      Snapshotter: 'overlayfs',
      SnapshotKey: 'c1',
    });
    // ctr built the spec from the fixture's image config (Cmd ["sh"]).
    expect(info.Spec.process.args).toEqual(['sh']);
    expect(info.Spec.process.env).toContain('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(info.Spec.root.path).toBe('rootfs');

    // Stored as sent: the same JSON document under the OCI type URL, whoever reads it.
    const stored = await client.containers.get('c1');
    expect(stored.spec?.typeUrl).toBe(OCI_SPEC_TYPE_URL);
    const storedSpec = JSON.parse(Buffer.from(stored.spec!.value).toString('utf8')) as unknown;
    expect(storedSpec).toEqual(info.Spec);
    expect(JSON.parse(ok(await ctr('containers', 'info', '--spec', 'c1')))).toEqual(storedSpec);
    expect(JSON.parse(ok(await berth('containers', 'info', '--spec', 'c1')))).toEqual(storedSpec);

    // The rootfs ctr prepared: active, on the image's top layer.
    const snapshot = await overlay().stat('c1');
    expect(snapshot.kind).toBe('active');
    expect(snapshot.parent).toMatch(/^sha256:[0-9a-f]{64}$/);

    const events = await liveSubscription(client, '^/containers/');
    const labelled = ok(await ctr('containers', 'label', 'c1', 'team=b', 'extra=1'));
    // ctr prints every label the container has after the update; it added the image's stop signal itself.
    expect(labelled.trim().split(',').sort()).toEqual(['extra=1', 'io.containerd.image.config.stop-signal=SIGTERM', 'team=b']);
    ok(await ctr('containers', 'label', 'c1', 'extra='));
    expect((JSON.parse(ok(await ctr('containers', 'info', 'c1'))) as CtrContainerInfo).Labels).toEqual({ team: 'b', ...stopSignal });
    const first = await events.next();
    await events.return?.();
    expect(first.value.topic).toBe('/containers/update');
    expect(containerdEvents.ContainerUpdate.decode(first.value.event.value)).toMatchObject({
      id: 'c1',
      labels: { team: 'b', extra: '1', ...stopSignal },
      snapshotKey: 'c1',
    });

    expect(parseContainerTable(ok(await ctr('containers', 'ls', 'labels.team==b'))).map((c) => c.id)).toEqual(['c1']);
    expect(parseContainerTable(ok(await ctr('containers', 'ls', 'image==nope')))).toEqual([]);

    ok(await ctr('containers', 'rm', 'c1'));
    expect(parseContainerTable(ok(await ctr('containers', 'ls')))).toEqual([]);
    expect(await snapshotExists(client, 'overlayfs', 'c1')).toBe(false);
    const missing = await ctr('containers', 'info', 'c1');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/container "c1" in namespace "default": not found/);
  });

  it('berth containers ls, info, label and rm on what ctr created; rm takes the snapshot', async () => {
    ok(await ctr('containers', 'create', ref, 'b1'));
    ok(await ctr('containers', 'create', '--label', 'tier=db', ref, 'b2'));
    expect(parseContainerTable(ok(await berth('containers', 'ls')))).toEqual([
      { id: 'b1', image: ref, runtime: 'io.containerd.runc.v2' },
      { id: 'b2', image: ref, runtime: 'io.containerd.runc.v2' },
    ]);
    expect(ok(await berth('containers', 'ls', '-q', 'labels.tier==db'))).toBe('b2\n');
    const listed = JSON.parse(ok(await berth('--format', 'json', 'containers', 'ls', 'id==b1'))) as CtrContainerInfo[];
    expect(listed.map((c) => c.ID)).toEqual(['b1']);

    // The same document ctr prints, field for field.
    const ours = JSON.parse(ok(await berth('containers', 'info', 'b1'))) as Record<string, unknown>;
    const theirs = JSON.parse(ok(await ctr('containers', 'info', 'b1'))) as Record<string, unknown>;
    for (const field of ['ID', 'Image', 'Runtime', 'Spec', 'SnapshotKey', 'Snapshotter']) expect(ours[field]).toEqual(theirs[field]);
    expect(new Date(ours.CreatedAt as string).getTime()).toBe(new Date(theirs.CreatedAt as string).getTime());

    expect(ok(await berth('containers', 'label', 'b1', 'a=1', 'b=2'))).toBe('a=1,b=2,io.containerd.image.config.stop-signal=SIGTERM\n');
    expect(ok(await berth('containers', 'label', 'b1', 'a='))).toBe('b=2,io.containerd.image.config.stop-signal=SIGTERM\n');
    expect((JSON.parse(ok(await ctr('containers', 'info', 'b1'))) as CtrContainerInfo).Labels).toEqual({ b: '2', ...stopSignal });

    expect(await snapshotExists(client, 'overlayfs', 'b1')).toBe(true);
    ok(await berth('containers', 'rm', 'b1', 'b2'));
    expect(ok(await ctr('containers', 'ls', '-q'))).toBe('');
    expect(await snapshotExists(client, 'overlayfs', 'b1')).toBe(false);
    expect(await snapshotExists(client, 'overlayfs', 'b2')).toBe(false);

    const missing = await berth('containers', 'rm', 'b1');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/container "b1" in namespace "default": not found/);
  });

  it('GC keeps a container\'s snapshot while the container exists and collects it after rm', async () => {
    ok(await ctr('containers', 'create', ref, 'g1'));
    // A control nothing roots: proves the collection below ran.
    await overlay().prepare('unrooted', '');
    await collectGarbage(client);
    expect(await snapshotExists(client, 'overlayfs', 'unrooted')).toBe(false);
    expect(await snapshotExists(client, 'overlayfs', 'g1')).toBe(true);

    // Only the record goes; the snapshot waits for the collector.
    ok(await ctr('containers', 'rm', '--keep-snapshot', 'g1'));
    expect(await snapshotExists(client, 'overlayfs', 'g1')).toBe(true);
    await collectGarbage(client);
    expect(await snapshotExists(client, 'overlayfs', 'g1')).toBe(false);
    // The image still roots its layers.
    expect((await overlay().list()).filter((s) => s.kind === 'committed')).toHaveLength(fixtures.busybox.layers.length);
  });

  it('keeps namespaces apart, and a namespace with containers cannot be deleted', async () => {
    const inA = client.withNamespace('ns-a');
    await inA.containers.create({ id: 'same', runtime: { name: 'io.containerd.runc.v2' }, image: 'only-in-a' });
    expect(ok(await ctr('-n', 'ns-a', 'containers', 'ls', '-q'))).toBe('same\n');
    expect(ok(await ctr('-n', 'ns-b', 'containers', 'ls', '-q'))).toBe('');
    expect(ok(await berth('-n', 'ns-b', 'containers', 'ls', '-q'))).toBe('');
    const hidden = await ctr('-n', 'ns-b', 'containers', 'info', 'same');
    expect(hidden.stderr).toMatch(/container "same" in namespace "ns-b": not found/);

    // The same id is free in another namespace.
    await client.withNamespace('ns-b').containers.create({ id: 'same', runtime: { name: 'io.containerd.runc.v2' }, image: 'only-in-b' });
    expect((await inA.containers.get('same')).image).toBe('only-in-a');

    const refused = await ctr('namespaces', 'rm', 'ns-a');
    expect(refused.stderr).toMatch(/namespace "ns-a" must be empty, but it still has containers/);
    ok(await ctr('-n', 'ns-a', 'containers', 'rm', 'same'));
    ok(await berth('-n', 'ns-b', 'containers', 'rm', 'same'));
    expect(ok(await ctr('namespaces', 'rm', 'ns-a', 'ns-b')).trim().split('\n')).toEqual(['ns-a', 'ns-b']);
  });

  it('refuses bad ids with InvalidArgument and writes nothing', async () => {
    const rootfs = path.join(work, 'rootfs');
    fs.mkdirSync(rootfs, { recursive: true });
    for (const id of ['../x', 'a/b', 'x'.repeat(77)]) {
      const refused = await ctr('containers', 'create', '--rootfs', rootfs, id);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/invalid argument/);
      expect(refused.stderr).toMatch(/container id .*(must match|longer than 76 characters)/);
    }
    const viaFacade = await client.containers.create({ id: 'x'.repeat(77), runtime: { name: 'io.containerd.runc.v2' } }).catch((e: unknown) => e);
    expect(errorKind(viaFacade)).toBe('invalid-argument');
    expect(ok(await ctr('containers', 'ls', '-q'))).toBe('');
    expect(await client.containers.list()).toEqual([]);
  });
});
