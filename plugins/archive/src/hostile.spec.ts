import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join, relative } from 'path';
import { PassThrough, Readable } from 'stream';
import { randomBytes } from 'crypto';
import { errorKind, type ContentStore } from '@berth/core';
import { exportArchive } from './export';
import { importArchive } from './import';
import { allDigests, buildImage, Collector, rawTar, streamOf, type RawMember } from './test-fixtures/images';
import { MemoryContentStore } from './test-fixtures/memory-content-store';
import { localContentStore, localStore, memoryStore, type TestStore } from './test-fixtures/stores';

/** A valid one-image OCI layout, as members, so each test can spoil one thing. */
async function validLayout(): Promise<{ members: RawMember[]; image: Awaited<ReturnType<typeof buildImage>> }> {
  const source = new MemoryContentStore();
  const image = await buildImage(source, undefined, [2000, 100_000]);
  const members: RawMember[] = [
    { path: 'oci-layout', data: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    ...allDigests(image).map((d) => ({ path: `blobs/sha256/${d.slice(7)}`, data: source.bytes(d) })),
    {
      path: 'index.json',
      data: JSON.stringify({ schemaVersion: 2, manifests: [{ ...image.manifest, annotations: { 'io.containerd.image.name': 'example.com/ok:1' } }] }),
    },
  ];
  return { members, image };
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

async function ingestCount(store: ContentStore): Promise<number> {
  return (await store.listStatuses()).length;
}

let LocalStore: Awaited<ReturnType<typeof localContentStore>>;
let sandbox: string;
const cwd = process.cwd();

beforeAll(async () => {
  LocalStore = await localContentStore();
  if (!LocalStore) console.warn('LocalContentStore from @berth/content-local is not usable yet: hostile archives run against the in-memory store only');
});

beforeEach(() => {
  sandbox = mkdtempSync(join(tmpdir(), 'berth-archive-hostile-'));
  // Relative names in the archive would land here if anything wrote them as paths.
  mkdirSync(join(sandbox, 'cwd', 'inner'), { recursive: true });
  process.chdir(join(sandbox, 'cwd', 'inner'));
});

afterEach(() => {
  process.chdir(cwd);
  rmSync(sandbox, { recursive: true, force: true });
});

const kinds = ['memory', 'local'] as const;

/** Runs `body` against each store kind available; the sandbox must hold nothing but the store's own files after. */
async function withEachStore(body: (t: TestStore) => Promise<void>): Promise<void> {
  for (const kind of kinds) {
    if (kind === 'local' && !LocalStore) continue;
    const t = kind === 'memory' ? memoryStore() : localStore(LocalStore!, sandbox);
    try {
      await body(t);
      const stray = filesUnder(sandbox).filter((f) => !t.root || relative(t.root, f).startsWith('..'));
      expect(stray).toEqual([]);
      expect(await ingestCount(t.store)).toBe(0);
    } finally {
      t.cleanup();
    }
  }
}

async function refused(tar: Buffer | Readable, store: ContentStore, options = {}): Promise<Error> {
  const input = Buffer.isBuffer(tar) ? streamOf(tar) : tar;
  const result = await importArchive(input, { store, ...options }).then(
    (images) => images,
    (err: unknown) => err as Error,
  );
  // A refused archive names no image: the promise rejects, nothing comes back.
  if (Array.isArray(result)) throw new Error(`archive was imported: ${JSON.stringify(result.map((i) => i.name))}`);
  expect(typeof result.message).toBe('string');
  return result;
}

describe('importArchive refuses hostile archives', () => {
  it('refuses a ../ member name, and writes nothing outside the store', async () => {
    const { members } = await validLayout();
    const escape = `escape-${randomBytes(4).toString('hex')}`;
    await withEachStore(async ({ store }) => {
      for (const name of [`../${escape}`, `../../${escape}`, `blobs/../../${escape}`, `./blobs/sha256/../../../${escape}`]) {
        const err = await refused(rawTar([...members.slice(0, 2), { path: name, data: 'pwned' }, ...members.slice(2)]), store);
        expect(errorKind(err)).toBe('invalid-argument');
        expect(err.message).toContain(JSON.stringify(name));
        expect(err.message).toContain('..');
      }
    });
    for (const dir of [join(sandbox, 'cwd'), sandbox, tmpdir()]) expect(existsSync(join(dir, escape))).toBe(false);
  });

  it('refuses absolute member names', async () => {
    const { members } = await validLayout();
    const target = join(tmpdir(), `berth-archive-abs-${randomBytes(4).toString('hex')}`);
    await withEachStore(async ({ store }) => {
      for (const name of [target, '/etc/passwd', `/${'blobs/sha256/' + 'a'.repeat(64)}`]) {
        const err = await refused(rawTar([{ path: name, data: 'pwned' }, ...members]), store);
        expect(errorKind(err)).toBe('invalid-argument');
        expect(err.message).toContain('absolute');
        expect(err.message).toContain(JSON.stringify(name));
      }
    });
    expect(existsSync(target)).toBe(false);
  });

  it('refuses links that point outside the archive', async () => {
    const { members } = await validLayout();
    await withEachStore(async ({ store }) => {
      for (const link of [
        { path: 'layer/layer.tar', type: 'SymbolicLink' as const, linkpath: '../../etc/passwd' },
        { path: 'layer/layer.tar', type: 'SymbolicLink' as const, linkpath: '/etc/passwd' },
        { path: 'hard', type: 'Link' as const, linkpath: '../outside' },
      ]) {
        const err = await refused(rawTar([link, ...members]), store);
        expect(errorKind(err)).toBe('invalid-argument');
        expect(err.message).toMatch(/points (outside the archive|at the absolute path)/);
      }
    });
  });

  it('refuses a blob whose content does not match the digest in its name, and names none of the images', async () => {
    const { members, image } = await validLayout();
    const layer = image.layers[1];
    const wrongName = members.map((m) =>
      m.path === `blobs/sha256/${layer.digest.slice(7)}` ? { ...m, data: randomBytes(100_000) } : m,
    );
    await withEachStore(async ({ store }) => {
      const err = await refused(rawTar(wrongName), store);
      expect(errorKind(err)).toBe('failed-precondition');
      expect(err.message).toContain(layer.digest);
      expect(err.message).toContain('does not match');
      // The blob under that name never appears; blobs that verified may stay, unlabelled.
      await expect(store.info(layer.digest)).rejects.toMatchObject({ kind: 'not-found' });
      const manifest = await store.info(image.manifest.digest);
      expect(manifest.labels).toEqual({});
    });
  });

  it('refuses an index.json over the JSON size limit before reading it', async () => {
    const { members } = await validLayout();
    const huge = JSON.stringify({ schemaVersion: 2, manifests: [], annotations: { pad: 'x'.repeat(5 * 1024 * 1024) } });
    await withEachStore(async ({ store }) => {
      const err = await refused(rawTar([...members.filter((m) => m.path !== 'index.json'), { path: 'index.json', data: huge }]), store);
      expect(errorKind(err)).toBe('invalid-argument');
      expect(err.message).toMatch(/index\.json .* over the 4 MiB limit/);

      const small = await refused(rawTar(members), store, { jsonSizeLimit: 100 });
      expect(small.message).toContain('index.json');
    });
  });

  it('refuses a manifest blob over the JSON size limit', async () => {
    const { members, image } = await validLayout();
    await withEachStore(async ({ store }) => {
      const err = await refused(rawTar(members), store, { jsonSizeLimit: image.manifest.size - 1 });
      expect(errorKind(err)).toBe('invalid-argument');
      expect(err.message).toContain(image.manifest.digest);
    });
  });

  it('refuses truncated archives: mid-blob, mid-header, and without the end-of-archive marker', async () => {
    const { members } = await validLayout();
    const whole = rawTar(members);
    const bigBlobStart = whole.indexOf(Buffer.from(members[2].data as Buffer).subarray(0, 64));
    const cuts = [
      whole.subarray(0, bigBlobStart + 5000), // inside the 100 KB layer
      whole.subarray(0, 512 + 512 + 100), // inside the second header
      rawTar(members, { end: false }), // every member, no end blocks
      rawTar(members.slice(0, 2)), // well-formed but missing index.json and blobs
    ];
    await withEachStore(async ({ store }) => {
      for (const [i, cut] of cuts.entries()) {
        const err = await refused(cut, store);
        expect(errorKind(err)).toBe('invalid-argument');
        expect(err.message).toMatch(i === 3 ? /no index\.json/ : /truncated/);
      }
    });
  });

  it('refuses a member whose header promises more bytes than the archive has', async () => {
    await withEachStore(async ({ store }) => {
      const lying = rawTar([{ path: `blobs/sha256/${'a'.repeat(64)}`, data: 'short', size: 10_000 }], { end: false });
      const err = await refused(lying, store);
      expect(err.message).toMatch(/truncated/);
    });
  });

  it('refuses input that is not a tar at all', async () => {
    await withEachStore(async ({ store }) => {
      for (const garbage of [randomBytes(4096), Buffer.alloc(0), Buffer.from('{"schemaVersion":2}')]) {
        const err = await refused(garbage, store);
        expect(errorKind(err)).toBe('invalid-argument');
      }
    });
  });

  it('refuses descriptors with bad digests or sizes in index.json and manifests', async () => {
    const { members, image } = await validLayout();
    const withIndex = (manifests: unknown[]) => [
      ...members.filter((m) => m.path !== 'index.json'),
      { path: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests }) },
    ];
    await withEachStore(async ({ store }) => {
      for (const bad of [
        { ...image.manifest, digest: 'sha256:../../../etc/passwd' },
        { ...image.manifest, digest: image.manifest.digest.toUpperCase() },
        { ...image.manifest, size: -1 },
        { ...image.manifest, mediaType: undefined },
      ]) {
        const err = await refused(rawTar(withIndex([bad])), store);
        expect(errorKind(err)).toBe('invalid-argument');
      }
      // A size that disagrees with the blob is refused too.
      const err = await refused(rawTar(withIndex([{ ...image.manifest, size: image.manifest.size + 1 }])), store);
      expect(err.message).toContain(image.manifest.digest);
    });
  });

  it('refuses a manifest whose layer is not in the archive (NotFound naming the digest)', async () => {
    const { members, image } = await validLayout();
    const missing = image.layers[0].digest;
    await withEachStore(async ({ store }) => {
      const err = await refused(rawTar(members.filter((m) => m.path !== `blobs/sha256/${missing.slice(7)}`)), store);
      expect(errorKind(err)).toBe('not-found');
      expect(err.message).toContain(missing);
    });
  });

  it('refuses an unknown OCI layout version and an archive in no known format', async () => {
    const { members } = await validLayout();
    await withEachStore(async ({ store }) => {
      const v2 = members.map((m) => (m.path === 'oci-layout' ? { ...m, data: JSON.stringify({ imageLayoutVersion: '2.0.0' }) } : m));
      expect((await refused(rawTar(v2), store)).message).toContain('2.0.0');
      const neither = await refused(rawTar([{ path: 'hello.txt', data: 'hi' }]), store);
      expect(neither.message).toContain('unrecognized archive');
    });
  });

  it('passes on an error from the input stream, and stops reading it', async () => {
    const { members } = await validLayout();
    const whole = rawTar(members);
    await withEachStore(async ({ store }) => {
      const input = new PassThrough();
      input.write(whole.subarray(0, 50_000));
      setTimeout(() => input.destroy(new Error('connection reset')), 20);
      const err = await refused(input, store);
      expect(err.message).toBe('connection reset');
    });
  });

  it('refuses an input stream destroyed without an error instead of waiting for it forever', async () => {
    const { members } = await validLayout();
    const input = new PassThrough();
    input.write(rawTar(members).subarray(0, 50_000));
    setTimeout(() => input.destroy(), 20);
    const err = await refused(input, new MemoryContentStore());
    expect(err.message).toMatch(/truncated/);
  });

  it('destroys the input when it refuses an archive early', async () => {
    const { members } = await validLayout();
    const input = streamOf(rawTar([{ path: '../x', data: 'x' }, ...members]));
    await refused(input, new MemoryContentStore());
    expect(input.destroyed).toBe(true);
  });
});

describe('exportArchive → importArchive with a store on disk', () => {
  it('round-trips through LocalContentStore when it is available', async () => {
    if (!LocalStore) return;
    const source = localStore(LocalStore, join(sandbox, 'a'));
    const target = localStore(LocalStore, join(sandbox, 'b'));
    try {
      const image = await buildImage(source.store);
      const out = new Collector();
      await exportArchive(out, { provider: source.store, images: [{ name: 'example.com/disk:1', target: image.manifest }] });
      const imported = await importArchive(streamOf(out.buffer), { store: target.store });
      expect(imported.map((i) => i.target.digest)).toEqual([image.manifest.digest]);
      for (const digest of allDigests(image)) expect((await target.store.info(digest)).size).toBeGreaterThan(0);
      expect((await target.store.info(image.manifest.digest)).labels['containerd.io/gc.ref.content.config']).toBe(
        image.config.digest,
      );
    } finally {
      source.cleanup();
      target.cleanup();
    }
  });
});
