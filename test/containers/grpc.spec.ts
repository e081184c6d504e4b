import * as grpc from '@grpc/grpc-js';
import { containersV1 } from '@berth/proto';
import { BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import { describeAsRoot } from '../harness/root';

type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;

function metadataFor(namespace: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('containerd-namespace', namespace);
  return metadata;
}

function call<Res>(namespace: string, invoke: (metadata: grpc.Metadata, callback: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => invoke(metadataFor(namespace), (err, res) => (err ? reject(err) : resolve(res))));
}

async function statusOf(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (err) {
    const { code, details } = err as grpc.ServiceError;
    return { code, details };
  }
  throw new Error('expected a failure, but the call succeeded');
}

const specType = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';

function wireContainer(fields: Partial<containersV1.Container> & { id: string }): containersV1.Container {
  return {
    labels: {},
    image: '',
    runtime: { name: 'io.containerd.runc.v2' },
    snapshotter: '',
    snapshotKey: '',
    extensions: {},
    sandbox: '',
    ...fields,
  };
}

// The Containers service on the wire, where ctr does not reach: a full
// update without a mask, ListStream's framing, status codes.
describeAsRoot('containerd.services.containers.v1.Containers served by berthd', () => {
  let daemon: BerthdHandle;
  let client: containersV1.ContainersClient;
  const ns = 'wire';

  beforeAll(async () => {
    daemon = await startBerthd();
    client = new containersV1.ContainersClient(`unix://${daemon.address}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
  });

  const create = (container: containersV1.Container) =>
    call<containersV1.CreateContainerResponse>(ns, (md, cb) => client.create({ container }, md, cb));
  const update = (container: containersV1.Container, updateMask?: string[]) =>
    call<containersV1.UpdateContainerResponse>(ns, (md, cb) => client.update({ container, updateMask }, md, cb));
  const remove = (id: string) => call<unknown>(ns, (md, cb) => client.delete({ id }, md, cb));

  function listStream(filters: string[] = []): Promise<containersV1.ListContainerMessage[]> {
    return new Promise((resolve, reject) => {
      const messages: containersV1.ListContainerMessage[] = [];
      const stream = client.listStream({ filters }, metadataFor(ns));
      stream.on('data', (m: containersV1.ListContainerMessage) => messages.push(m));
      stream.on('error', reject);
      stream.on('end', () => resolve(messages));
    });
  }

  it('Update without a mask replaces the record, but not its runtime or snapshotter', async () => {
    const spec = { typeUrl: specType, value: Buffer.from('{"ociVersion":"1.0.2"}') };
    await create(wireContainer({ id: 'full', image: 'a:1', spec, snapshotter: 'overlayfs', snapshotKey: 'full', labels: { x: '1' } }));

    const replaced = await update(wireContainer({ id: 'full', image: 'a:2', spec, snapshotter: 'overlayfs', snapshotKey: 'full', labels: { y: '2' } }));
    expect(replaced.container).toMatchObject({ id: 'full', image: 'a:2', labels: { y: '2' }, snapshotKey: 'full', spec });

    // A full update names the snapshotter too: leaving it out is a change, and refused.
    expect(await statusOf(update(wireContainer({ id: 'full', image: 'a:3', spec })))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'container "full": snapshotter is immutable',
    });
    expect(
      await statusOf(update(wireContainer({ id: 'full', runtime: { name: 'io.containerd.kata.v2' }, snapshotter: 'overlayfs' }))),
    ).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'container "full": runtime name is immutable' });
    expect(await statusOf(update(wireContainer({ id: 'full' }), ['runtime']))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'cannot update "runtime" field on container "full"',
    });
    expect((await statusOf(update(wireContainer({ id: '' }), ['labels']))).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await statusOf(update(wireContainer({ id: 'absent' }), ['labels']))).code).toBe(grpc.status.NOT_FOUND);
    await remove('full');
  });

  it('ListStream sends one container per message, filtered', async () => {
    for (const id of ['s1', 's2', 's3']) await create(wireContainer({ id, labels: { group: id === 's2' ? 'odd' : 'even' } }));
    const all = await listStream();
    expect(all.map((m) => m.container?.id)).toEqual(['s1', 's2', 's3']);
    expect((await listStream(['labels.group==even'])).map((m) => m.container?.id)).toEqual(['s1', 's3']);
    for (const id of ['s1', 's2', 's3']) await remove(id);
    expect(await listStream()).toEqual([]);
  });

  it('status codes: AlreadyExists, NotFound, InvalidArgument, and a namespace is required', async () => {
    await create(wireContainer({ id: 'dup' }));
    expect((await statusOf(create(wireContainer({ id: 'dup' })))).code).toBe(grpc.status.ALREADY_EXISTS);
    expect(await statusOf(create(wireContainer({ id: '../x' })))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'container id "../x": must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$',
    });
    expect((await statusOf(create(wireContainer({ id: 'no-runtime', runtime: undefined })))).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await statusOf(call(ns, (md, cb) => client.get({ id: 'absent' }, md, cb)))).code).toBe(grpc.status.NOT_FOUND);
    expect((await statusOf(remove('absent'))).code).toBe(grpc.status.NOT_FOUND);
    const noNamespace = await statusOf(
      new Promise((resolve, reject) => client.get({ id: 'dup' }, new grpc.Metadata(), (err, res) => (err ? reject(err) : resolve(res)))),
    );
    expect(noNamespace.code).toBe(grpc.status.INVALID_ARGUMENT);
    await remove('dup');
  });
});
