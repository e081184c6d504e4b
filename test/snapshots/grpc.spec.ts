import * as fs from 'fs';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import { leasesV1, snapshotsV1 } from '@berth/proto';
import { BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import { describeAsRoot } from '../harness/root';

type Headers = Record<string, string>;
type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;

/** A unary call with containerd's namespace (and lease) headers. */
function call<Res>(headers: Headers, invoke: (metadata: grpc.Metadata, callback: Callback<Res>) => unknown): Promise<Res> {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
  return new Promise((resolve, reject) => invoke(metadata, (err, res) => (err ? reject(err) : resolve(res))));
}

// The Snapshots service on the wire, where ctr does not reach: batching,
// the lease header, the snapshotter field, status codes.
describeAsRoot('containerd.services.snapshots.v1.Snapshots served by berthd', () => {
  let daemon: BerthdHandle;
  let snapshots: snapshotsV1.SnapshotsClient;
  let leases: leasesV1.LeasesClient;
  const ns: Headers = { 'containerd-namespace': 'wire' };

  beforeAll(async () => {
    daemon = await startBerthd({ config: 'version = 2\n[plugins."io.berth.gc.v1.scheduler"]\ninterval_ms = 0\n' });
    snapshots = new snapshotsV1.SnapshotsClient(`unix://${daemon.address}`, grpc.credentials.createInsecure());
    leases = new leasesV1.LeasesClient(`unix://${daemon.address}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    snapshots?.close();
    leases?.close();
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
  });

  const prepare = (req: Partial<snapshotsV1.PrepareSnapshotRequest>, headers = ns) =>
    call<snapshotsV1.PrepareSnapshotResponse>(headers, (md, cb) =>
      snapshots.prepare({ snapshotter: '', key: '', parent: '', labels: {}, ...req }, md, cb),
    );
  const view = (key: string, parent: string, headers = ns) =>
    call<snapshotsV1.ViewSnapshotResponse>(headers, (md, cb) => snapshots.view({ snapshotter: '', key, parent, labels: {} }, md, cb));
  const commit = (name: string, key: string, headers = ns, snapshotter = '') =>
    call<unknown>(headers, (md, cb) => snapshots.commit({ snapshotter, name, key, labels: {} }, md, cb));
  const remove = (key: string, headers = ns) =>
    call<unknown>(headers, (md, cb) => snapshots.remove({ snapshotter: '', key }, md, cb));
  const stat = (key: string) =>
    call<snapshotsV1.StatSnapshotResponse>(ns, (md, cb) => snapshots.stat({ snapshotter: '', key }, md, cb));
  const held = async (lease: string) => {
    const res = await call<leasesV1.ListResourcesResponse>(ns, (md, cb) => leases.listResources({ id: lease }, md, cb));
    return res.resources.map((r) => `${r.type} ${r.id}`).sort();
  };

  function list(req: Partial<snapshotsV1.ListSnapshotsRequest> = {}): Promise<snapshotsV1.Info[][]> {
    const metadata = new grpc.Metadata();
    metadata.set('containerd-namespace', 'wire');
    const stream = snapshots.list({ snapshotter: '', filters: [], ...req }, metadata);
    const batches: snapshotsV1.Info[][] = [];
    return new Promise((resolve, reject) => {
      stream.on('data', (res: snapshotsV1.ListSnapshotsResponse) => batches.push(res.info));
      stream.on('error', reject);
      stream.on('end', () => resolve(batches));
    });
  }

  it('streams List in batches of 100, with kinds and filters', async () => {
    const gcRoot = { 'containerd.io/gc.root': 'test' };
    const keys = Array.from({ length: 205 }, (_, i) => `many-${String(i).padStart(3, '0')}`);
    await Promise.all(keys.map((key, i) => prepare({ key, labels: { ...gcRoot, i: String(i) } })));
    const batches = await list();
    expect(batches.map((b) => b.length)).toEqual([100, 100, 5]);
    const all = batches.flat();
    expect(new Set(all.map((i) => i.name)).size).toBe(205);
    expect(all.every((i) => i.kind === snapshotsV1.Kind.ACTIVE && i.parent === '' && i.createdAt instanceof Date)).toBe(true);
    const filtered = (await list({ filters: ['labels.i==7', 'labels.i==42'] })).flat();
    expect(filtered.map((i) => i.name).sort()).toEqual(['many-007', 'many-042']);
    await Promise.all(all.map((i) => remove(i.name)));
    expect((await list()).flat()).toEqual([]);
  });

  it('adds what Prepare, View and Commit create to the containerd-lease, and Remove takes it out', async () => {
    const leased = { ...ns, 'containerd-lease': 'wire-lease' };
    await call<leasesV1.CreateResponse>(ns, (md, cb) => leases.create({ id: 'wire-lease', labels: {} }, md, cb));
    await prepare({ key: 'extract-1 sha256:aa' }, leased);
    // The committed name replaces the key in the lease.
    await commit('sha256:aa', 'extract-1 sha256:aa', leased, 'overlayfs');
    await view('peek', 'sha256:aa', leased);
    expect(await held('wire-lease')).toEqual(['snapshots/overlayfs peek', 'snapshots/overlayfs sha256:aa']);

    expect((await stat('peek')).info).toMatchObject({ name: 'peek', parent: 'sha256:aa', kind: snapshotsV1.Kind.VIEW });
    const usage = await call<snapshotsV1.UsageResponse>(ns, (md, cb) =>
      snapshots.usage({ snapshotter: '', key: 'sha256:aa' }, md, cb),
    );
    expect(usage.inodes).toBeGreaterThanOrEqual(1);
    const mounts = await call<snapshotsV1.MountsResponse>(ns, (md, cb) =>
      snapshots.mounts({ snapshotter: '', key: 'peek' }, md, cb),
    );
    // A view on one parent is a read-only bind of the parent's layer.
    expect(mounts.mounts).toEqual([
      { type: 'bind', source: expect.stringMatching(/\/fs$/), target: '', options: ['ro', 'rbind'] },
    ]);

    const info = { name: 'sha256:aa', parent: '', kind: snapshotsV1.Kind.UNKNOWN, labels: { a: '1', b: '2' } };
    const updated = await call<snapshotsV1.UpdateSnapshotResponse>(ns, (md, cb) =>
      snapshots.update({ snapshotter: '', info, updateMask: ['labels.a'] }, md, cb),
    );
    expect(updated.info?.labels).toEqual({ a: '1' });

    await remove('peek', leased);
    expect(await held('wire-lease')).toEqual(['snapshots/overlayfs sha256:aa']);

    // The lease held it: deleting it with sync collects it, and Cleanup has nothing left to do.
    await call<unknown>(ns, (md, cb) => leases.delete({ id: 'wire-lease', sync: true }, md, cb));
    expect((await list()).flat()).toEqual([]);
    await call<unknown>(ns, (md, cb) => snapshots.cleanup({ snapshotter: '' }, md, cb));
    const dir = path.join(daemon.root, 'io.berth.snapshotter.v1.overlayfs', 'snapshots');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('answers with containerd status codes', async () => {
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (err: grpc.ServiceError) => grpc.status[err.code]);
    expect(await code(prepare({ key: '' }))).toBe('INVALID_ARGUMENT');
    expect(await code(prepare({ key: 'x', parent: 'missing' }))).toBe('NOT_FOUND');
    expect(await code(prepare({ key: 'x', snapshotter: 'zfs' }))).toBe('NOT_FOUND');
    expect(await code(prepare({ key: 'x' }, {}))).toBe('INVALID_ARGUMENT');
    expect(await code(prepare({ key: 'dup', labels: { 'containerd.io/gc.root': 'x' } }))).toBe('ok');
    expect(await code(prepare({ key: 'dup' }))).toBe('ALREADY_EXISTS');
    expect(await code(stat('nope'))).toBe('NOT_FOUND');
    expect(await code(commit('c', 'nope'))).toBe('NOT_FOUND');
    expect(await code(prepare({ key: 'leased' }, { ...ns, 'containerd-lease': 'no-such-lease' }))).toBe('NOT_FOUND');
    expect(await code(remove('dup'))).toBe('ok');
  });
});
