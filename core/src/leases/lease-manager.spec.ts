import { sha256Digest } from '../content/digest';
import { failure, useContentStack } from '../metadata/test-fixtures/content-stack';
import { formatRfc3339, leaseExpiry } from './expiry';
import { validateLeaseId } from './lease-manager';
import { GcLabels } from './types';

describe('SqliteLeaseManager', () => {
  const stack = useContentStack();
  const leases = () => stack().leases;

  describe('create', () => {
    it('stores id, creation time and labels', async () => {
      const { clock } = stack();
      const lease = await leases().create('default', { id: 'mine', labels: { team: 'a' } });
      expect(lease).toEqual({ id: 'mine', createdAt: new Date(clock.now), labels: { team: 'a' } });
      expect(await leases().list('default')).toEqual([lease]);
    });

    it('generates an id when none is given', async () => {
      const a = await leases().create('default');
      const b = await leases().create('default');
      expect(a.id).not.toBe(b.id);
      expect(() => validateLeaseId(a.id)).not.toThrow();
    });

    it('turns expiresAt into an RFC 3339 containerd.io/gc.expire label', async () => {
      const expiresAt = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678));
      const lease = await leases().create('default', { id: 'l', expiresAt });
      expect(lease.labels).toEqual({ [GcLabels.expire]: '2030-01-02T03:04:05Z' });
      expect(leaseExpiry(lease.labels)).toBe(Date.UTC(2030, 0, 2, 3, 4, 5));
      expect(formatRfc3339(expiresAt)).toBe('2030-01-02T03:04:05Z');
    });

    it('accepts the ids the Go client generates', async () => {
      // leases.WithRandomID: "<nanoseconds>-<base64url of 3 bytes>"
      for (const id of ['123456789-ab_-', '42-_-_-', '7-AbC=']) {
        await leases().create('default', { id });
      }
      expect((await leases().list('default')).map((l) => l.id)).toEqual(['123456789-ab_-', '42-_-_-', '7-AbC=']);
    });

    it('refuses ids with spaces, slashes or control characters, and overlong ones', async () => {
      for (const id of ['has space', 'a/b', 'tab\there', 'x'.repeat(257)]) {
        expect((await failure(() => leases().create('default', { id }))).kind).toBe('invalid-argument');
      }
    });

    it('refuses a taken id with AlreadyExists, per namespace', async () => {
      await leases().create('a', { id: 'same' });
      expect(await failure(() => leases().create('a', { id: 'same' }))).toEqual({
        kind: 'already-exists',
        message: 'lease "same": already exists',
      });
      await leases().create('b', { id: 'same' });
    });

    it('refuses bad labels and a bad namespace', async () => {
      expect((await failure(() => leases().create('a', { labels: { k: 'v'.repeat(5000) } }))).kind).toBe('invalid-argument');
      expect((await failure(() => leases().create('no/pe'))).kind).toBe('invalid-argument');
      expect(await leases().list('a')).toEqual([]);
    });

    it('creates the namespace if needed', async () => {
      await leases().create('implicit');
      expect((await stack().metadata.namespaces.list()).map((n) => n.name)).toEqual(['implicit']);
    });
  });

  it('lists per namespace, filtered by id and labels', async () => {
    await leases().create('a', { id: 'one', labels: { kind: 'pull' } });
    await leases().create('a', { id: 'two', labels: { kind: 'unpack', 'example.com/x': 'y' } });
    await leases().create('b', { id: 'three', labels: { kind: 'pull' } });
    const ids = async (filters?: string[]) => (await leases().list('a', filters)).map((l) => l.id);
    expect(await ids()).toEqual(['one', 'two']);
    expect(await ids(['labels.kind==pull'])).toEqual(['one']);
    expect(await ids(['id==two'])).toEqual(['two']);
    expect(await ids(['id==one', 'labels."example.com/x"==y'])).toEqual(['one', 'two']);
    expect(await ids(['id~=^t'])).toEqual(['two']);
    expect((await failure(() => leases().list('a', ['id==']))).kind).toBe('invalid-argument');
  });

  describe('delete', () => {
    it('is NotFound for an unknown lease', async () => {
      expect(await failure(() => leases().delete('a', 'ghost'))).toEqual({
        kind: 'not-found',
        message: 'lease "ghost": not found',
      });
    });

    it('schedules a collection, or with sync runs one before returning', async () => {
      const { gc } = stack();
      const schedule = jest.spyOn(gc, 'schedule');
      const collect = jest.spyOn(gc, 'collect');
      await leases().create('a', { id: 'x' });
      await leases().create('a', { id: 'y' });
      await leases().delete('a', 'x');
      expect(schedule).toHaveBeenCalledTimes(1);
      expect(collect).not.toHaveBeenCalled();
      await leases().delete('a', 'y', { sync: true });
      expect(collect).toHaveBeenCalledTimes(1);
      expect(await leases().list('a')).toEqual([]);
    });
  });

  describe('resources', () => {
    const digest = sha256Digest('blob');

    it('adds, lists and deletes, idempotently', async () => {
      await leases().create('a', { id: 'l' });
      await leases().addResource('a', 'l', { type: 'content', id: digest });
      await leases().addResource('a', 'l', { type: 'content', id: digest });
      await leases().addResource('a', 'l', { type: 'ingests', id: 'layer-ref' });
      await leases().addResource('a', 'l', { type: 'snapshots/overlayfs', id: 'extract-1 sha256:abc' });
      expect(await leases().listResources('a', 'l')).toEqual([
        { type: 'content', id: digest },
        { type: 'ingests', id: 'layer-ref' },
        { type: 'snapshots/overlayfs', id: 'extract-1 sha256:abc' },
      ]);
      await leases().deleteResource('a', 'l', { type: 'ingests', id: 'layer-ref' });
      await leases().deleteResource('a', 'l', { type: 'ingests', id: 'layer-ref' });
      expect((await leases().listResources('a', 'l')).map((r) => r.type)).toEqual(['content', 'snapshots/overlayfs']);
    });

    it('goes with its lease', async () => {
      await leases().create('a', { id: 'l' });
      await leases().addResource('a', 'l', { type: 'content', id: digest });
      await leases().delete('a', 'l');
      await leases().create('a', { id: 'l' });
      expect(await leases().listResources('a', 'l')).toEqual([]);
    });

    it('needs an existing lease in the same namespace', async () => {
      await leases().create('a', { id: 'l' });
      const resource = { type: 'content', id: digest };
      for (const action of [
        () => leases().addResource('b', 'l', resource),
        () => leases().deleteResource('b', 'l', resource),
        () => leases().listResources('b', 'l'),
      ]) {
        expect(await failure(action)).toEqual({ kind: 'not-found', message: 'lease "l": not found' });
      }
    });

    it('checks types and ids as containerd does', async () => {
      await leases().create('a', { id: 'l' });
      const add = (type: string, id: string) => failure(() => leases().addResource('a', 'l', { type, id }));
      expect((await add('content', 'not-a-digest')).kind).toBe('invalid-argument');
      expect((await add('content/extra', digest)).kind).toBe('invalid-argument');
      expect((await add('snapshots', 'key')).kind).toBe('invalid-argument');
      expect((await add('snapshots/a/b', 'key')).kind).toBe('invalid-argument');
      expect((await add('ingests', '')).kind).toBe('invalid-argument');
      expect(await add('images', 'docker.io/library/busybox:latest')).toEqual({
        kind: 'not-implemented',
        message: 'resource type "images" not supported yet',
      });
    });
  });
});
