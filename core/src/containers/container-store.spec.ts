import { containerdEvents } from '@berth/proto';
import { GcLabels } from '../leases/types';
import { SqliteSnapshotService } from '../metadata/snapshots';
import { commit, digestsIn, failure, take, useContentStack } from '../metadata/test-fixtures/content-stack';
import { MemorySnapshotter } from '../metadata/test-fixtures/memory-snapshotter';
import { SqliteContainerStore } from './container-store';
import type { AnyMessage } from '../events/types';
import { OCI_SPEC_TYPE_URL, type NewContainer } from './types';

const specJson = '{"ociVersion":"1.0.2-dev","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}}';
const spec = (json = specJson): AnyMessage => ({ typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from(json) });
const runcOptions: AnyMessage = { typeUrl: 'containerd.runc.v1.Options', value: Buffer.from([0x12, 0x04, 0x72, 0x75, 0x6e, 0x63]) };

function newContainer(id: string, extra: Partial<NewContainer> = {}): NewContainer {
  return { id, runtime: { name: 'io.containerd.runc.v2' }, ...extra };
}

describe('SqliteContainerStore', () => {
  const stack = useContentStack();
  let store: SqliteContainerStore;
  beforeEach(() => {
    const { metadata, events, gc, clock } = stack();
    store = new SqliteContainerStore({ metadata, events, gc, clock: clock.read });
  });

  const count = (table: string) => stack().metadata.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;

  describe('create and get', () => {
    it('stores every field, the spec and runtime options byte for byte, and stamps the times', async () => {
      const { clock } = stack();
      const created = await store.create('default', {
        id: 'c1',
        image: 'docker.io/library/busybox:latest',
        runtime: { name: 'io.containerd.runc.v2', options: runcOptions },
        spec: spec(),
        snapshotter: 'overlayfs',
        snapshotKey: 'c1',
        labels: { team: 'a', dropped: '' },
        extensions: { note: { typeUrl: 'example.com/Note', value: Buffer.from('hi') } },
      });
      expect(created).toEqual({
        id: 'c1',
        image: 'docker.io/library/busybox:latest',
        runtime: { name: 'io.containerd.runc.v2', options: runcOptions },
        spec: spec(),
        snapshotter: 'overlayfs',
        snapshotKey: 'c1',
        labels: { team: 'a' },
        extensions: { note: { typeUrl: 'example.com/Note', value: Buffer.from('hi') } },
        sandbox: '',
        createdAt: new Date(clock.now),
        updatedAt: new Date(clock.now),
      });
      expect(Buffer.from(created.spec!.value).toString()).toBe(specJson);
      expect(await store.get('default', 'c1')).toEqual(created);
    });

    it('takes a bare container: no spec, image, snapshot or labels', async () => {
      const created = await store.create('default', newContainer('bare'));
      expect(created).toMatchObject({ id: 'bare', image: '', snapshotter: '', snapshotKey: '', labels: {}, extensions: {} });
      expect(created.spec).toBeUndefined();
      expect(created.runtime).toEqual({ name: 'io.containerd.runc.v2' });
    });

    it('refuses a taken id with AlreadyExists, per namespace', async () => {
      await store.create('a', newContainer('c1', { image: 'first' }));
      expect(await failure(() => store.create('a', newContainer('c1', { image: 'second' })))).toEqual({
        kind: 'already-exists',
        message: 'container "c1": already exists',
      });
      await store.create('b', newContainer('c1', { image: 'second' }));
      expect((await store.get('a', 'c1')).image).toBe('first');
      expect((await store.get('b', 'c1')).image).toBe('second');
    });

    it('is NotFound for an id the namespace lacks', async () => {
      await store.create('a', newContainer('only-in-a'));
      expect(await failure(() => store.get('b', 'only-in-a'))).toEqual({
        kind: 'not-found',
        message: 'container "only-in-a" in namespace "b": not found',
      });
    });

    it.each([
      ['empty', '', 'container id: must not be empty'],
      ['a path', '../x', 'container id "../x": must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$'],
      ['a slash', 'a/b', 'container id "a/b": must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$'],
      ['a leading dot', '.hidden', 'container id ".hidden": must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$'],
      ['a space', 'a b', 'container id "a b": must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$'],
      ['77 characters', 'x'.repeat(77), `container id ${JSON.stringify('x'.repeat(77))}: longer than 76 characters`],
    ])('refuses an id that is %s with InvalidArgument, writing nothing', async (_what, id, message) => {
      expect(await failure(() => store.create('fresh', newContainer(id)))).toEqual({ kind: 'invalid-argument', message });
      expect(count('containers')).toBe(0);
      // Not even the namespace comes into being.
      expect(await stack().metadata.namespaces.list()).toEqual([]);
    });

    it('takes an id of exactly 76 characters', async () => {
      const id = `a${'-b'.repeat(37)}c`;
      expect(id).toHaveLength(76);
      expect((await store.create('default', newContainer(id))).id).toBe(id);
    });

    it('refuses a missing runtime name, bad labels, an empty extension name and a bad namespace', async () => {
      expect(await failure(() => store.create('default', { id: 'c', runtime: { name: '' } }))).toEqual({
        kind: 'invalid-argument',
        message: 'container "c": must specify a runtime name',
      });
      expect((await failure(() => store.create('default', newContainer('c', { labels: { k: 'v'.repeat(5000) } })))).kind).toBe(
        'invalid-argument',
      );
      expect(
        await failure(() => store.create('default', newContainer('c', { extensions: { '': { typeUrl: 't', value: Buffer.alloc(0) } } }))),
      ).toEqual({ kind: 'invalid-argument', message: 'container "c": extension names must not be empty' });
      expect((await failure(() => store.create('bad/ns', newContainer('c')))).kind).toBe('invalid-argument');
      expect(count('containers')).toBe(0);
    });
  });

  describe('update', () => {
    beforeEach(async () => {
      await store.create('default', {
        id: 'c1',
        image: 'busybox:1',
        runtime: { name: 'io.containerd.runc.v2' },
        spec: spec(),
        snapshotter: 'overlayfs',
        snapshotKey: 'c1',
        labels: { keep: 'yes', change: 'old', drop: 'x' },
        extensions: { one: { typeUrl: 't/One', value: Buffer.from('1') } },
      });
    });

    it('sets and removes single labels with labels.<k>, keeping the rest', async () => {
      const updated = await store.update('default', { id: 'c1', labels: { change: 'new', added: 'a' } }, [
        'labels.change',
        'labels.added',
        'labels.drop',
      ]);
      expect(updated.labels).toEqual({ keep: 'yes', change: 'new', added: 'a' });
      expect(updated.image).toBe('busybox:1');
      expect(updated.spec).toEqual(spec());
    });

    it('replaces labels, image, spec, snapshot key and extensions by their paths', async () => {
      const { clock } = stack();
      const createdAt = (await store.get('default', 'c1')).createdAt;
      clock.advance(1000);
      const newSpec = spec('{"ociVersion":"1.0.2-dev"}');
      const updated = await store.update(
        'default',
        {
          id: 'c1',
          labels: { only: 'this' },
          image: 'busybox:2',
          spec: newSpec,
          snapshotKey: 'c1-b',
          extensions: { two: { typeUrl: 't/Two', value: Buffer.from('2') } },
        },
        ['labels', 'image', 'spec', 'snapshotkey', 'extensions'],
      );
      expect(updated).toMatchObject({
        labels: { only: 'this' },
        image: 'busybox:2',
        spec: newSpec,
        snapshotKey: 'c1-b',
        extensions: { two: { typeUrl: 't/Two', value: Buffer.from('2') } },
        createdAt,
        updatedAt: new Date(clock.now),
      });
      expect(await store.get('default', 'c1')).toEqual(updated);
    });

    it('sets and removes single extensions with extensions.<k>', async () => {
      const updated = await store.update(
        'default',
        { id: 'c1', extensions: { two: { typeUrl: 't/Two', value: Buffer.from('2') } } },
        ['extensions.two', 'extensions.one'],
      );
      expect(updated.extensions).toEqual({ two: { typeUrl: 't/Two', value: Buffer.from('2') } });
      expect(count('container_extensions')).toBe(1);
    });

    it('without paths replaces the fields given and keeps the others', async () => {
      const updated = await store.update('default', { id: 'c1', image: 'busybox:3', labels: { fresh: '1' } });
      expect(updated).toMatchObject({ image: 'busybox:3', labels: { fresh: '1' }, snapshotKey: 'c1', spec: spec() });
      expect(Object.keys(updated.extensions)).toEqual(['one']);
    });

    it('without paths accepts the same runtime and snapshotter, and refuses different ones (immutable)', async () => {
      const same = await store.update('default', {
        id: 'c1',
        runtime: { name: 'io.containerd.runc.v2' },
        snapshotter: 'overlayfs',
        image: 'busybox:4',
      });
      expect(same.image).toBe('busybox:4');
      expect(await failure(() => store.update('default', { id: 'c1', runtime: { name: 'io.containerd.kata.v2' }, image: 'x' }))).toEqual({
        kind: 'invalid-argument',
        message: 'container "c1": runtime name is immutable',
      });
      expect(await failure(() => store.update('default', { id: 'c1', snapshotter: 'native', image: 'x' }))).toEqual({
        kind: 'invalid-argument',
        message: 'container "c1": snapshotter is immutable',
      });
      expect((await store.get('default', 'c1')).image).toBe('busybox:4');
    });

    it.each(['runtime', 'snapshotter', 'id', 'createdat', 'sandbox', 'bogus'])('refuses the path %s', async (path) => {
      expect(
        await failure(() => store.update('default', { id: 'c1', runtime: { name: 'other' }, snapshotter: 'native' }, [path])),
      ).toEqual({ kind: 'invalid-argument', message: `cannot update ${JSON.stringify(path)} field on container "c1"` });
      expect(await store.get('default', 'c1')).toMatchObject({ runtime: { name: 'io.containerd.runc.v2' }, snapshotter: 'overlayfs' });
    });

    it('changes nothing when a label fails validation', async () => {
      const before = await store.get('default', 'c1');
      const result = await failure(() => store.update('default', { id: 'c1', labels: { big: 'v'.repeat(5000) } }, ['labels.big']));
      expect(result.kind).toBe('invalid-argument');
      expect(await store.get('default', 'c1')).toEqual(before);
    });

    it('is NotFound for an absent container and InvalidArgument without an id', async () => {
      expect(await failure(() => store.update('default', { id: 'ghost', image: 'x' }))).toEqual({
        kind: 'not-found',
        message: 'container "ghost" in namespace "default": not found',
      });
      expect((await failure(() => store.update('other', { id: 'c1', image: 'x' }))).kind).toBe('not-found');
      expect((await failure(() => store.update('default', { id: '' }))).kind).toBe('invalid-argument');
    });
  });

  describe('list', () => {
    beforeEach(async () => {
      await store.create('default', newContainer('web', { image: 'nginx:1', snapshotter: 'overlayfs', labels: { app: 'web', 'com.example.tier': 'front' } }));
      await store.create('default', newContainer('db', { image: 'postgres:16', snapshotter: 'native', labels: { app: 'db' } }));
      await store.create('default', { id: 'vm', runtime: { name: 'io.containerd.kata.v2' }, labels: {} });
      await store.create('other', newContainer('elsewhere', { image: 'nginx:1' }));
    });

    const ids = async (filters: string[] = []) => (await store.list('default', filters)).map((c) => c.id);

    it('lists the namespace only, by id', async () => {
      expect(await ids()).toEqual(['db', 'vm', 'web']);
      expect((await store.list('other')).map((c) => c.id)).toEqual(['elsewhere']);
      expect(await store.list('empty')).toEqual([]);
    });

    it.each([
      [['id==web'], ['web']],
      [['image==nginx:1'], ['web']],
      [['image'], ['db', 'web']],
      [['runtime.name==io.containerd.kata.v2'], ['vm']],
      [['runtime.name~=runc'], ['db', 'web']],
      [['labels.app==db'], ['db']],
      [['labels."com.example.tier"==front'], ['web']],
      [['labels.com.example.tier'], ['web']],
      [['snapshotter==native'], ['db']],
      [['snapshotter'], ['db', 'web']],
      [['id==web', 'id==vm'], ['vm', 'web']],
      [['labels.app==web,image==postgres:16'], []],
      [['id!=web'], ['db', 'vm']],
    ])('filters %j', async (filters, expected) => {
      expect(await ids(filters)).toEqual(expected);
    });

    it('refuses a filter it cannot parse', async () => {
      expect((await failure(() => store.list('default', ['==web']))).kind).toBe('invalid-argument');
    });
  });

  describe('delete', () => {
    it('removes the container with its labels and extensions, and is NotFound after', async () => {
      await store.create('default', newContainer('c1', { labels: { a: '1' }, extensions: { e: { typeUrl: 't', value: Buffer.from('x') } } }));
      await store.create('other', newContainer('c1'));
      await store.delete('default', 'c1');
      expect(count('container_labels')).toBe(0);
      expect(count('container_extensions')).toBe(0);
      expect(await failure(() => store.get('default', 'c1'))).toMatchObject({ kind: 'not-found' });
      expect(await failure(() => store.delete('default', 'c1'))).toEqual({
        kind: 'not-found',
        message: 'container "c1" in namespace "default": not found',
      });
      expect((await store.get('other', 'c1')).id).toBe('c1');
    });
  });

  it('publishes /containers/create, update and delete as containerd.events messages', async () => {
    const subscription = stack().events.subscribe(['topic~="^/containers/"']);
    await failure(() => store.create('ns1', newContainer('../bad')));
    await store.create('ns1', newContainer('c1', { image: 'busybox:1', runtime: { name: 'io.containerd.runc.v2', options: runcOptions } }));
    await store.update('ns1', { id: 'c1', labels: { a: '1' }, snapshotKey: 'snap' }, ['labels.a', 'snapshotkey']);
    await store.delete('ns1', 'c1');
    const envelopes = await take(subscription, 3);
    await subscription.return?.();

    expect(envelopes.map((e) => [e.namespace, e.topic, e.event.typeUrl])).toEqual([
      ['ns1', '/containers/create', 'containerd.events.ContainerCreate'],
      ['ns1', '/containers/update', 'containerd.events.ContainerUpdate'],
      ['ns1', '/containers/delete', 'containerd.events.ContainerDelete'],
    ]);
    expect(containerdEvents.ContainerCreate.decode(envelopes[0].event.value)).toEqual({
      id: 'c1',
      image: 'busybox:1',
      runtime: { name: 'io.containerd.runc.v2', options: runcOptions },
    });
    expect(containerdEvents.ContainerUpdate.decode(envelopes[1].event.value)).toEqual({
      id: 'c1',
      image: 'busybox:1',
      labels: { a: '1' },
      snapshotKey: 'snap',
    });
    expect(containerdEvents.ContainerDelete.decode(envelopes[2].event.value)).toEqual({ id: 'c1' });
  });

  it('keeps its namespace from being deleted until it is gone', async () => {
    await store.create('ns', newContainer('c1'));
    expect(await failure(() => stack().metadata.namespaces.delete('ns'))).toEqual({
      kind: 'failed-precondition',
      message: 'namespace "ns" must be empty, but it still has containers',
    });
    await store.delete('ns', 'c1');
    await stack().metadata.namespaces.delete('ns');
    expect(await stack().metadata.namespaces.list()).toEqual([]);
  });

  describe('as a garbage collection root', () => {
    let backend: MemorySnapshotter;
    let snapshots: SqliteSnapshotService;
    beforeEach(() => {
      backend = new MemorySnapshotter();
      const { metadata, gc } = stack();
      snapshots = new SqliteSnapshotService({ metadata, snapshotters: new Map([['mem', backend]]), defaultSnapshotter: 'mem', gc });
    });
    afterEach(() => snapshots.close());

    const keys = async (namespace: string) => {
      const out: string[] = [];
      for await (const info of snapshots.forNamespace(namespace, 'mem').walk()) out.push(info.name);
      return out.sort();
    };

    it('keeps its snapshot (snapshotter + snapshotKey) while it exists, in its own namespace only', async () => {
      await snapshots.forNamespace('a', 'mem').prepare('c1-rootfs', '');
      await snapshots.forNamespace('b', 'mem').prepare('c1-rootfs', '');
      await store.create('a', newContainer('c1', { snapshotter: 'mem', snapshotKey: 'c1-rootfs' }));
      await stack().gc.collect();
      // Nothing roots b's snapshot of the same name.
      expect(await keys('a')).toEqual(['c1-rootfs']);
      expect(await keys('b')).toEqual([]);

      await store.delete('a', 'c1');
      await stack().gc.collect();
      expect(await keys('a')).toEqual([]);
      expect([...backend.snapshots.keys()]).toEqual([]);
    });

    it('keeps what its containerd.io/gc.ref.* labels name, until the label goes', async () => {
      const content = stack().content.forNamespace('a');
      const digest = await commit(content, 'config blob');
      await snapshots.forNamespace('a', 'mem').prepare('extra', '');
      await store.create('a', newContainer('c1', {
        labels: { [`${GcLabels.refContent}.config`]: digest, [`${GcLabels.refSnapshot}.mem`]: 'extra' },
      }));
      await stack().gc.collect();
      expect(await digestsIn(stack().raw)).toEqual([digest]);
      expect(await keys('a')).toEqual(['extra']);

      await store.update('a', { id: 'c1', labels: {} }, ['labels']);
      await stack().gc.collect();
      expect(await digestsIn(stack().raw)).toEqual([]);
      expect(await keys('a')).toEqual([]);
    });
  });
});
