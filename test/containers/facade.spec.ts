import { type AnyMessage, type Berth, type Container, errorKind, OCI_SPEC_TYPE_URL } from '@berth/core';
import { createBerth } from '@berth/builtins';
import { bothDoors, type Door } from '../harness/doors';
import { describeAsRoot } from '../harness/root';
import { collectGarbage, MANUAL_GC_CONFIG, snapshotExists } from './helpers';

async function failureKind(action: () => Promise<unknown>): Promise<string> {
  try {
    await action();
  } catch (err) {
    return errorKind(err);
  }
  throw new Error('expected a failure, but the call succeeded');
}

const specJson = JSON.stringify({ ociVersion: '1.0.2-dev', process: { args: ['sh'], cwd: '/' }, root: { path: 'rootfs' } });
const spec: AnyMessage = { typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from(specJson) };
const runcOptions: AnyMessage = { typeUrl: 'containerd.runc.v1.Options', value: Buffer.from([0x12, 0x04, 0x72, 0x75, 0x6e, 0x63]) };
const runtime = { name: 'io.containerd.runc.v2' };

// One suite, two doors: containers behave the same in-process and over gRPC.
describeAsRoot.each(
  bothDoors({
    inProcess: { createBerth, name: 'createBerth (in-process, @berth/builtins)', config: MANUAL_GC_CONFIG },
    remote: { config: MANUAL_GC_CONFIG },
  }),
)('facade containers: %s', (_name, makeDoor) => {
  let door: Door;
  let berth: Berth;
  beforeAll(async () => {
    door = makeDoor();
    berth = await door.open();
  });
  afterAll(() => door.close());
  afterEach(async () => {
    for (const namespace of ['default', 'other']) {
      const scoped = berth.withNamespace(namespace);
      for (const container of await scoped.containers.list()) await scoped.containers.delete(container.id);
    }
  });

  it('create and get keep every field; the spec and runtime options byte for byte', async () => {
    const created = await berth.containers.create({
      id: 'c1',
      image: 'busybox:latest',
      runtime: { name: 'io.containerd.runc.v2', options: runcOptions },
      spec,
      snapshotter: 'overlayfs',
      snapshotKey: 'c1-rootfs',
      labels: { team: 'a', empty: '' },
      extensions: { note: { typeUrl: 'example.com/Note', value: Buffer.from('hello') } },
    });
    const expected: Omit<Container, 'createdAt' | 'updatedAt'> = {
      id: 'c1',
      image: 'busybox:latest',
      runtime: { name: 'io.containerd.runc.v2', options: runcOptions },
      spec,
      snapshotter: 'overlayfs',
      snapshotKey: 'c1-rootfs',
      labels: { team: 'a' },
      extensions: { note: { typeUrl: 'example.com/Note', value: Buffer.from('hello') } },
      sandbox: '',
    };
    expect(created).toMatchObject(expected);
    expect(created.createdAt.getTime()).toBe(created.updatedAt.getTime());
    expect(Math.abs(created.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    const got = await berth.containers.get('c1');
    expect(got).toEqual(created);
    expect(Buffer.from(got.spec!.value).toString('utf8')).toBe(specJson);

    expect(await failureKind(() => berth.containers.create({ id: 'c1', runtime }))).toBe('already-exists');
    expect(await failureKind(() => berth.containers.get('absent'))).toBe('not-found');
  });

  it('list filters by id, image, runtime.name, labels and snapshotter', async () => {
    await berth.containers.create({ id: 'web', runtime, image: 'nginx:1', snapshotter: 'overlayfs', labels: { app: 'web' } });
    await berth.containers.create({ id: 'db', runtime, image: 'postgres:16', snapshotter: 'native', labels: { app: 'db' } });
    await berth.containers.create({ id: 'vm', runtime: { name: 'io.containerd.kata.v2' } });
    const ids = async (...filters: string[]) => (await berth.containers.list(filters)).map((c) => c.id);
    expect(await ids()).toEqual(['db', 'vm', 'web']);
    expect(await ids('id==web')).toEqual(['web']);
    expect(await ids('image==postgres:16')).toEqual(['db']);
    expect(await ids('runtime.name==io.containerd.kata.v2')).toEqual(['vm']);
    expect(await ids('labels."app"==web')).toEqual(['web']);
    expect(await ids('snapshotter==native')).toEqual(['db']);
    expect(await ids('labels.app==web', 'labels.app==db')).toEqual(['db', 'web']);
    expect(await failureKind(() => berth.containers.list(['==x']))).toBe('invalid-argument');
  });

  it('update by field paths, a full update keeps what it does not carry, runtime and snapshotter are immutable', async () => {
    await berth.containers.create({ id: 'u1', runtime, image: 'a:1', spec, snapshotter: 'overlayfs', snapshotKey: 'k1', labels: { x: '1', y: '2' } });
    const byPath = await berth.containers.update({ id: 'u1', labels: { y: '3', z: '4' }, image: 'ignored' }, ['labels.y', 'labels.z', 'labels.x']);
    expect(byPath).toMatchObject({ labels: { y: '3', z: '4' }, image: 'a:1', snapshotKey: 'k1', spec });

    const full = await berth.containers.update({ id: 'u1', image: 'a:2', snapshotKey: 'k2' });
    expect(full).toMatchObject({ image: 'a:2', snapshotKey: 'k2', labels: { y: '3', z: '4' }, spec });
    expect(full.updatedAt.getTime()).toBeGreaterThanOrEqual(byPath.updatedAt.getTime());

    const newSpec: AnyMessage = { typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from('{"ociVersion":"1.1.0"}') };
    expect((await berth.containers.update({ id: 'u1', spec: newSpec }, ['spec'])).spec).toEqual(newSpec);

    expect(await failureKind(() => berth.containers.update({ id: 'u1', runtime: { name: 'other' } }))).toBe('invalid-argument');
    expect(await failureKind(() => berth.containers.update({ id: 'u1', snapshotter: 'native' }))).toBe('invalid-argument');
    expect(await failureKind(() => berth.containers.update({ id: 'u1', runtime: { name: 'other' } }, ['runtime']))).toBe('invalid-argument');
    expect(await failureKind(() => berth.containers.update({ id: 'u1', snapshotter: 'native' }, ['snapshotter']))).toBe('invalid-argument');
    expect(await berth.containers.get('u1')).toMatchObject({ runtime, snapshotter: 'overlayfs', image: 'a:2' });
    expect(await failureKind(() => berth.containers.update({ id: 'absent', image: 'x' }))).toBe('not-found');
  });

  it('label sets and removes labels; delete removes the container', async () => {
    await berth.containers.create({ id: 'l1', runtime, labels: { keep: 'yes' } });
    expect((await berth.containers.label('l1', { a: '1', b: '2' })).labels).toEqual({ keep: 'yes', a: '1', b: '2' });
    expect((await berth.containers.label('l1', { a: '' })).labels).toEqual({ keep: 'yes', b: '2' });
    expect((await berth.containers.get('l1')).labels).toEqual({ keep: 'yes', b: '2' });

    await berth.containers.delete('l1');
    expect(await failureKind(() => berth.containers.get('l1'))).toBe('not-found');
    expect(await failureKind(() => berth.containers.delete('l1'))).toBe('not-found');
  });

  it('bad ids are InvalidArgument and nothing is written', async () => {
    for (const id of ['', '../x', 'a/b', '-lead', 'x'.repeat(77)]) {
      expect(await failureKind(() => berth.containers.create({ id, runtime }))).toBe('invalid-argument');
    }
    expect(await failureKind(() => berth.containers.create({ id: 'no-runtime', runtime: { name: '' } }))).toBe('invalid-argument');
    expect(await berth.containers.list()).toEqual([]);
    expect((await berth.containers.create({ id: 'y'.repeat(76), runtime })).id).toHaveLength(76);
  });

  it('namespaces are isolated', async () => {
    const other = berth.withNamespace('other');
    await berth.containers.create({ id: 'same', runtime, image: 'in-default' });
    expect(await other.containers.list()).toEqual([]);
    expect(await failureKind(() => other.containers.get('same'))).toBe('not-found');
    await other.containers.create({ id: 'same', runtime, image: 'in-other' });
    expect((await berth.containers.get('same')).image).toBe('in-default');
    expect((await other.containers.get('same')).image).toBe('in-other');
  });

  it('a container keeps its snapshot from the collector until it is deleted', async () => {
    const overlay = berth.snapshots('overlayfs');
    await overlay.prepare('kept-rootfs', '');
    await overlay.prepare('loose-rootfs', '');
    await berth.containers.create({ id: 'g1', runtime, snapshotter: 'overlayfs', snapshotKey: 'kept-rootfs' });
    await collectGarbage(berth);
    expect(await snapshotExists(berth, 'overlayfs', 'loose-rootfs')).toBe(false);
    expect(await snapshotExists(berth, 'overlayfs', 'kept-rootfs')).toBe(true);
    await berth.containers.delete('g1');
    await collectGarbage(berth);
    expect(await snapshotExists(berth, 'overlayfs', 'kept-rootfs')).toBe(false);
  });
});
