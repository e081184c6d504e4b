import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InversifyContainer as Container,
  ContentStore,
  contentSuite,
  errorKind,
  readBlob,
  sha256Digest,
  silentLogger,
  type InitContext,
  type PluginMeta,
} from '@berth/core';
import { LocalContentStore } from './local-content-store';
import { WRITEBACK_INTERVAL, type LocalContentWriter } from './local-writer';
import { contentPlugin } from './plugin';

const tempRoots: string[] = [];

function tempRoot(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-content-'));
  tempRoots.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of tempRoots.splice(0)) rmSync(dir, { recursive: true, force: true });
});

contentSuite('local', async () => {
  const root = tempRoot();
  const store = new LocalContentStore(root);
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
});

const refDir = (ref: string) => createHash('sha256').update(ref).digest('hex');
const hexOf = (digest: string) => digest.slice('sha256:'.length);

async function kindOf(action: () => Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await action();
  } catch (err) {
    return { kind: errorKind(err), message: (err as Error).message };
  }
  throw new Error('expected the call to fail');
}

describe('LocalContentStore', () => {
  let root: string;
  let store: LocalContentStore;

  beforeEach(() => {
    root = tempRoot();
    store = new LocalContentStore(root);
  });
  afterEach(async () => {
    await store.close();
    rmSync(root, { recursive: true, force: true });
  });

  describe('on disk', () => {
    it("keeps an ingest in ingest/<sha256(ref)>/ with containerd's files", async () => {
      const digest = sha256Digest('0123456789');
      const w = await store.writer({ ref: 'layer', expected: { size: 10, digest } });
      await w.write(Buffer.from('01234'));
      await w.close();

      const dir = join(root, 'ingest', refDir('layer'));
      expect(readdirSync(dir).sort()).toEqual(['data', 'expected', 'ref', 'startedat', 'total', 'updatedat']);
      expect(readFileSync(join(dir, 'data'), 'utf8')).toBe('01234');
      expect(readFileSync(join(dir, 'ref'), 'utf8')).toBe('layer');
      expect(readFileSync(join(dir, 'total'), 'utf8')).toBe('10');
      expect(readFileSync(join(dir, 'expected'), 'utf8')).toBe(digest);
      expect(Number.isNaN(Date.parse(readFileSync(join(dir, 'startedat'), 'utf8')))).toBe(false);
    });

    it('publishes a blob read-only at blobs/sha256/<hex> and removes the ingest', async () => {
      const data = Buffer.from('published');
      const digest = sha256Digest(data);
      const w = await store.writer({ ref: 'publish' });
      await w.write(data);
      await w.commit(data.length, digest, { labels: { a: '1' } });

      const blob = join(root, 'blobs', 'sha256', hexOf(digest));
      expect(readFileSync(blob)).toEqual(data);
      expect(statSync(blob).mode & 0o777).toBe(0o444);
      expect(readdirSync(join(root, 'ingest'))).toEqual([]);
      expect(JSON.parse(readFileSync(join(root, 'labels', `${hexOf(digest)}.json`), 'utf8')).labels).toEqual({ a: '1' });
    });

    it('keeps no label file for a blob without labels, and none after delete', async () => {
      const data = Buffer.from('plain');
      const w = await store.writer({ ref: 'plain' });
      await w.write(data);
      await w.commit(0, '');
      expect(readdirSync(join(root, 'labels'))).toEqual([]);
      await store.update({ digest: sha256Digest(data), labels: { k: 'v' } });
      expect(readdirSync(join(root, 'labels'))).toEqual([`${hexOf(sha256Digest(data))}.json`]);
      await store.delete(sha256Digest(data));
      expect(readdirSync(join(root, 'labels'))).toEqual([]);
      expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
    });

    it('ignores files in blobs/sha256 whose names are not digests', async () => {
      const data = Buffer.from('real');
      const w = await store.writer({ ref: 'real' });
      await w.write(data);
      await w.commit(0, '');
      const blobs = join(root, 'blobs', 'sha256');
      writeFileSync(join(blobs, 'not-a-digest'), 'x');
      writeFileSync(join(blobs, hexOf(sha256Digest('upper')).toUpperCase()), 'upper');
      writeFileSync(join(blobs, hexOf(sha256Digest('short')).slice(1)), 'short');
      mkdirSync(join(blobs, hexOf(sha256Digest('a directory'))));

      const walked: string[] = [];
      for await (const info of store.walk()) walked.push(info.digest);
      expect(walked).toEqual([sha256Digest(data)]);
    });
  });

  describe('crashes', () => {
    it('leaves a resumable ingest and no blob when the writer is never closed', async () => {
      const data = randomBytes(3 * 1024 * 1024 + 500);
      const digest = sha256Digest(data);
      const flushed = 3 * 1024 * 1024;
      const crashed = (await store.writer({
        ref: 'crash',
        expected: { size: data.length, digest },
      })) as LocalContentWriter;
      await crashed.write(data.subarray(0, flushed));
      expect((await crashed.status()).offset).toBe(flushed); // status hands the buffer to the file
      await crashed.write(data.subarray(flushed, flushed + 100)); // still in memory when "the process dies"

      const restarted = new LocalContentStore(root);
      try {
        expect(statSync(join(root, 'ingest', refDir('crash'), 'data')).size).toBe(flushed);
        expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
        expect(await restarted.status('crash')).toMatchObject({ offset: flushed, total: data.length, expected: digest });

        const resumed = await restarted.writer({ ref: 'crash', expected: { size: data.length, digest } });
        expect(resumed.offset).toBe(flushed);
        expect(resumed.digest()).toBe(sha256Digest(data.subarray(0, flushed)));
        await resumed.write(data.subarray(flushed));
        await resumed.commit(data.length, digest);
        expect((await readBlob(restarted, digest)).equals(data)).toBe(true);
      } finally {
        await crashed.abandon(); // only to free the descriptor the "dead" process held
        await restarted.close();
      }
    });

    it('resumes from whatever prefix reached the file', async () => {
      const data = randomBytes(2 * 1024 * 1024 + 300_000);
      const digest = sha256Digest(data);
      const crashed = (await store.writer({ ref: 'prefix' })) as LocalContentWriter;
      for (let at = 0; at < data.length; at += 100_000) await crashed.write(data.subarray(at, at + 100_000));
      await new Promise((resolve) => setTimeout(resolve, 50)); // let the write in flight land

      const restarted = new LocalContentStore(root);
      try {
        const resumed = await restarted.writer({ ref: 'prefix' });
        expect(resumed.offset).toBeLessThanOrEqual(data.length);
        expect(resumed.digest()).toBe(sha256Digest(data.subarray(0, resumed.offset)));
        await resumed.write(data.subarray(resumed.offset));
        await resumed.commit(data.length, digest);
        expect((await readBlob(restarted, digest)).equals(data)).toBe(true);
      } finally {
        await crashed.abandon();
        await restarted.close();
      }
    });

    it('fails the commit of an ingest whose bytes changed on disk, naming both digests', async () => {
      const data = randomBytes(1024 * 1024 + 5);
      const digest = sha256Digest(data);
      const first = await store.writer({ ref: 'corrupt', expected: { size: data.length, digest } });
      await first.write(data);
      await first.close();

      const path = join(root, 'ingest', refDir('corrupt'), 'data');
      const corrupted = Buffer.from(data);
      corrupted[12345] ^= 0xff;
      writeFileSync(path, corrupted);

      const second = await store.writer({ ref: 'corrupt', expected: { size: data.length, digest } });
      const err = await kindOf(() => second.commit(data.length, digest));
      expect(err.kind).toBe('failed-precondition');
      expect(err.message).toBe(`unexpected commit digest ${sha256Digest(corrupted)}, expected ${digest}`);
      expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
      expect(existsSync(join(root, 'ingest', refDir('corrupt')))).toBe(false);
    });

    it('fails the commit when the data file changed length under the writer', async () => {
      const w = await store.writer({ ref: 'grown' });
      await w.write(Buffer.from('abc'));
      await w.status();
      writeFileSync(join(root, 'ingest', refDir('grown'), 'data'), 'abcdef');
      const err = await kindOf(() => w.commit(0, ''));
      expect(err).toEqual({ kind: 'failed-precondition', message: 'ingest grown changed on disk: 6 bytes in data, 3 written' });
      expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
    });

    it('sweeps leftovers at startup and keeps live ingests', async () => {
      const live = await store.writer({ ref: 'live' });
      await live.write(Buffer.from('live'));
      await live.close();
      const data = Buffer.from('labelled');
      const w = await store.writer({ ref: 'labelled' });
      await w.write(data);
      await w.commit(0, '', { labels: { k: 'v' } });

      const ingest = join(root, 'ingest');
      const labels = join(root, 'labels');
      const liveDir = join(ingest, refDir('live'));
      writeFileSync(join(liveDir, '.updatedat.0123.tmp'), 'partial');
      mkdirSync(join(ingest, refDir('never-got-a-ref')));
      writeFileSync(join(ingest, refDir('never-got-a-ref'), 'data'), 'x');
      mkdirSync(join(ingest, refDir('committed-then-crashed')));
      writeFileSync(join(ingest, refDir('committed-then-crashed'), 'ref'), 'committed-then-crashed');
      writeFileSync(join(labels, `.${hexOf(sha256Digest('x'))}.json.abcd.tmp`), '{');
      writeFileSync(join(labels, `${hexOf(sha256Digest('deleted'))}.json`), '{"labels":{}}');

      const restarted = new LocalContentStore(root);
      expect(readdirSync(ingest)).toEqual([refDir('live')]);
      expect(readdirSync(liveDir).sort()).toEqual(['data', 'ref', 'startedat', 'updatedat']);
      expect(readdirSync(labels)).toEqual([`${hexOf(sha256Digest(data))}.json`]);
      expect((await restarted.status('live')).offset).toBe(4);
      expect((await restarted.info(sha256Digest(data))).labels).toEqual({ k: 'v' });
    });
  });

  describe('labels', () => {
    it('survive reopening the store, with their update time', async () => {
      const data = Buffer.from('durable labels');
      const digest = sha256Digest(data);
      const w = await store.writer({ ref: 'durable' });
      await w.write(data);
      await w.commit(data.length, digest, { labels: { a: '1' } });
      const updated = await store.update({ digest, labels: { b: '2' } }, ['labels.b']);

      const reopened = new LocalContentStore(root);
      const info = await reopened.info(digest);
      expect(info.labels).toEqual({ a: '1', b: '2' });
      expect(info.updatedAt).toEqual(updated.updatedAt);
    });

    it('answers DataLoss for an unreadable label file instead of dropping its labels', async () => {
      const data = Buffer.from('broken labels');
      const digest = sha256Digest(data);
      const w = await store.writer({ ref: 'broken' });
      await w.write(data);
      await w.commit(0, '', { labels: { 'containerd.io/gc.root': 'x' } });
      writeFileSync(join(root, 'labels', `${hexOf(digest)}.json`), '{"lab');
      expect((await kindOf(() => store.info(digest))).kind).toBe('data-loss');
    });
  });

  describe('writers', () => {
    it('names the ref when it is locked', async () => {
      const w = await store.writer({ ref: 'sha256:abc-layer' });
      expect(await kindOf(() => store.writer({ ref: 'sha256:abc-layer' }))).toEqual({
        kind: 'unavailable',
        message: 'ref sha256:abc-layer locked',
      });
      await w.close();
    });

    it('closes an open writer when its ingest is aborted', async () => {
      const w = await store.writer({ ref: 'aborted' });
      await w.write(Buffer.from('partial'));
      await store.abort('aborted');
      expect((await kindOf(() => w.write(Buffer.from('more')))).kind).toBe('failed-precondition');
      expect(existsSync(join(root, 'ingest', refDir('aborted')))).toBe(false);
      const fresh = await store.writer({ ref: 'aborted' });
      expect(fresh.offset).toBe(0);
      await fresh.close();
    });

    it('flushes open writers when the store closes', async () => {
      const w = await store.writer({ ref: 'open-at-shutdown' });
      await w.write(Buffer.from('0123456789'));
      await store.close();
      expect((await kindOf(() => w.write(Buffer.from('x')))).kind).toBe('failed-precondition');
      expect((await new LocalContentStore(root).status('open-at-shutdown')).offset).toBe(10);
    });

    it('commits a blob larger than the background writeback interval', async () => {
      const data = randomBytes(2 * WRITEBACK_INTERVAL + 123);
      const digest = sha256Digest(data);
      const w = await store.writer({ ref: 'big', expected: { size: data.length, digest } });
      for (let at = 0; at < data.length; at += 65536) await w.write(data.subarray(at, at + 65536));
      await w.commit(data.length, digest);
      expect(readFileSync(join(root, 'blobs', 'sha256', hexOf(digest))).equals(data)).toBe(true);
    });

    it('truncates to a non-zero size and re-hashes the prefix', async () => {
      const w = await store.writer({ ref: 'partial-truncate' });
      await w.write(Buffer.from('keep-drop'));
      await w.truncate(4);
      expect(w.digest()).toBe(sha256Digest('keep'));
      await w.write(Buffer.from('!'));
      await w.commit(5, sha256Digest('keep!'));
      const empty = await store.writer({ ref: 'truncate-too-far' });
      expect((await kindOf(() => empty.truncate(1))).kind).toBe('invalid-argument');
      await empty.close();
    });
  });
});

describe('contentPlugin', () => {
  it('is io.berth.content.v1.content, opens a store at its root and binds ContentStore', async () => {
    const root = tempRoot();
    const meta: PluginMeta = { platforms: [], exports: {}, capabilities: [] };
    const container = new Container();
    const unused = (): never => {
      throw new Error('not used by the content plugin');
    };
    const ctx: InitContext = {
      type: contentPlugin.type,
      id: contentPlugin.id,
      uri: `${contentPlugin.type}.${contentPlugin.id}`,
      root,
      state: join(root, 'state'),
      config: undefined,
      address: '',
      ttrpcAddress: '',
      logger: silentLogger(),
      container,
      meta,
      getSingle: unused,
      getById: unused,
      getByType: unused,
    };
    expect(contentPlugin.type).toBe('io.berth.content.v1');
    expect(contentPlugin.id).toBe('content');
    expect(contentPlugin.requires ?? []).toEqual([]);

    const store = await contentPlugin.init(ctx);
    expect(store).toBeInstanceOf(LocalContentStore);
    expect(store.root).toBe(root);
    expect(meta.exports.root).toBe(root);
    expect(container.get(ContentStore)).toBe(store);
    expect(existsSync(join(root, 'blobs', 'sha256'))).toBe(true);
  });
});
