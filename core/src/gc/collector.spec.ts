import { sha256Digest } from '../content/digest';
import { GcLabels } from '../leases/types';
import { commit, createContentStack, digestsIn, failure, useContentStack } from '../metadata/test-fixtures/content-stack';
import type { Labels } from '../metadata/types';
import type { GcObject, GcSweeper } from './types';

const manifestType = 'application/vnd.oci.image.manifest.v1+json';
const indexType = 'application/vnd.oci.image.index.v1+json';

describe('MetadataGarbageCollector', () => {
  const stack = useContentStack();
  const ns = (name: string, lease?: string) => stack().content.forNamespace(name, { lease });
  const rawHas = (digest: string) => stack().raw.blobs.has(digest);

  it('removes unreferenced content: the record, then the raw blob', async () => {
    const digest = await commit(ns('a'), 'orphan');
    const stats = await stack().gc.collect();
    expect(stats).toMatchObject({ contentRemoved: 1, blobsRemoved: 1, leasesExpired: 0, ingestsRemoved: 0 });
    expect(await digestsIn(ns('a'))).toEqual([]);
    expect(rawHas(digest)).toBe(false);
  });

  it('deletes a raw blob only when no namespace holds it', async () => {
    const { leases } = stack();
    await leases.create('a', { id: 'keep' });
    await leases.create('b', { id: 'keep' });
    const digest = await commit(ns('a', 'keep'), 'in two namespaces');
    await commit(ns('b', 'keep'), 'in two namespaces');

    await ns('a').delete(digest);
    expect(await stack().gc.collect()).toMatchObject({ contentRemoved: 0, blobsRemoved: 0 });
    expect(rawHas(digest)).toBe(true);

    await ns('b').delete(digest);
    expect(await stack().gc.collect()).toMatchObject({ blobsRemoved: 1 });
    expect(rawHas(digest)).toBe(false);
  });

  describe('leases', () => {
    it('keep what they hold until deleted; a sync delete collects before returning', async () => {
      const { leases } = stack();
      await leases.create('a', { id: 'pull' });
      const digest = await commit(ns('a', 'pull'), 'leased');
      await stack().gc.collect();
      expect(rawHas(digest)).toBe(true);
      expect((await ns('a').info(digest)).size).toBe(6);

      await leases.delete('a', 'pull', { sync: true });
      expect(rawHas(digest)).toBe(false);
      expect((await failure(() => ns('a').info(digest))).kind).toBe('not-found');
    });

    it('are collected once expired, with what only they held', async () => {
      const { leases, clock } = stack();
      await leases.create('a', { id: 'short', expiresAt: new Date(clock.now + 60_000) });
      const digest = await commit(ns('a', 'short'), 'expiring');
      expect(await stack().gc.collect()).toMatchObject({ leasesExpired: 0, contentRemoved: 0 });

      clock.advance(60_000);
      expect(await stack().gc.collect()).toMatchObject({ leasesExpired: 1, contentRemoved: 1, blobsRemoved: 1 });
      expect(await leases.list('a')).toEqual([]);
      expect(rawHas(digest)).toBe(false);
    });

    it('treat an unparsable expiry as none, as containerd', async () => {
      const { leases, clock } = stack();
      await leases.create('a', { id: 'odd', labels: { [GcLabels.expire]: 'tomorrow' } });
      clock.advance(365 * 24 * 3600_000);
      expect(await stack().gc.collect()).toMatchObject({ leasesExpired: 0 });
    });

    it('with containerd.io/gc.flat keep what they hold but not its references', async () => {
      const { leases } = stack();
      await leases.create('a', { id: 'flat', labels: { [GcLabels.flat]: 'true' } });
      const child = await commit(ns('a'), 'child');
      const parent = await commit(ns('a', 'flat'), 'parent', { labels: { [`${GcLabels.refContent}.c`]: child } });
      await stack().gc.collect();
      expect(rawHas(parent)).toBe(true);
      expect(rawHas(child)).toBe(false);
    });
  });

  describe('references', () => {
    /** An index → manifest → config + layers chain, labelled as a pull labels it. */
    async function pullImage(namespace: string, name: string, tag: string) {
      const { images, leases } = stack();
      const lease = `pull-${tag}`;
      await leases.create(namespace, { id: lease });
      const view = ns(namespace, lease);
      const layers = [await commit(view, `${tag} layer 0`), await commit(view, 'shared base layer')];
      const config = await commit(view, `${tag} config`);
      const manifestLabels: Labels = { [`${GcLabels.refContent}.config`]: config };
      layers.forEach((layer, i) => (manifestLabels[`${GcLabels.refContent}.l.${i}`] = layer));
      const manifest = await commit(view, `${tag} manifest`, { labels: manifestLabels });
      const index = await commit(view, `${tag} index`, { labels: { [`${GcLabels.refContent}.m.0`]: manifest } });
      await images.create(namespace, { name, target: { mediaType: indexType, digest: index, size: 10 } });
      await leases.delete(namespace, lease);
      return { index, manifest, config, layers, all: [index, manifest, config, ...layers] };
    }

    it('keep an image chain alive, and all of it goes after the image is deleted', async () => {
      const image = await pullImage('a', 'docker.io/library/busybox:latest', 'busybox');
      const stats = await stack().gc.collect();
      expect(stats).toMatchObject({ contentRemoved: 0, blobsRemoved: 0 });
      for (const digest of image.all) expect(rawHas(digest)).toBe(true);

      await stack().images.delete('a', 'docker.io/library/busybox:latest', { sync: true });
      for (const digest of image.all) expect(rawHas(digest)).toBe(false);
      expect(await digestsIn(ns('a'))).toEqual([]);
    });

    it('keep a layer two images share until both are gone', async () => {
      const one = await pullImage('a', 'example.com/one:1', 'one');
      const two = await pullImage('a', 'example.com/two:1', 'two');
      const shared = sha256Digest('shared base layer');
      await stack().images.delete('a', 'example.com/one:1', { sync: true });
      expect(rawHas(shared)).toBe(true);
      for (const digest of one.all.filter((d) => d !== shared)) expect(rawHas(digest)).toBe(false);
      for (const digest of two.all) expect(rawHas(digest)).toBe(true);
    });

    it('stay within a namespace', async () => {
      const image = await pullImage('a', 'example.com/app:1', 'app');
      // b has the manifest only: a's image does not keep b's record.
      await commit(ns('b'), 'app manifest');
      expect(await stack().gc.collect()).toMatchObject({ contentRemoved: 1, blobsRemoved: 0 });
      expect(await digestsIn(ns('b'))).toEqual([]);
      expect(rawHas(image.manifest)).toBe(true);
    });

    it('follow gc.ref labels on images too', async () => {
      const extra = await commit(ns('a'), 'signature');
      const target = await commit(ns('a'), 'target');
      await stack().images.create('a', {
        name: 'example.com/signed:1',
        target: { mediaType: manifestType, digest: target, size: 6 },
        labels: { [`${GcLabels.refContent}.sig`]: extra },
      });
      await stack().gc.collect();
      expect(rawHas(extra)).toBe(true);
    });

    it('keep a blob labelled containerd.io/gc.root', async () => {
      const root = await commit(ns('a'), 'root', { labels: { [GcLabels.root]: '2030-01-01T00:00:00Z' } });
      const other = await commit(ns('a'), 'other');
      await stack().gc.collect();
      expect(rawHas(root)).toBe(true);
      expect(rawHas(other)).toBe(false);
    });
  });

  describe('ingests', () => {
    const ingestRefs = () => [...stack().raw.ingests.keys()].sort();

    it('keeps an unleased ingest until it expires, then aborts it', async () => {
      const writer = await ns('a').writer({ ref: 'partial' });
      await writer.write(Buffer.from('half'));
      await writer.close();
      expect(await stack().gc.collect()).toMatchObject({ ingestsRemoved: 0 });
      expect(ingestRefs()).toEqual(['a/partial']);

      stack().clock.advance(24 * 3600_000);
      expect(await stack().gc.collect()).toMatchObject({ ingestsRemoved: 1 });
      expect(ingestRefs()).toEqual([]);
      expect(await ns('a').listStatuses()).toEqual([]);
    });

    it('never expires an ingest a writer is using', async () => {
      const writer = await ns('a').writer({ ref: 'slow' });
      stack().clock.advance(48 * 3600_000);
      await stack().gc.collect();
      await writer.write(Buffer.from('still here'));
      await writer.commit(0, '');
      expect((await ns('a').info(sha256Digest('still here'))).size).toBe(10);
    });

    it('keeps a leased ingest as long as its lease', async () => {
      const { leases, clock } = stack();
      await leases.create('a', { id: 'pull' });
      await (await ns('a', 'pull').writer({ ref: 'layer' })).close();
      clock.advance(48 * 3600_000);
      expect(await stack().gc.collect()).toMatchObject({ ingestsRemoved: 0 });
      await leases.delete('a', 'pull', { sync: true });
      expect(ingestRefs()).toEqual([]);
    });

    it('keeps the raw blob a shared writer is about to link', async () => {
      const digest = await commit(ns('a'), 'linked later');
      const writer = await ns('b').writer({ ref: 'link', expected: { digest } });
      await ns('a').delete(digest);
      await stack().gc.collect();
      expect(rawHas(digest)).toBe(true);
      await writer.commit(0, digest);
      expect((await ns('b').info(digest)).size).toBe(12);
    });

    it('aborts raw ingests no namespace names', async () => {
      const stray = await stack().raw.writer({ ref: 'left-by-a-crash' });
      await stray.write(Buffer.from('x'));
      await stray.close();
      await (await ns('a').writer({ ref: 'kept' })).close();
      await stack().gc.collect();
      expect(ingestRefs()).toEqual(['a/kept']);
    });
  });

  describe('sweepers', () => {
    /** Snapshots of one snapshotter, in memory, as a later snapshot store would register them. */
    function snapshotSweeper(objects: GcObject[]): GcSweeper & { removed: string[] } {
      const removed: string[] = [];
      return {
        type: 'snapshots/overlayfs',
        removed,
        scan: () => objects.filter((o) => !removed.includes(o.id)),
        sweep(unreachable) {
          removed.push(...unreachable.map((o) => o.id));
          return unreachable.length;
        },
      };
    }

    it('mark snapshots from content labels and leases, follow their references, sweep the rest', async () => {
      const { gc, leases } = stack();
      const parentOnly = await commit(ns('a'), 'kept via snapshot label');
      const sweeper = snapshotSweeper([
        { namespace: 'a', id: 'unpacked', labels: {}, references: [{ type: 'snapshots/overlayfs', namespace: 'a', id: 'parent' }] },
        { namespace: 'a', id: 'parent', labels: { [`${GcLabels.refContent}.x`]: parentOnly } },
        { namespace: 'a', id: 'leased', labels: {} },
        { namespace: 'a', id: 'rooted', labels: { [GcLabels.root]: 'yes' } },
        { namespace: 'a', id: 'orphan', labels: {} },
        { namespace: 'b', id: 'unpacked', labels: {} },
      ]);
      const unregister = gc.registerSweeper(sweeper);
      const config = await commit(ns('a'), 'config', { labels: { [`${GcLabels.refSnapshot}.overlayfs`]: 'unpacked' } });
      await stack().images.create('a', { name: 'example.com/x:1', target: { mediaType: manifestType, digest: config, size: 6 } });
      await leases.create('a', { id: 'l' });
      await leases.addResource('a', 'l', { type: 'snapshots/overlayfs', id: 'leased' });

      const stats = await gc.collect();
      expect(stats.snapshotsRemoved).toBe(2);
      expect(sweeper.removed.sort()).toEqual(['orphan', 'unpacked']);
      expect(rawHas(parentOnly)).toBe(true);
      unregister();
    });

    it('refuses a second sweeper for a type, and the built-in types', () => {
      const { gc } = stack();
      gc.registerSweeper(snapshotSweeper([]));
      expect(() => gc.registerSweeper(snapshotSweeper([]))).toThrow(/exists already/);
      expect(() => gc.registerSweeper({ type: 'content', scan: () => [], sweep: () => 0 })).toThrow(/exists already/);
    });
  });
});

describe('MetadataGarbageCollector scheduling', () => {
  it('coalesces schedule() calls into one collection after the delay', async () => {
    const stack = createContentStack({ scheduleDelayMs: 30 });
    try {
      const collect = jest.spyOn(stack.gc, 'collect');
      stack.gc.schedule();
      stack.gc.schedule();
      stack.gc.schedule();
      expect(collect).not.toHaveBeenCalled();
      await new Promise((resolve) => setTimeout(resolve, 120));
      expect(collect).toHaveBeenCalledTimes(1);
    } finally {
      await stack.close();
    }
  });

  it('runs after a delete once the delay has passed', async () => {
    const stack = createContentStack({ scheduleDelayMs: 10 });
    try {
      const digest = await commit(stack.content.forNamespace('a'), 'scheduled');
      await stack.content.forNamespace('a').delete(digest);
      for (let i = 0; i < 50 && stack.raw.blobs.has(digest); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(stack.raw.blobs.has(digest)).toBe(false);
    } finally {
      await stack.close();
    }
  });

  it('gives a caller that asks during a collection the next one, shared with others', async () => {
    const stack = createContentStack();
    try {
      const first = stack.gc.collect();
      const second = stack.gc.collect();
      const third = stack.gc.collect();
      expect(second).toBe(third);
      expect(second).not.toBe(first);
      await Promise.all([first, second]);
    } finally {
      await stack.close();
    }
  });

  it('collects on an interval, and stops when closed', async () => {
    const stack = createContentStack({ intervalMs: 20 });
    const collect = jest.spyOn(stack.gc, 'collect');
    await new Promise((resolve) => setTimeout(resolve, 110));
    expect(collect.mock.calls.length).toBeGreaterThanOrEqual(2);
    await stack.close();
    const calls = collect.mock.calls.length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(collect.mock.calls.length).toBe(calls);
    expect((await failure(() => stack.gc.collect())).kind).toBe('unavailable');
  });
});
