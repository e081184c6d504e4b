import { BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import { type FixtureImages, fixtureImages } from '../harness/images';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { expectAlive, lines, ok, parseLabels, tableRows, waitFor } from './helpers';

/** digest → labels from a `content ls` table (ctr's or berth's): the first and the last column. */
function contentTable(stdout: string): Record<string, Record<string, string>> {
  return Object.fromEntries(tableRows(stdout).map((row) => [row[0], parseLabels(row.at(-1))]));
}

/** [name, digest] pairs of an `images ls` table: REF and DIGEST are the first and third columns in both. */
function imageTable(stdout: string): [string, string][] {
  return tableRows(stdout)
    .map((row): [string, string] => [row[0], row[2]])
    .sort();
}

// containerd's own ctr 1.6 fetching into berthd and reading what berth pulled.
describe('real ctr and berth share images and content through berthd (real docker-registry)', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let daemon: BerthdHandle;

  beforeAll(async () => {
    fixtures = await fixtureImages();
    [registry, daemon] = await Promise.all([startRegistry(), startBerthd()]);
  });
  // A crash fails the test that caused it (expectAlive); the next test gets a new daemon on the same dirs.
  beforeEach(async () => {
    if (daemon.process.exitCode !== null || daemon.process.signalCode !== null) daemon = await startBerthd({ dir: daemon.dir });
  });
  afterEach(() => expectAlive(daemon));
  afterAll(async () => {
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
    await registry?.stop();
  });

  const busyboxBlobs = () => [fixtures.busybox.manifest, fixtures.busybox.config, ...fixtures.busybox.layers].map((d) => d.digest).sort();

  it('`ctr content fetch --plain-http` into berthd: ctr and berth list the same images and content', async () => {
    const ns = 'ctr-fetch';
    const name = registry.ref('busybox:latest');
    const fetched = await daemon.ctr('-n', ns, 'content', 'fetch', '--plain-http', name);
    expect(fetched.code).toBe(0);
    expect(fetched.stdout).toContain(`manifest-${fixtures.busybox.manifest.digest}`);

    const [ctrImages, berthImages, ctrContent, berthContent, ctrImagesQ, ctrContentQ, berthContentQ] = await Promise.all([
      daemon.ctr('-n', ns, 'images', 'ls'),
      daemon.berth('-n', ns, 'images', 'ls'),
      daemon.ctr('-n', ns, 'content', 'ls'),
      daemon.berth('-n', ns, 'content', 'ls'),
      daemon.ctr('-n', ns, 'images', 'ls', '-q'),
      daemon.ctr('-n', ns, 'content', 'ls', '-q'),
      daemon.berth('-n', ns, 'content', 'ls', '-q'),
    ]);
    expect(imageTable(ok(ctrImages))).toEqual([[name, fixtures.busybox.manifest.digest]]);
    expect(imageTable(ok(berthImages))).toEqual(imageTable(ctrImages.stdout));
    // ctr sums the image's blobs and reads its platform from the config berthd serves.
    expect(ctrImages.stdout).toMatch(/\s1\.0 MiB\s+linux\/amd64\s/);

    const ctrBlobs = contentTable(ok(ctrContent));
    expect(Object.keys(ctrBlobs).sort()).toEqual(busyboxBlobs());
    expect(contentTable(ok(berthContent))).toEqual(ctrBlobs);
    // The GC references ctr wrote are what berth reads back.
    expect(ctrBlobs[fixtures.busybox.manifest.digest]).toMatchObject({
      'containerd.io/gc.ref.content.config': fixtures.busybox.config.digest,
      'containerd.io/gc.ref.content.l.0': fixtures.busybox.layers[0].digest,
    });
    expect(lines(ok(ctrImagesQ))).toEqual([name]);
    expect(lines(ok(ctrContentQ))).toEqual(busyboxBlobs());
    expect(lines(ok(berthContentQ))).toEqual(busyboxBlobs());
    expect(ok(await daemon.berth('-n', ns, 'images', 'check'))).toMatch(/\scomplete \(4\/4\)\s/);
  });

  it('`berth images pull --plain-http`: ctr lists the image and its content, digests equal', async () => {
    const ns = 'berth-pull';
    const name = registry.ref('multi:latest');
    const pulled = ok(await daemon.berth('-n', ns, 'images', 'pull', '--plain-http', name));
    expect(pulled).toMatch(new RegExp(`^${name.replace(/[.]/g, '\\.')}: pulled ${fixtures.multi.index.digest} \\(6 blobs, `));

    const [ctrImagesQ, ctrImages, ctrContentQ, berthContentQ, ctrContent, berthContent] = await Promise.all([
      daemon.ctr('-n', ns, 'images', 'ls', '-q'),
      daemon.ctr('-n', ns, 'images', 'ls'),
      daemon.ctr('-n', ns, 'content', 'ls', '-q'),
      daemon.berth('-n', ns, 'content', 'ls', '-q'),
      daemon.ctr('-n', ns, 'content', 'ls'),
      daemon.berth('-n', ns, 'content', 'ls'),
    ]);
    expect(lines(ok(ctrImagesQ))).toEqual([name]);
    expect(imageTable(ok(ctrImages))).toEqual([[name, fixtures.multi.index.digest]]);
    // The host's platform only: the index, the amd64 manifest, its config and layers.
    const expected = [
      fixtures.multi.index,
      fixtures.multi.amd64.manifest,
      fixtures.multi.amd64.config,
      ...fixtures.multi.amd64.layers,
    ].map((d) => d.digest);
    expect(lines(ok(ctrContentQ))).toEqual(expected.sort());
    expect(lines(ok(berthContentQ))).toEqual(lines(ctrContentQ.stdout));
    expect(contentTable(ok(ctrContent))).toEqual(contentTable(ok(berthContent)));
    expect(contentTable(ctrContent.stdout)[fixtures.multi.index.digest]).toMatchObject({
      'containerd.io/gc.ref.content.m.0': fixtures.multi.amd64.manifest.digest,
    });
  });

  it('`ctr images rm` of a berth-pulled image: berth no longer lists it and its content goes at the next GC', async () => {
    const ns = 'ctr-rm';
    const name = registry.ref('busybox:latest');
    ok(await daemon.berth('-n', ns, 'images', 'pull', '--plain-http', name));
    expect(lines(ok(await daemon.ctr('-n', ns, 'content', 'ls', '-q')))).toEqual(busyboxBlobs());

    const rm = await daemon.ctr('-n', ns, 'images', 'rm', name);
    expect(rm.code).toBe(0);
    expect(rm.stdout.trim()).toBe(name);
    expect(ok(await daemon.berth('-n', ns, 'images', 'ls', '-q'))).toBe('');
    await waitFor('GC to remove the content', async () =>
      ok(await daemon.ctr('-n', ns, 'content', 'ls', '-q')) === '' ? true : undefined,
    );
    expect(ok(await daemon.berth('-n', ns, 'content', 'ls', '-q'))).toBe('');
  });

  it('`berth images rm --sync` of a ctr-fetched image and `ctr images rm --sync` of a berth-pulled one leave no content', async () => {
    const name = registry.ref('busybox:latest');
    const [fetched, pulled] = await Promise.all([
      daemon.ctr('-n', 'sync-a', 'content', 'fetch', '--plain-http', name),
      daemon.berth('-n', 'sync-b', 'images', 'pull', '--plain-http', name),
    ]);
    expect(fetched.code).toBe(0);
    ok(pulled);

    expect(ok(await daemon.berth('-n', 'sync-a', 'images', 'rm', '--sync', name)).trim()).toBe(name);
    const rm = await daemon.ctr('-n', 'sync-b', 'images', 'rm', '--sync', name);
    expect(rm.code).toBe(0);
    const after = await Promise.all(
      ['sync-a', 'sync-b'].flatMap((ns) => [
        daemon.ctr('-n', ns, 'content', 'ls', '-q'),
        daemon.berth('-n', ns, 'content', 'ls', '-q'),
        daemon.ctr('-n', ns, 'images', 'ls', '-q'),
      ]),
    );
    for (const r of after) expect(ok(r)).toBe('');
  });
});
