import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { errorKind, type ErrorKind } from '../errdefs';
import type { Labels } from '../metadata/types';
import { readBlob, writeBlob } from './blobs';
import { sha256Digest } from './digest';
import type { ContentInfo, ContentStore, ContentWriter, IngestStatus, ReadOptions } from './types';

/** A fresh, empty store for one test, and how to dispose of it. */
export interface ContentSuiteFixture {
  store: ContentStore;
  cleanup(): Promise<void>;
}

export type ContentStoreFactory = () => Promise<ContentSuiteFixture>;

/**
 * The conformance suite every ContentStore runs from its own spec file
 * (containerd's content/testsuite): `contentSuite('local', async () => ...)`.
 * Each test gets its own store from `factory` and disposes of it afterwards.
 * Uses jest's globals, so only call it from a spec file.
 */
export function contentSuite(name: string, factory: ContentStoreFactory): void {
  describe(`ContentStore conformance: ${name}`, () => {
    let fixture: ContentSuiteFixture | undefined;
    const store = (): ContentStore => {
      if (!fixture) throw new Error('content store used outside a test');
      return fixture.store;
    };

    beforeEach(async () => {
      fixture = await factory();
    });
    afterEach(async () => {
      const done = fixture;
      fixture = undefined;
      await done?.cleanup();
    });

    describe('write and commit', () => {
      it('commits written bytes under their digest and reads them back', async () => {
        const data = randomBytes(4096 + 13);
        const digest = sha256Digest(data);
        const w = await store().writer({ ref: 'roundtrip', expected: { size: data.length, digest } });
        expect(w.ref).toBe('roundtrip');
        expect(w.offset).toBe(0);
        await w.write(data.subarray(0, 100));
        expect(w.offset).toBe(100);
        expect(w.digest()).toBe(sha256Digest(data.subarray(0, 100)));
        await w.write(data.subarray(100));
        expect(w.offset).toBe(data.length);
        expect(w.digest()).toBe(digest);
        await w.commit(data.length, digest);
        await w.close(); // after commit: harmless

        expectSameBytes(await readAll(store().read(digest)), data);
        expect((await store().info(digest)).size).toBe(data.length);
      });

      it('keeps many odd-sized chunks in order', async () => {
        const data = randomBytes(5 * 1024 * 1024 + 7);
        const w = await store().writer({ ref: 'chunks' });
        let at = 0;
        for (const size of cycle([1, 7, 65536, 1024 * 1024 + 3, 4095, 300_000])) {
          if (at >= data.length) break;
          await w.write(data.subarray(at, at + size));
          at += size;
        }
        await w.commit(data.length, sha256Digest(data));
        expectSameBytes(await readAll(store().read(sha256Digest(data))), data);
      });

      it('commits without checks when size is 0 and expected is empty', async () => {
        const data = Buffer.from('unchecked');
        const w = await store().writer({ ref: 'unchecked' });
        await w.write(data);
        await w.commit(0, '');
        expect((await store().info(sha256Digest(data))).size).toBe(data.length);
      });

      it('commits an empty blob', async () => {
        const empty = sha256Digest('');
        const w = await store().writer({ ref: 'empty', expected: { size: 0, digest: empty } });
        await w.commit(0, empty);
        expect((await store().info(empty)).size).toBe(0);
        expect(await readAll(store().read(empty))).toEqual(Buffer.alloc(0));
      });

      it('stores labels given at commit', async () => {
        const digest = await commitBlob(store(), 'labelled', Buffer.from('labelled'), { a: '1' });
        expect((await store().info(digest)).labels).toEqual({ a: '1' });
      });

      it('rejects a wrong size: FailedPrecondition, nothing committed, ingest removed', async () => {
        const data = Buffer.from('one hundred-ish bytes of data');
        const digest = sha256Digest(data);
        const w = await store().writer({ ref: 'bad-size' });
        await w.write(data);
        await expectKind(() => w.commit(data.length + 1, digest), 'failed-precondition');
        await expectKind(() => store().info(digest), 'not-found');
        await expectKind(() => store().status('bad-size'), 'not-found');
        await w.close();
        const again = await store().writer({ ref: 'bad-size' });
        expect(again.offset).toBe(0);
        await again.close();
      });

      it('rejects a wrong digest: FailedPrecondition, nothing committed, ingest removed', async () => {
        const data = Buffer.from('real content');
        const claimed = sha256Digest('claimed content');
        const w = await store().writer({ ref: 'bad-digest' });
        await w.write(data);
        const err = await expectKind(() => w.commit(data.length, claimed), 'failed-precondition');
        expect(err.message).toContain(claimed);
        await expectKind(() => store().info(sha256Digest(data)), 'not-found');
        await expectKind(() => store().info(claimed), 'not-found');
        await expectKind(() => store().status('bad-digest'), 'not-found');
        expect(await collect(store().walk())).toEqual([]);
      });

      it('answers AlreadyExists when committing a blob that is present, and removes the ingest', async () => {
        const data = Buffer.from('present');
        const digest = await commitBlob(store(), 'first', data, { keep: 'me' });

        const w = await store().writer({ ref: 'second' });
        await w.write(data);
        await expectKind(() => w.commit(data.length, digest, { labels: { other: 'x' } }), 'already-exists');
        await expectKind(() => store().status('second'), 'not-found');

        const unchecked = await store().writer({ ref: 'third' });
        await unchecked.write(data);
        await expectKind(() => unchecked.commit(0, ''), 'already-exists');

        expectSameBytes(await readAll(store().read(digest)), data);
        expect((await store().info(digest)).labels).toEqual({ keep: 'me' });
      });

      it('answers AlreadyExists when opening a writer for a digest that is present', async () => {
        const data = Buffer.from('present');
        const digest = await commitBlob(store(), 'first', data);
        await expectKind(() => store().writer({ ref: 'again', expected: { size: data.length, digest } }), 'already-exists');
        // The refused writer must not hold the ref.
        const w = await store().writer({ ref: 'again' });
        await w.close();
      });

      it('refuses writes, truncates and commits on a closed writer', async () => {
        const w = await store().writer({ ref: 'closed' });
        await w.write(Buffer.from('x'));
        await w.close();
        await w.close(); // idempotent
        await expectKind(() => w.write(Buffer.from('y')), 'failed-precondition');
        await expectKind(() => w.truncate(0), 'failed-precondition');
        await expectKind(() => w.commit(0, ''), 'failed-precondition');
      });

      it('truncates to 0 and starts the digest over', async () => {
        const w = await store().writer({ ref: 'truncate' });
        await w.write(Buffer.from('discard me'));
        await w.truncate(0);
        expect(w.offset).toBe(0);
        expect(w.digest()).toBe(sha256Digest(''));
        expect((await w.status()).offset).toBe(0);
        const kept = Buffer.from('keep me');
        await w.write(kept);
        await w.commit(kept.length, sha256Digest(kept));
        expect(await readAll(store().read(sha256Digest(kept)))).toEqual(kept);
      });

      it('lets concurrent writers on different refs interleave', async () => {
        const blobs = Array.from({ length: 6 }, (_, i) => randomBytes(200_000 + i * 4099));
        const writeOne = async (data: Buffer, i: number): Promise<void> => {
          const w = await store().writer({ ref: `concurrent-${i}` });
          for (let at = 0; at < data.length; at += 16_384) {
            await w.write(data.subarray(at, at + 16_384));
          }
          await w.commit(data.length, sha256Digest(data));
        };
        await Promise.all(blobs.map(writeOne));
        for (const data of blobs) expectSameBytes(await readAll(store().read(sha256Digest(data))), data);
        expect(await store().listStatuses()).toEqual([]);
      });

      it('commits one of several concurrent ingests of the same bytes; the rest get AlreadyExists', async () => {
        const data = randomBytes(100_000);
        const digest = sha256Digest(data);
        const writers = await Promise.all([0, 1, 2, 3].map((i) => store().writer({ ref: `same-${i}` })));
        await Promise.all(writers.map((w) => w.write(data)));
        const results = await Promise.allSettled(writers.map((w) => w.commit(data.length, digest)));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(errorKind(r.reason)).toBe('already-exists');
        }
        expectSameBytes(await readAll(store().read(digest)), data);
      });
    });

    describe('ingests', () => {
      it('reports status while writing, from the writer and the store', async () => {
        const before = Date.now();
        const digest = sha256Digest('0123456789');
        const w = await store().writer({ ref: 'status', expected: { size: 10, digest } });
        await w.write(Buffer.from('01234'));
        const status = await w.status();
        expect(status).toMatchObject({ ref: 'status', offset: 5, total: 10, expected: digest });
        expectRecent(status.startedAt, before);
        expect(status.updatedAt.getTime()).toBeGreaterThanOrEqual(status.startedAt.getTime() - clockSlack);
        expect((await store().status('status')).ref).toBe('status');
        await w.close();
      });

      it('reports total 0 and expected "" when the writer was told nothing', async () => {
        const w = await store().writer({ ref: 'unknown-size' });
        expect(await w.status()).toMatchObject({ ref: 'unknown-size', offset: 0, total: 0, expected: '' });
        await w.close();
      });

      it('resumes a closed ingest where it stopped, digest included', async () => {
        const data = randomBytes(3 * 1024 * 1024 + 17);
        const digest = sha256Digest(data);
        const split = 1_000_003;
        const expected = { size: data.length, digest };

        const first = await store().writer({ ref: 'resume', expected });
        await first.write(data.subarray(0, split));
        await first.close();

        expect(await store().status('resume')).toMatchObject({
          ref: 'resume',
          offset: split,
          total: data.length,
          expected: digest,
        });

        const second = await store().writer({ ref: 'resume', expected });
        expect(second.offset).toBe(split);
        expect(second.digest()).toBe(sha256Digest(data.subarray(0, split)));
        await second.write(data.subarray(split));
        await second.commit(data.length, digest);
        expectSameBytes(await readAll(store().read(digest)), data);
        await expectKind(() => store().status('resume'), 'not-found');
      });

      it('resumes through writeBlob', async () => {
        const data = randomBytes(50_000);
        const partial = await store().writer({ ref: 'write-blob' });
        await partial.write(data.subarray(0, 20_000));
        await partial.close();
        await writeBlob(store(), 'write-blob', data, { expected: { size: data.length, digest: sha256Digest(data) } });
        expectSameBytes(await readBlob(store(), sha256Digest(data)), data);
        // Present already: success, not AlreadyExists.
        await writeBlob(store(), 'write-blob-again', data, { expected: { digest: sha256Digest(data) } });
      });

      it('allows one writer per ref and releases the ref on close, commit and failed commit', async () => {
        const w = await store().writer({ ref: 'locked' });
        const err = await expectKind(() => store().writer({ ref: 'locked' }), 'unavailable');
        expect(err.message).toContain('locked');
        await w.close();

        const afterClose = await store().writer({ ref: 'locked' });
        await afterClose.write(Buffer.from('x'));
        await afterClose.commit(1, sha256Digest('x'));

        const afterCommit = await store().writer({ ref: 'locked' });
        await afterCommit.write(Buffer.from('y'));
        await expectKind(() => afterCommit.commit(1, sha256Digest('z')), 'failed-precondition');

        const afterFailure = await store().writer({ ref: 'locked' });
        await afterFailure.close();
      });

      it('does not lock other refs', async () => {
        const a = await store().writer({ ref: 'a' });
        const b = await store().writer({ ref: 'b' });
        await Promise.all([a.close(), b.close()]);
      });

      it('aborts an ingest: data gone, status NotFound, a new writer starts at 0', async () => {
        const w = await store().writer({ ref: 'abort' });
        await w.write(Buffer.from('partial'));
        await w.close();
        await store().abort('abort');
        await expectKind(() => store().status('abort'), 'not-found');
        expect(await store().listStatuses()).toEqual([]);
        const fresh = await store().writer({ ref: 'abort' });
        expect(fresh.offset).toBe(0);
        await fresh.close();
      });

      it('answers NotFound for the status or abort of an unknown ref', async () => {
        await expectKind(() => store().status('nothing'), 'not-found');
        await expectKind(() => store().abort('nothing'), 'not-found');
      });

      it('lists ingests, filtered by ref', async () => {
        for (const ref of ['layer-1', 'layer-2', 'manifest-1']) {
          const w = await store().writer({ ref });
          await w.write(Buffer.from(ref));
          await w.close();
        }
        const committed = await store().writer({ ref: 'layer-3' });
        await committed.write(Buffer.from('layer-3'));
        await committed.commit(0, '');

        expect(refsOf(await store().listStatuses())).toEqual(['layer-1', 'layer-2', 'manifest-1']);
        expect(refsOf(await store().listStatuses(['ref~=^layer-']))).toEqual(['layer-1', 'layer-2']);
        expect(refsOf(await store().listStatuses(['ref==manifest-1', 'ref==layer-2']))).toEqual([
          'layer-2',
          'manifest-1',
        ]);
        const statuses = await store().listStatuses(['ref==layer-1']);
        expect(statuses[0]).toMatchObject({ ref: 'layer-1', offset: 'layer-1'.length });
        await expectKind(() => store().listStatuses(['ref~=[']), 'invalid-argument');
      });

      it('rejects an empty ref', async () => {
        await expectKind(() => store().writer({ ref: '' }), 'invalid-argument');
      });
    });

    describe('reads', () => {
      const data = randomBytes(1000);
      const digest = sha256Digest(data);
      const ranged = (options: ReadOptions) => readAll(store().read(digest, options));

      beforeEach(async () => {
        await commitBlob(store(), 'ranged', data);
      });

      it('reads from an offset, for a length, and clips at the end', async () => {
        expect(await ranged({ offset: 10 })).toEqual(data.subarray(10));
        expect(await ranged({ offset: 10, length: 20 })).toEqual(data.subarray(10, 30));
        expect(await ranged({ length: 5 })).toEqual(data.subarray(0, 5));
        expect(await ranged({ offset: 990, length: 100 })).toEqual(data.subarray(990));
        expect(await ranged({ offset: 5, length: 0 })).toEqual(Buffer.alloc(0));
        expect(await ranged({ offset: 1000 })).toEqual(Buffer.alloc(0));
      });

      it('answers OutOfRange for an offset past the end', async () => {
        await expectKind(() => store().read(digest, { offset: 1001 }), 'out-of-range');
      });

      it('answers InvalidArgument for a negative offset or length', async () => {
        await expectKind(() => store().read(digest, { offset: -1 }), 'invalid-argument');
        await expectKind(() => store().read(digest, { length: -1 }), 'invalid-argument');
      });

      it('answers NotFound for a blob that is not there', async () => {
        await expectKind(() => store().read(sha256Digest('absent')), 'not-found');
      });
    });

    describe('info, update, walk, delete', () => {
      it('reports size, creation time and labels', async () => {
        const before = Date.now();
        const digest = await commitBlob(store(), 'info', Buffer.from('info'));
        const info = await store().info(digest);
        expect(info).toMatchObject({ digest, size: 4, labels: {} });
        expectRecent(info.createdAt, before);
        expect(info.updatedAt.getTime()).toBeGreaterThanOrEqual(info.createdAt.getTime());
        await expectKind(() => store().info(sha256Digest('absent')), 'not-found');
      });

      it('updates labels by fieldpath', async () => {
        const digest = await commitBlob(store(), 'update', Buffer.from('update'), { a: '1', b: '2' });
        const update = (labels: Labels, fieldpaths?: string[]) => store().update({ digest, labels }, fieldpaths);

        expect((await update({ c: '3' }, ['labels'])).labels).toEqual({ c: '3' });
        expect((await update({ a: '9', ignored: 'x' }, ['labels.a'])).labels).toEqual({ a: '9', c: '3' });
        expect((await update({}, ['labels.c'])).labels).toEqual({ a: '9' });
        expect((await update({ a: '' }, ['labels.a'])).labels).toEqual({});
        const replaced = await update({ x: '1', y: '' });
        expect(replaced.labels).toEqual({ x: '1' });
        expect(replaced).toMatchObject({ digest, size: 6 });

        const info = await store().info(digest);
        expect(info.labels).toEqual({ x: '1' });
        expect(info.updatedAt.getTime()).toBeGreaterThanOrEqual(info.createdAt.getTime());
      });

      it('takes label keys containing dots', async () => {
        const digest = await commitBlob(store(), 'dots', Buffer.from('dots'));
        const key = 'containerd.io/gc.ref.content.l.0';
        const updated = await store().update({ digest, labels: { [key]: 'sha256:x' } }, [`labels.${key}`]);
        expect(updated.labels).toEqual({ [key]: 'sha256:x' });
      });

      it('rejects unknown fieldpaths, bad labels and absent blobs', async () => {
        const digest = await commitBlob(store(), 'update-errors', Buffer.from('x'));
        await expectKind(() => store().update({ digest, labels: {} }, ['size']), 'invalid-argument');
        await expectKind(() => store().update({ digest, labels: { '': 'v' } }), 'invalid-argument');
        await expectKind(() => store().update({ digest, labels: { k: 'v'.repeat(4096) } }), 'invalid-argument');
        await expectKind(() => store().update({ digest: sha256Digest('absent'), labels: {} }), 'not-found');
        expect((await store().info(digest)).labels).toEqual({});
      });

      it('walks every blob, or those matching any filter', async () => {
        const a = await commitBlob(store(), 'a', Buffer.from('a'), { k: 'v', team: 'x' });
        const b = await commitBlob(store(), 'b', Buffer.from('b'), { k: 'w' });
        const c = await commitBlob(store(), 'c', Buffer.from('c'));
        const walk = async (filters?: string[]) => (await collect(store().walk(filters))).map((i) => i.digest).sort();

        expect(await walk()).toEqual([a, b, c].sort());
        expect(await walk(['labels.k==v'])).toEqual([a]);
        expect(await walk([`digest==${b}`])).toEqual([b]);
        expect(await walk(['labels.k==v', `digest==${c}`])).toEqual([a, c].sort());
        expect(await walk(['labels.k'])).toEqual([a, b].sort());
        expect(await walk(['labels.k==v,labels.team==y'])).toEqual([]);
        const infos = await collect(store().walk([`digest==${a}`]));
        expect(infos[0]).toMatchObject({ digest: a, size: 1, labels: { k: 'v', team: 'x' } });
        await expectKind(() => collect(store().walk(['labels.k=='])), 'invalid-argument');
      });

      it('deletes a blob: then NotFound everywhere, and it can be written again', async () => {
        const data = Buffer.from('delete me');
        const digest = await commitBlob(store(), 'delete', data, { a: '1' });
        await store().delete(digest);
        await expectKind(() => store().info(digest), 'not-found');
        await expectKind(() => store().read(digest), 'not-found');
        await expectKind(() => store().delete(digest), 'not-found');
        expect(await collect(store().walk())).toEqual([]);

        await commitBlob(store(), 'delete-again', data);
        expect((await store().info(digest)).labels).toEqual({});
      });
    });

    describe('digest validation', () => {
      const bad = [
        '',
        'sha256:',
        `sha256:${'A'.repeat(64)}`,
        `sha256:${'a'.repeat(63)}`,
        `sha256:${'g'.repeat(64)}`,
        `sha512:${'a'.repeat(128)}`,
        'a'.repeat(64),
      ];

      it.each(bad)('rejects %j with InvalidArgument naming it', async (digest) => {
        const checks: Array<() => Promise<unknown>> = [
          () => store().read(digest),
          () => store().info(digest),
          () => store().update({ digest, labels: {} }),
          () => store().delete(digest),
        ];
        // An empty expected digest means "not known", as in containerd.
        if (digest !== '') checks.push(() => store().writer({ ref: 'bad-expected', expected: { digest } }));
        for (const check of checks) {
          const err = await expectKind(check, 'invalid-argument');
          expect(err.message).toContain(digest);
        }
      });

      it('rejects a malformed expected digest at commit and leaves the writer usable', async () => {
        const w = await store().writer({ ref: 'bad-commit' });
        await w.write(Buffer.from('x'));
        await expectKind(() => w.commit(1, 'sha256:nope'), 'invalid-argument');
        await w.commit(1, sha256Digest('x'));
      });
    });
  });
}

/** Compares by length and digest: jest's deep equality walks a Buffer byte by byte, minutes for megabytes. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect({ length: actual.length, digest: sha256Digest(actual) }).toEqual({
    length: expected.length,
    digest: sha256Digest(expected),
  });
}

/** Slack for clocks read by the store (file times may be coarser than Date.now()). */
const clockSlack = 1000;

function expectRecent(time: Date, since: number): void {
  // Not toBeInstanceOf: a Date made by fs or another realm is still a Date.
  expect(Object.prototype.toString.call(time)).toBe('[object Date]');
  expect(time.getTime()).toBeGreaterThanOrEqual(since - clockSlack);
  expect(time.getTime()).toBeLessThanOrEqual(Date.now() + clockSlack);
}

/** Runs `action` and returns the error it fails with, after checking its kind. */
async function expectKind(action: () => unknown, kind: ErrorKind): Promise<Error> {
  let caught: unknown;
  try {
    await action();
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error(`expected a ${kind} error, but the call succeeded`);
  expect({ kind: errorKind(caught), message: String((caught as Error).message) }).toMatchObject({ kind });
  return caught as Error;
}

async function commitBlob(store: ContentStore, ref: string, data: Uint8Array, labels?: Labels): Promise<string> {
  const digest = sha256Digest(data);
  const w: ContentWriter = await store.writer({ ref, expected: { size: data.length, digest } });
  await w.write(data);
  await w.commit(data.length, digest, { labels });
  return digest;
}

async function readAll(stream: Promise<Readable>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function collect(items: AsyncIterable<ContentInfo>): Promise<ContentInfo[]> {
  const out: ContentInfo[] = [];
  for await (const item of items) out.push(item);
  return out;
}

function refsOf(statuses: IngestStatus[]): string[] {
  return statuses.map((s) => s.ref).sort();
}

function* cycle<T>(values: T[]): Generator<T> {
  for (;;) yield* values;
}
