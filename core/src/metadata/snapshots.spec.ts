import { containerdEvents } from '@berth/proto';
import { NotFoundError } from '../errdefs';
import { GcLabels } from '../leases/types';
import { SqliteSnapshotService } from './snapshots';
import { commit, failure, take, useContentStack } from './test-fixtures/content-stack';
import { MemorySnapshotter } from './test-fixtures/memory-snapshotter';
import type { SnapshotInfo } from '../snapshots/types';

const manifestType = 'application/vnd.oci.image.manifest.v1+json';

describe('SqliteSnapshotService', () => {
  const stack = useContentStack();
  let backend: MemorySnapshotter;
  let other: MemorySnapshotter;
  let service: SqliteSnapshotService;

  beforeEach(() => {
    backend = new MemorySnapshotter();
    other = new MemorySnapshotter();
    const { metadata, events, gc, clock } = stack();
    service = new SqliteSnapshotService({
      metadata,
      snapshotters: new Map([
        ['mem', backend],
        ['other', other],
      ]),
      defaultSnapshotter: 'mem',
      events,
      gc,
      clock: clock.read,
    });
  });
  afterEach(() => service.close());

  const ns = (namespace: string, lease?: string) => service.forNamespace(namespace, 'mem', { lease });

  async function names(items: AsyncIterable<SnapshotInfo>): Promise<string[]> {
    const out: string[] = [];
    for await (const info of items) out.push(info.name);
    return out.sort();
  }

  /** prepare + commit, as unpack does. */
  async function layer(namespace: string, name: string, parent = '', lease?: string): Promise<void> {
    await ns(namespace, lease).prepare(`extract-${name}`, parent);
    await ns(namespace, lease).commit(name, `extract-${name}`);
  }

  describe('namespaces', () => {
    it('gives each namespace its own keys, as <namespace>/<seq>/<key> in the backend', async () => {
      const a = await ns('a').prepare('k', '');
      const b = await ns('b').prepare('k', '');
      expect(a).toEqual([{ type: 'bind', source: '/memory/a/1/k', options: ['rbind', 'rw'] }]);
      expect(b).toEqual([{ type: 'bind', source: '/memory/b/2/k', options: ['rbind', 'rw'] }]);
      expect([...backend.snapshots.keys()].sort()).toEqual(['a/1/k', 'b/2/k']);
      expect(await ns('a').mounts('k')).toEqual(a);
      await ns('a').commit('c', 'k');
      expect([...backend.snapshots.keys()].sort()).toEqual(['a/3/c', 'b/2/k']);
      expect(await names(ns('a').walk())).toEqual(['c']);
      expect(await names(ns('b').walk())).toEqual(['k']);
      expect(await names(ns('c').walk())).toEqual([]);
      expect((await failure(() => ns('b').stat('c'))).kind).toBe('not-found');
    });

    it('finds parents only in the same namespace and snapshotter', async () => {
      await layer('a', 'base');
      expect(await failure(() => ns('b').prepare('x', 'base'))).toEqual({
        kind: 'not-found',
        message: 'parent snapshot "base": not found',
      });
      expect((await failure(() => service.forNamespace('a', 'other').prepare('x', 'base'))).kind).toBe('not-found');
      await ns('a').prepare('child', 'base');
      expect(backend.calls.find((c) => c.method === 'prepare' && c.args[0] === 'a/3/child')?.args[1]).toBe('a/2/base');
      expect(await ns('a').stat('child')).toMatchObject({ name: 'child', parent: 'base', kind: 'active' });
      await ns('a').prepare('active', '');
      expect((await failure(() => ns('a').prepare('y', 'active'))).kind).toBe('invalid-argument');
    });

    it('creates the namespace, and refuses to delete it while it has snapshots', async () => {
      const { metadata } = stack();
      await ns('fresh').prepare('k', '');
      expect((await metadata.namespaces.list()).map((n) => n.name)).toContain('fresh');
      expect(await failure(() => metadata.namespaces.delete('fresh'))).toEqual({
        kind: 'failed-precondition',
        message: 'namespace "fresh" must be empty, but it still has snapshots on "mem" snapshotter',
      });
      await ns('fresh').remove('k');
      await metadata.namespaces.delete('fresh');
    });

    it('uses the default snapshotter, and NotFound for one not loaded', async () => {
      expect(service.names()).toEqual(['mem', 'other']);
      expect(service.defaultName).toBe('mem');
      expect(service.forNamespace('a').snapshotter).toBe('mem');
      expect(() => service.forNamespace('a', 'zfs')).toThrow(NotFoundError);
      expect(() => service.forNamespace('a', 'zfs')).toThrow('snapshotter "zfs": not loaded');
      expect(() => service.forNamespace('bad/ns')).toThrow(/namespace/);
    });
  });

  describe('labels', () => {
    it('keeps every label in the db and gives the backend only containerd.io/snapshot/* and snapshot.ref', async () => {
      const labels = {
        'containerd.io/snapshot/remote': 'yes',
        'containerd.io/snapshot.ref': 'sha256:abc',
        [GcLabels.root]: 'x',
        mine: 'v',
      };
      await ns('a').prepare('k', '', { labels });
      expect(backend.snapshots.get('a/1/k')?.labels).toEqual({
        'containerd.io/snapshot/remote': 'yes',
        'containerd.io/snapshot.ref': 'sha256:abc',
      });
      expect((await ns('a').stat('k')).labels).toEqual(labels);
      const updated = await ns('a').update({ name: 'k', labels: { mine: '', 'containerd.io/snapshot/remote': 'no' } }, [
        'labels.mine',
        'labels.containerd.io/snapshot/remote',
      ]);
      expect(updated.labels).toEqual({ ...labels, mine: undefined, 'containerd.io/snapshot/remote': 'no' });
      expect(backend.snapshots.get('a/1/k')?.labels['containerd.io/snapshot/remote']).toBe('no');
      expect((await failure(() => ns('a').update({ name: 'k', labels: {} }, ['parent']))).kind).toBe('invalid-argument');
      expect((await failure(() => ns('a').update({ name: 'nope', labels: {} }))).kind).toBe('not-found');
    });

    it('shows labels the backend adds (e.g. overlay.upperdir) under the namespace name, parent and times', async () => {
      await ns('a').prepare('k', '');
      backend.snapshots.get('a/1/k')!.labels['containerd.io/snapshot/overlay.upperdir'] = '/x/1/fs';
      const info = await ns('a').stat('k');
      expect(info).toMatchObject({ name: 'k', parent: '', kind: 'active' });
      expect(info.labels).toEqual({ 'containerd.io/snapshot/overlay.upperdir': '/x/1/fs' });
      expect(info.createdAt.getTime()).toBe(stack().clock.now);
      const walked: SnapshotInfo[] = [];
      for await (const i of ns('a').walk(['labels."containerd.io/snapshot/overlay.upperdir"'])) walked.push(i);
      expect(walked).toEqual([info]);
    });
  });

  describe('leases', () => {
    const held = (lease: string) => stack().leases.listResources('a', lease);

    it('hold what a leased view creates: the key while active, the name once committed', async () => {
      await stack().leases.create('a', { id: 'pull' });
      await ns('a', 'pull').prepare('extract-1 sha256:c1', '');
      expect(await held('pull')).toEqual([{ type: 'snapshots/mem', id: 'extract-1 sha256:c1' }]);
      await ns('a', 'pull').commit('sha256:c1', 'extract-1 sha256:c1');
      expect(await held('pull')).toEqual([{ type: 'snapshots/mem', id: 'sha256:c1' }]);
      await ns('a', 'pull').view('v', 'sha256:c1');
      await ns('a', 'pull').remove('v');
      expect(await held('pull')).toEqual([{ type: 'snapshots/mem', id: 'sha256:c1' }]);
    });

    it('answer AlreadyExists for a chain the namespace has (containerd.io/snapshot.ref), and lease it', async () => {
      await layer('a', 'sha256:c1');
      await stack().leases.create('a', { id: 'pull' });
      const err = await failure(() =>
        ns('a', 'pull').prepare('extract-2 sha256:c1', '', { labels: { 'containerd.io/snapshot.ref': 'sha256:c1' } }),
      );
      expect(err).toEqual({ kind: 'already-exists', message: 'target snapshot "sha256:c1": already exists' });
      expect(await held('pull')).toEqual([{ type: 'snapshots/mem', id: 'sha256:c1' }]);
      expect(await names(ns('a').walk())).toEqual(['sha256:c1']);
      // A second prepare of a key that exists leases it too.
      await stack().leases.create('a', { id: 'again' });
      expect((await failure(() => ns('a', 'again').prepare('sha256:c1', ''))).kind).toBe('already-exists');
      expect(await held('again')).toEqual([{ type: 'snapshots/mem', id: 'sha256:c1' }]);
    });

    it('refuse a lease that does not exist, creating nothing', async () => {
      expect(await failure(() => ns('a', 'missing').prepare('k', ''))).toEqual({
        kind: 'not-found',
        message: 'lease "missing": not found',
      });
      expect(backend.snapshots.size).toBe(0);
    });
  });

  describe('events', () => {
    it('publishes /snapshot/prepare, /snapshot/commit and /snapshot/remove', async () => {
      const subscription = stack().events.subscribe(['topic~="^/snapshot/"']);
      await ns('a').prepare('k', '');
      await ns('a').view('v', '');
      await ns('a').commit('c', 'k');
      await ns('a').remove('c');
      const envelopes = await take(subscription, 3);
      await subscription.return?.();
      expect(envelopes.map((e) => [e.namespace, e.topic, e.event.typeUrl])).toEqual([
        ['a', '/snapshot/prepare', 'containerd.events.SnapshotPrepare'],
        ['a', '/snapshot/commit', 'containerd.events.SnapshotCommit'],
        ['a', '/snapshot/remove', 'containerd.events.SnapshotRemove'],
      ]);
      expect(containerdEvents.SnapshotPrepare.decode(envelopes[0].event.value)).toEqual({ key: 'k', parent: '' });
      expect(containerdEvents.SnapshotCommit.decode(envelopes[1].event.value)).toEqual({ key: 'k', name: 'c' });
      expect(containerdEvents.SnapshotRemove.decode(envelopes[2].event.value)).toEqual({ key: 'c' });
    });
  });

  describe('failures', () => {
    it('removes the backend snapshot again when its row cannot be written (parent removed meanwhile)', async () => {
      await layer('a', 'p');
      const original = backend.prepare.bind(backend);
      backend.prepare = async (key, parent, options) => {
        const mounts = await original(key, parent, options);
        await ns('a').remove('p');
        return mounts;
      };
      expect(await failure(() => ns('a').prepare('k', 'p'))).toEqual({
        kind: 'not-found',
        message: 'parent snapshot "p": not found',
      });
      expect(backend.keysOf('remove')).toEqual(['a/3/k']);
      expect(await names(ns('a').walk())).toEqual([]);
    });

    it('leaves no row when the backend refuses, and refuses a taken key before asking the backend', async () => {
      backend.failNext('prepare', new Error('disk full'));
      expect((await failure(() => ns('a').prepare('k', ''))).message).toBe('disk full');
      expect(await names(ns('a').walk())).toEqual([]);
      await ns('a').prepare('k', '');
      // Another namespace's key is no conflict; the same key is, before the backend is asked.
      const prepares = backend.keysOf('prepare').length;
      expect((await failure(() => ns('a').prepare('k', ''))).kind).toBe('already-exists');
      expect(backend.keysOf('prepare').length).toBe(prepares);
    });

    it('keeps the active snapshot when the backend commit fails', async () => {
      await ns('a').prepare('k', '');
      backend.failNext('commit', new Error('io error'));
      expect((await failure(() => ns('a').commit('c', 'k'))).message).toBe('io error');
      expect(await ns('a').stat('k')).toMatchObject({ kind: 'active' });
      expect((await failure(() => ns('a').stat('c'))).kind).toBe('not-found');
    });

    it('lets one of racing prepares of a key win and answers AlreadyExists to the others', async () => {
      const results = await Promise.allSettled([1, 2, 3, 4].map(() => ns('a').prepare('same', '')));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(backend.snapshots.size).toBe(1);
    });
  });

  describe('garbage collection', () => {
    it('removes snapshots nothing references, and their backend snapshots, then runs backend cleanup', async () => {
      await layer('a', 'orphan');
      await ns('a').prepare('unleased', '');
      const stats = await stack().gc.collect();
      expect(stats.snapshotsRemoved).toBe(2);
      expect(await names(ns('a').walk())).toEqual([]);
      expect(backend.snapshots.size).toBe(0);
      expect(backend.cleanups).toBeGreaterThanOrEqual(1);
      expect(other.cleanups).toBeGreaterThanOrEqual(1);
    });

    it('keeps leased and gc.root snapshots with their parents', async () => {
      await stack().leases.create('a', { id: 'l' });
      await layer('a', 'p');
      await layer('a', 'c', 'p', 'l');
      await layer('a', 'rooted');
      await ns('a').update({ name: 'rooted', labels: { [GcLabels.root]: 'yes' } });
      await layer('a', 'gone');
      await stack().gc.collect();
      expect(await names(ns('a').walk())).toEqual(['c', 'p', 'rooted']);
      await stack().leases.delete('a', 'l', { sync: true });
      expect(await names(ns('a').walk())).toEqual(['rooted']);
      expect([...backend.snapshots.keys()]).toEqual(['a/6/rooted']);
    });

    it('keeps an unpacked chain while an image config names it (gc.ref.snapshot), and removes it after the image', async () => {
      const { images, leases } = stack();
      await leases.create('a', { id: 'pull' });
      await layer('a', 'sha256:l1', '', 'pull');
      await layer('a', 'sha256:l2', 'sha256:l1', 'pull');
      await layer('b', 'sha256:l1');
      const content = stack().content.forNamespace('a', { lease: 'pull' });
      const config = await commit(content, 'config', { labels: { [`${GcLabels.refSnapshot}.mem`]: 'sha256:l2' } });
      const manifest = await commit(content, 'manifest', { labels: { [`${GcLabels.refContent}.config`]: config } });
      await images.create('a', { name: 'example.com/app:1', target: { mediaType: manifestType, digest: manifest, size: 8 } });
      await leases.delete('a', 'pull', { sync: true });
      expect(await names(ns('a').walk())).toEqual(['sha256:l1', 'sha256:l2']);
      // b's copy of l1 is not kept by a's image.
      expect(await names(ns('b').walk())).toEqual([]);
      await images.delete('a', 'example.com/app:1', { sync: true });
      expect(await names(ns('a').walk())).toEqual([]);
      expect(backend.snapshots.size).toBe(0);
    });

    it('deletes the backend snapshot of a removed one at the next collection, children first', async () => {
      await layer('a', 'p');
      await ns('a').update({ name: 'p', labels: { [GcLabels.root]: 'yes' } });
      await ns('a').prepare('k', 'p');
      await ns('a').update({ name: 'k', labels: { [GcLabels.root]: 'yes' } });
      await ns('a').remove('k');
      expect(await names(ns('a').walk())).toEqual(['p']);
      expect([...backend.snapshots.keys()].sort()).toEqual(['a/2/p', 'a/3/k']);
      await stack().gc.collect();
      expect([...backend.snapshots.keys()]).toEqual(['a/2/p']);
      // Leftovers of a crash (in the backend, no row) go too, a chain leaves first.
      await backend.prepare('a/90/left', '');
      await backend.commit('a/91/left', 'a/90/left');
      await backend.prepare('a/92/child', 'a/91/left');
      await stack().gc.collect();
      expect([...backend.snapshots.keys()]).toEqual(['a/2/p']);
    });

    it('never sweeps a snapshot a call is still creating', async () => {
      let resume: () => void = () => undefined;
      const slow = new MemorySnapshotter();
      const original = slow.commit.bind(slow);
      slow.commit = async (...args) => {
        await new Promise<void>((r) => (resume = r));
        return original(...args);
      };
      service.close();
      service = new SqliteSnapshotService({ metadata: stack().metadata, snapshotters: new Map([['mem', slow]]), gc: stack().gc });
      const sn = service.forNamespace('a', 'mem');
      await sn.prepare('k', '');
      const committing = sn.commit('c', 'k');
      await new Promise((r) => setTimeout(r, 10));
      const collecting = stack().gc.collect();
      await new Promise((r) => setTimeout(r, 10));
      resume();
      await committing;
      await collecting;
      expect(await sn.stat('c')).toMatchObject({ kind: 'committed' });
    });
  });
});
