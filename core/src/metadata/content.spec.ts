import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerdEvents } from '@berth/proto';
import { contentSuite } from '../content/content-suite';
import { sha256Digest } from '../content/digest';
import { Exchange } from '../events/exchange';
import { SqliteNamespacedContentStore } from './content';
import { SqliteMetadataStore } from './metadata-store';
import { commit, digestsIn, failure, readAll, take, useContentStack } from './test-fixtures/content-stack';
import { MemoryContentStore } from './test-fixtures/memory-content-store';

// Under the `isolated` policy: the suite's commitBlob writes a blob from byte 0
// whatever the writer's offset, and a `shared` writer for a blob the raw store
// still holds (deleted, not yet collected) starts at its full size, as in
// containerd. The shared policy is covered below.
contentSuite('namespaced view, isolated (sqlite metadata over memory)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-content-suite-'));
  const metadata = new SqliteMetadataStore(join(dir, 'meta.db'));
  const store = new SqliteNamespacedContentStore({
    metadata,
    content: new MemoryContentStore(),
    events: new Exchange(),
    contentSharingPolicy: 'isolated',
  });
  return {
    store: store.forNamespace('suite'),
    async cleanup() {
      metadata.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteNamespacedContentStore', () => {
  const stack = useContentStack();
  const ns = (name: string, lease?: string) => stack().content.forNamespace(name, { lease });

  describe('namespaces', () => {
    it('shows a blob only in namespaces that committed it', async () => {
      const digest = await commit(ns('a'), 'shared bytes');
      expect(await readAll(ns('a').read(digest))).toBe('shared bytes');

      expect(await failure(() => ns('b').info(digest))).toEqual({
        kind: 'not-found',
        message: `content digest ${digest}: not found`,
      });
      expect((await failure(() => ns('b').read(digest))).kind).toBe('not-found');
      expect(await digestsIn(ns('b'))).toEqual([]);

      await commit(ns('b'), 'shared bytes');
      expect(await readAll(ns('b').read(digest))).toBe('shared bytes');
      expect([...stack().raw.blobs.keys()]).toEqual([digest]);
    });

    it('links a blob the raw store has without writing it again (shared writer)', async () => {
      const digest = await commit(ns('a'), 'linked');
      const writer = await ns('b').writer({ ref: 'pull', expected: { size: 6, digest } });
      expect(writer.offset).toBe(6);
      expect(writer.digest()).toBe(digest);
      expect(await writer.status()).toMatchObject({ ref: 'pull', offset: 6, total: 6, expected: digest });
      expect(await ns('b').status('pull')).toMatchObject({ ref: 'pull', offset: 6, total: 6, expected: digest });
      expect(stack().raw.ingests.size).toBe(0);

      // containerd: linking is a plain success; only a blob the namespace has already is AlreadyExists.
      await writer.commit(6, digest, { labels: { mine: 'b' } });
      expect(await ns('b').info(digest)).toMatchObject({ digest, size: 6, labels: { mine: 'b' } });
      expect(await ns('b').listStatuses()).toEqual([]);
    });

    it('links bytes written again without an expected digest, as a plain success', async () => {
      const digest = await commit(ns('a'), 'again');
      const writer = await ns('b').writer({ ref: 'blind' });
      await writer.write(Buffer.from('again'));
      await writer.commit(0, '');
      expect((await ns('b').info(digest)).size).toBe(5);
    });

    it('answers AlreadyExists for what the namespace has already', async () => {
      const digest = await commit(ns('a'), 'twice');
      expect(await failure(() => ns('a').writer({ ref: 'again', expected: { digest } }))).toEqual({
        kind: 'already-exists',
        message: `content ${digest}: already exists`,
      });
      const blind = await ns('a').writer({ ref: 'blind' });
      await blind.write(Buffer.from('twice'));
      expect((await failure(() => blind.commit(0, ''))).kind).toBe('already-exists');
      expect(await ns('a').listStatuses()).toEqual([]);
    });

    it('keeps labels per namespace', async () => {
      const digest = await commit(ns('a'), 'labelled', { labels: { owner: 'a' } });
      await commit(ns('b'), 'labelled', { labels: { owner: 'b' } });
      await ns('b').update({ digest, labels: { extra: '1' } }, ['labels.extra']);

      expect((await ns('a').info(digest)).labels).toEqual({ owner: 'a' });
      expect((await ns('b').info(digest)).labels).toEqual({ owner: 'b', extra: '1' });
      expect(stack().raw.blobs.get(digest)?.labels).toEqual({});
    });

    it('deletes only the namespace record; the raw blob waits for the collector', async () => {
      const digest = await commit(ns('a'), 'kept elsewhere');
      await commit(ns('b'), 'kept elsewhere');
      await ns('a').delete(digest);
      expect((await failure(() => ns('a').info(digest))).kind).toBe('not-found');
      expect(await readAll(ns('b').read(digest))).toBe('kept elsewhere');
      expect(stack().raw.blobs.has(digest)).toBe(true);
      expect((await failure(() => ns('a').delete(digest))).kind).toBe('not-found');
    });

    it('makes every namespace write the bytes under the isolated policy', async () => {
      const { metadata, raw } = stack();
      const isolated = new SqliteNamespacedContentStore({ metadata, content: raw, contentSharingPolicy: 'isolated' });
      const digest = await commit(ns('a'), 'private');
      const writer = await isolated.forNamespace('b').writer({ ref: 'r', expected: { size: 7, digest } });
      expect(writer.offset).toBe(0);
      expect((await failure(() => writer.commit(7, digest))).kind).toBe('failed-precondition');
      const honest = await isolated.forNamespace('b').writer({ ref: 'r', expected: { size: 7, digest } });
      await honest.write(Buffer.from('private'));
      await honest.commit(7, digest);
      expect((await isolated.forNamespace('b').info(digest)).size).toBe(7);
    });

    it('creates the namespace on first write', async () => {
      await commit(ns('fresh'), 'x');
      expect((await stack().metadata.namespaces.list()).map((n) => n.name)).toEqual(['fresh']);
    });

    it('refuses a bad namespace name', () => {
      expect(() => ns('../etc')).toThrow(/namespace "..\/etc": must match/);
    });
  });

  describe('ingests', () => {
    it('names raw ingests <namespace>/<ref>, so namespaces never share one', async () => {
      const a = await ns('a').writer({ ref: 'layer' });
      const b = await ns('b').writer({ ref: 'layer' });
      await a.write(Buffer.from('from a'));
      await b.write(Buffer.from('b'));
      expect([...stack().raw.ingests.keys()].sort()).toEqual(['a/layer', 'b/layer']);
      expect(await ns('a').listStatuses()).toEqual([expect.objectContaining({ ref: 'layer', offset: 6 })]);
      expect(await ns('b').status('layer')).toMatchObject({ ref: 'layer', offset: 1 });
      expect((await failure(() => ns('c').status('layer'))).kind).toBe('not-found');
      await Promise.all([a.close(), b.close()]);
    });

    it('resumes an ingest from another view of the same namespace', async () => {
      const first = await ns('a').writer({ ref: 'resume' });
      await first.write(Buffer.from('hello '));
      await first.close();
      const second = await ns('a').writer({ ref: 'resume' });
      expect(second.offset).toBe(6);
      await second.write(Buffer.from('world'));
      await second.commit(11, sha256Digest('hello world'));
      expect(await readAll(ns('a').read(sha256Digest('hello world')))).toBe('hello world');
    });

    it('turns a shared writer into a real ingest when written to or truncated', async () => {
      const digest = await commit(ns('a'), 'original');
      const truncated = await ns('b').writer({ ref: 't', expected: { digest } });
      await truncated.truncate(0);
      expect(truncated.offset).toBe(0);
      await truncated.write(Buffer.from('replacement'));
      await truncated.commit(0, '');
      expect(await readAll(ns('b').read(sha256Digest('replacement')))).toBe('replacement');
      expect((await failure(() => ns('b').info(digest))).kind).toBe('not-found');

      const appended = await ns('c').writer({ ref: 'w', expected: { digest } });
      await appended.write(Buffer.from(' plus'));
      expect(appended.offset).toBe('original plus'.length);
      await appended.commit(0, '');
      expect(await readAll(ns('c').read(sha256Digest('original plus')))).toBe('original plus');
    });

    it('refuses a shared commit with the wrong size or digest, ending the ingest', async () => {
      const digest = await commit(ns('a'), 'sized');
      const writer = await ns('b').writer({ ref: 's', expected: { digest } });
      expect((await failure(() => writer.commit(99, digest))).kind).toBe('failed-precondition');
      expect((await failure(() => ns('b').status('s'))).kind).toBe('not-found');
      expect((await failure(() => ns('b').info(digest))).kind).toBe('not-found');
    });

    it('aborts: row and raw ingest gone', async () => {
      const writer = await ns('a').writer({ ref: 'gone' });
      await writer.write(Buffer.from('partial'));
      await writer.close();
      await ns('a').abort('gone');
      expect(stack().raw.ingests.size).toBe(0);
      expect((await failure(() => ns('a').abort('gone'))).kind).toBe('not-found');
    });

    it('gives ingests no lease holds a 24 hour expiry, refreshed by each writer', async () => {
      const { metadata, clock } = stack();
      const expiry = () =>
        metadata.db.prepare("SELECT expires_at FROM ingests WHERE ref = 'x'").pluck().get() as number | null;
      await (await ns('a').writer({ ref: 'x' })).close();
      expect(expiry()).toBe(clock.now + 24 * 3600_000);
      clock.advance(1000);
      await (await ns('a').writer({ ref: 'x' })).close();
      expect(expiry()).toBe(clock.now + 24 * 3600_000);
    });
  });

  describe('leases', () => {
    it('adds the ingest, then the committed blob, to the view lease', async () => {
      const { leases } = stack();
      await leases.create('a', { id: 'pull' });
      const writer = await ns('a', 'pull').writer({ ref: 'layer' });
      expect(await leases.listResources('a', 'pull')).toEqual([{ type: 'ingests', id: 'layer' }]);
      await writer.write(Buffer.from('layer'));
      await writer.commit(0, '');
      expect(await leases.listResources('a', 'pull')).toEqual([{ type: 'content', id: sha256Digest('layer') }]);
    });

    it('adds what the namespace has already to the lease, then answers AlreadyExists', async () => {
      const { leases } = stack();
      const digest = await commit(ns('a'), 'present');
      await leases.create('a', { id: 'pull' });
      expect((await failure(() => ns('a', 'pull').writer({ ref: 'r', expected: { digest } }))).kind).toBe('already-exists');
      expect(await leases.listResources('a', 'pull')).toEqual([{ type: 'content', id: digest }]);
    });

    it('removes a deleted blob from the view lease', async () => {
      const { leases } = stack();
      await leases.create('a', { id: 'l' });
      const digest = await commit(ns('a', 'l'), 'short lived');
      await ns('a', 'l').delete(digest);
      expect(await leases.listResources('a', 'l')).toEqual([]);
    });

    it('refuses to write under a lease that does not exist', async () => {
      expect(await failure(() => ns('a', 'ghost').writer({ ref: 'r' }))).toEqual({
        kind: 'not-found',
        message: 'lease "ghost": not found',
      });
      // The ref is free again.
      await (await ns('a').writer({ ref: 'r' })).close();
    });
  });

  it('publishes /content/delete with containerd.events.ContentDelete and schedules a collection', async () => {
    const { events, gc } = stack();
    const schedule = jest.spyOn(gc, 'schedule');
    const digest = await commit(ns('a'), 'deleted');
    const subscription = events.subscribe(['topic=="/content/delete"']);
    await ns('a').delete(digest);
    const [envelope] = await take(subscription, 1);
    await subscription.return?.();
    expect(envelope).toMatchObject({ namespace: 'a', topic: '/content/delete' });
    expect(envelope.event.typeUrl).toBe('containerd.events.ContentDelete');
    expect(containerdEvents.ContentDelete.decode(envelope.event.value)).toEqual({ digest });
    expect(schedule).toHaveBeenCalledTimes(1);
  });
});
