import { imageEventsV1 } from '@berth/proto';
import { sha256Digest } from '../content/digest';
import type { Descriptor } from '../content/types';
import { failure, take, useContentStack } from '../metadata/test-fixtures/content-stack';
import { validateImageName } from './image-store';

const manifestType = 'application/vnd.oci.image.manifest.v1+json';
const indexType = 'application/vnd.oci.image.index.v1+json';
const target = (text: string, mediaType = manifestType): Descriptor => ({
  mediaType,
  digest: sha256Digest(text),
  size: text.length,
});

describe('SqliteImageStore', () => {
  const stack = useContentStack();
  const images = () => stack().images;

  describe('create and get', () => {
    it('stores name, target, labels and times', async () => {
      const { clock } = stack();
      const created = await images().create('default', {
        name: 'docker.io/library/busybox:latest',
        target: { ...target('busybox'), annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
        labels: { team: 'a', dropped: '' },
      });
      expect(created).toEqual({
        name: 'docker.io/library/busybox:latest',
        target: { ...target('busybox'), annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
        labels: { team: 'a' },
        createdAt: new Date(clock.now),
        updatedAt: new Date(clock.now),
      });
      expect(await images().get('default', 'docker.io/library/busybox:latest')).toEqual(created);
    });

    it('omits empty annotations from the target', async () => {
      const created = await images().create('default', { name: 'plain:1', target: target('plain') });
      expect(created.target).toEqual(target('plain'));
    });

    it('refuses a taken name with AlreadyExists, per namespace', async () => {
      await images().create('a', { name: 'x:1', target: target('x') });
      expect(await failure(() => images().create('a', { name: 'x:1', target: target('y') }))).toEqual({
        kind: 'already-exists',
        message: 'image "x:1": already exists',
      });
      await images().create('b', { name: 'x:1', target: target('y') });
      expect((await images().get('a', 'x:1')).target.digest).toBe(sha256Digest('x'));
    });

    it('is NotFound for a name the namespace lacks', async () => {
      await images().create('a', { name: 'only-in-a:1', target: target('a') });
      expect(await failure(() => images().get('b', 'only-in-a:1'))).toEqual({
        kind: 'not-found',
        message: 'image "only-in-a:1": not found',
      });
    });

    it('validates name, target and labels', async () => {
      const create = (image: Parameters<ReturnType<typeof images>['create']>[1]) =>
        failure(() => images().create('default', image));
      const good = target('good');
      expect((await create({ name: '', target: good })).message).toBe('image name must not be empty');
      expect((await create({ name: 'has space:1', target: good })).kind).toBe('invalid-argument');
      expect((await create({ name: 'x:1', target: { ...good, digest: 'sha256:short' } })).kind).toBe('invalid-argument');
      expect((await create({ name: 'x:1', target: { ...good, mediaType: '' } })).kind).toBe('invalid-argument');
      expect((await create({ name: 'x:1', target: { ...good, size: -1 } })).kind).toBe('invalid-argument');
      expect((await create({ name: 'x:1', target: good, labels: { '': 'v' } })).kind).toBe('invalid-argument');
      expect(await images().list('default')).toEqual([]);
    });
  });

  it('accepts the names ctr and CRI store, refuses what no reference looks like', () => {
    for (const name of [
      'docker.io/library/busybox:latest',
      'localhost:5000/team/app:v1.2.3',
      'registry.example.com/app@sha256:' + 'a'.repeat(64),
      'app:tag@sha256:' + 'b'.repeat(64),
      'sha256:' + 'c'.repeat(64),
      '[::1]:5000/busybox:latest',
      'import-2024-01-01',
      'MyImage',
    ]) {
      expect(() => validateImageName(name)).not.toThrow();
    }
    for (const name of ['', ' x', 'x y', 'a//b', '/abs', 'trailing/', 'dangling:', 'dangling@', 'tab\t', 'é:1']) {
      expect(() => validateImageName(name)).toThrow(/image name/);
    }
  });

  describe('update', () => {
    const name = 'example.com/app:1';
    beforeEach(async () => {
      await images().create('default', {
        name,
        target: { ...target('v1'), annotations: { a: '1', b: '2' } },
        labels: { keep: 'k', change: 'c' },
      });
    });

    it('replaces labels and target when no field paths are given', async () => {
      stack().clock.advance(1000);
      const updated = await images().update('default', { name, labels: { only: 'this' }, target: target('v2', indexType) });
      expect(updated).toMatchObject({ labels: { only: 'this' }, target: target('v2', indexType) });
      expect(updated.updatedAt.getTime() - updated.createdAt.getTime()).toBe(1000);
    });

    it('updates single labels and annotations by field path', async () => {
      const updated = await images().update(
        'default',
        { name, labels: { change: 'new', added: 'x', ignored: 'y' }, target: { ...target('ignored'), annotations: { b: '', c: '3' } } },
        ['labels.change', 'labels.added', 'annotations.b', 'annotations.c'],
      );
      expect(updated.labels).toEqual({ keep: 'k', change: 'new', added: 'x' });
      expect(updated.target).toEqual({ ...target('v1'), annotations: { a: '1', c: '3' } });
    });

    it('replaces all labels, the target or all annotations by field path', async () => {
      expect((await images().update('default', { name, labels: { x: '1' } }, ['labels'])).labels).toEqual({ x: '1' });
      const retargeted = await images().update('default', { name, target: target('v3') }, ['target']);
      expect(retargeted.target).toEqual(target('v3'));
      expect(retargeted.labels).toEqual({ x: '1' });
      const annotated = await images().update('default', { name, target: { ...target('zzz'), annotations: { z: '9' } } }, ['annotations']);
      expect(annotated.target).toEqual({ ...target('v3'), annotations: { z: '9' } });
    });

    it('refuses unknown field paths and invalid results, changing nothing', async () => {
      const before = await images().get('default', name);
      expect(await failure(() => images().update('default', { name, labels: {} }, ['name']))).toEqual({
        kind: 'invalid-argument',
        message: `cannot update "name" field on image "${name}"`,
      });
      expect((await failure(() => images().update('default', { name }, ['target']))).kind).toBe('invalid-argument');
      expect((await failure(() => images().update('default', { name, target: { ...target('x'), size: -5 } }))).kind).toBe(
        'invalid-argument',
      );
      expect(await images().get('default', name)).toEqual(before);
    });

    it('is NotFound for an unknown image', async () => {
      expect((await failure(() => images().update('default', { name: 'nope:1', labels: {} }))).kind).toBe('not-found');
    });
  });

  it('lists per namespace, by name, filtered as containerd filters images', async () => {
    await images().create('a', { name: 'docker.io/library/busybox:latest', target: target('busybox', indexType), labels: { os: 'linux' } });
    await images().create('a', { name: 'docker.io/library/alpine:3', target: target('alpine'), labels: { os: 'linux', tier: 'base' } });
    await images().create('a', { name: 'example.com/win:1', target: { ...target('win'), annotations: { arch: 'amd64' } } });
    await images().create('b', { name: 'docker.io/library/busybox:latest', target: target('other') });
    const names = async (filters?: string[]) => (await images().list('a', filters)).map((i) => i.name);

    expect(await names()).toEqual(['docker.io/library/alpine:3', 'docker.io/library/busybox:latest', 'example.com/win:1']);
    expect(await names(['name==docker.io/library/busybox:latest'])).toEqual(['docker.io/library/busybox:latest']);
    expect(await names(['name~=^docker\\.io/'])).toEqual(['docker.io/library/alpine:3', 'docker.io/library/busybox:latest']);
    expect(await names([`target.digest==${sha256Digest('alpine')}`])).toEqual(['docker.io/library/alpine:3']);
    expect(await names([`target.mediatype==${indexType}`])).toEqual(['docker.io/library/busybox:latest']);
    expect(await names(['labels.os==linux,labels.tier==base'])).toEqual(['docker.io/library/alpine:3']);
    expect(await names(['labels.tier', 'annotations.arch==amd64'])).toEqual(['docker.io/library/alpine:3', 'example.com/win:1']);
    expect((await failure(() => images().list('a', ['name~=(']))).kind).toBe('invalid-argument');
  });

  it('publishes /images/create, update and delete with containerd.services.images.v1 events', async () => {
    const subscription = stack().events.subscribe(['topic~="^/images/"']);
    await images().create('ns1', { name: 'x:1', target: target('x'), labels: { a: '1' } });
    await images().update('ns1', { name: 'x:1', labels: { a: '2' } }, ['labels']);
    await images().delete('ns1', 'x:1');
    const envelopes = await take(subscription, 3);
    await subscription.return?.();

    expect(envelopes.map((e) => [e.namespace, e.topic, e.event.typeUrl])).toEqual([
      ['ns1', '/images/create', 'containerd.services.images.v1.ImageCreate'],
      ['ns1', '/images/update', 'containerd.services.images.v1.ImageUpdate'],
      ['ns1', '/images/delete', 'containerd.services.images.v1.ImageDelete'],
    ]);
    expect(imageEventsV1.ImageCreate.decode(envelopes[0].event.value)).toEqual({ name: 'x:1', labels: { a: '1' } });
    expect(imageEventsV1.ImageUpdate.decode(envelopes[1].event.value)).toEqual({ name: 'x:1', labels: { a: '2' } });
    expect(imageEventsV1.ImageDelete.decode(envelopes[2].event.value)).toEqual({ name: 'x:1' });
  });

  it('publishes nothing for a refused change', async () => {
    const subscription = stack().events.subscribe([]);
    await failure(() => images().create('ns1', { name: '', target: target('x') }));
    await failure(() => images().delete('ns1', 'ghost:1'));
    await images().create('ns1', { name: 'marker:1', target: target('m') });
    const [first] = await take(subscription, 1);
    await subscription.return?.();
    expect(first.topic).toBe('/images/create');
  });

  describe('delete', () => {
    it('removes the image and its labels', async () => {
      await images().create('a', { name: 'x:1', target: target('x'), labels: { l: '1' } });
      await images().delete('a', 'x:1');
      expect((await failure(() => images().get('a', 'x:1'))).kind).toBe('not-found');
      expect(stack().metadata.db.prepare('SELECT count(*) FROM image_labels').pluck().get()).toBe(0);
      expect((await failure(() => images().delete('a', 'x:1'))).kind).toBe('not-found');
    });

    it('schedules a collection, or with sync runs one before returning', async () => {
      const { gc } = stack();
      const schedule = jest.spyOn(gc, 'schedule');
      const collect = jest.spyOn(gc, 'collect');
      await images().create('a', { name: 'x:1', target: target('x') });
      await images().create('a', { name: 'y:1', target: target('y') });
      await images().delete('a', 'x:1');
      expect(schedule).toHaveBeenCalledTimes(1);
      await images().delete('a', 'y:1', { sync: true });
      expect(collect).toHaveBeenCalledTimes(1);
    });
  });
});
