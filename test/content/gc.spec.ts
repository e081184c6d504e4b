import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import { type Berth, connect } from '@berth/core';
import { BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { expectAlive, lines, ok, type PushedImage, pushRandomImage, sha256Hex } from './helpers';

// Garbage collection through berthd: what `--sync` removes from the listings and from disk, and what stays.
describe('garbage collection of content through berthd (real docker-registry)', () => {
  let registry: RegistryHandle;
  let daemon: BerthdHandle;
  // Setup goes through the API (quicker than a CLI run); what is asserted comes from the CLI and the disk.
  let client: Berth;

  beforeAll(async () => {
    [registry, daemon] = await Promise.all([startRegistry({ storage: 'empty' }), startBerthd()]);
    client = await connect(daemon.address);
  });
  // A crash fails the test that caused it (expectAlive); the next test gets a new daemon on the same dirs.
  beforeEach(async () => {
    if (daemon.process.exitCode !== null || daemon.process.signalCode !== null) daemon = await startBerthd({ dir: daemon.dir });
  });
  afterEach(() => expectAlive(daemon));
  afterAll(async () => {
    await client?.close();
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
    await registry?.stop();
  });

  /** Which of `digests` have a file in the content store's blob dir. */
  function onDisk(digests: string[]): string[] {
    const dir = path.join(daemon.root, 'io.berth.content.v1.content', 'blobs', 'sha256');
    const files = new Set(fs.existsSync(dir) ? fs.readdirSync(dir) : []);
    return digests.filter((d) => files.has(d.slice('sha256:'.length))).sort();
  }
  const blobsOf = (image: PushedImage) => [image.manifest.digest, image.config.digest, image.layer.digest].sort();
  const contentLs = async (ns: string) => lines(ok(await daemon.berth('-n', ns, 'content', 'ls', '-q')));

  /** A new image (its own layer), pulled into each namespace given. */
  async function pulled(repo: string, namespaces: string[]): Promise<PushedImage> {
    const image = await pushRandomImage(registry.url, `${repo}:1`, 256 * 1024);
    const pulls = await Promise.all(
      namespaces.map((ns) => client.withNamespace(ns).images.pull(image.ref, { registry: { plainHttp: true } })),
    );
    for (const p of pulls) expect(p.target.digest).toBe(image.manifest.digest);
    expect(onDisk(blobsOf(image))).toEqual(blobsOf(image));
    return image;
  }

  it('images rm --sync: the image\'s blobs are gone from content ls and from disk', async () => {
    const ns = 'rm-sync';
    const image = await pulled('gc/rm', [ns]);
    expect(await contentLs(ns)).toEqual(blobsOf(image));
    expect(ok(await daemon.berth('-n', ns, 'images', 'rm', '--sync', image.ref))).toBe(`${image.ref}\n`);
    expect(await contentLs(ns)).toEqual([]);
    expect(onDisk(blobsOf(image))).toEqual([]);
  });

  it('a blob another image references stays until that image goes too', async () => {
    const ns = 'two-names';
    const image = await pulled('gc/tagged', [ns]);
    await client.withNamespace(ns).images.tag(image.ref, 'local/copy:1');
    ok(await daemon.berth('-n', ns, 'images', 'rm', '--sync', image.ref));
    const [content, check] = await Promise.all([contentLs(ns), daemon.berth('-n', ns, 'images', 'check')]);
    expect(content).toEqual(blobsOf(image));
    expect(onDisk(blobsOf(image))).toEqual(blobsOf(image));
    expect(ok(check)).toMatch(/^local\/copy:1\s.*\scomplete \(2\/2\)/m);

    ok(await daemon.berth('-n', ns, 'images', 'rm', '--sync', 'local/copy:1'));
    expect(await contentLs(ns)).toEqual([]);
    expect(onDisk(blobsOf(image))).toEqual([]);
  });

  it('a blob another namespace references stays on disk; that namespace still reads it', async () => {
    const image = await pulled('gc/shared', ['shared-a', 'shared-b']);
    ok(await daemon.berth('-n', 'shared-a', 'images', 'rm', '--sync', image.ref));
    const [a, b] = await Promise.all([contentLs('shared-a'), contentLs('shared-b')]);
    expect(a).toEqual([]);
    expect(b).toEqual(blobsOf(image));
    expect(onDisk(blobsOf(image))).toEqual(blobsOf(image));

    ok(await daemon.berth('-n', 'shared-b', 'images', 'rm', '--sync', image.ref));
    expect(await contentLs('shared-b')).toEqual([]);
    expect(onDisk(blobsOf(image))).toEqual([]);
  });

  it('a lease keeps a blob no image references; without it the blob goes at the next collection', async () => {
    const ns = 'leased';
    expect(ok(await daemon.berth('-n', ns, 'leases', 'create', '--id', 'keep-me', '-x', '1h'))).toBe('keep-me\n');
    const held = randomBytes(64 * 1024);
    const loose = randomBytes(64 * 1024);
    const leased = client.withNamespace(ns);
    const info = await leased
      .withLease('keep-me')
      .content.ingest('held-upload', Readable.from([held]), { expected: { size: held.length, digest: sha256Hex(held) } });
    expect(info).toMatchObject({ digest: sha256Hex(held), size: held.length });
    await leased.content.ingest('loose-upload', Readable.from([loose]));
    expect(await leased.leases.listResources('keep-me')).toEqual([{ id: sha256Hex(held), type: 'content' }]);
    expect(await contentLs(ns)).toEqual([sha256Hex(held), sha256Hex(loose)].sort());

    // Any synchronous collection: removing an unrelated lease.
    await leased.leases.create({ id: 'other' });
    ok(await daemon.berth('-n', ns, 'leases', 'rm', '--sync', 'other'));
    expect(await contentLs(ns)).toEqual([sha256Hex(held)]);
    expect(onDisk([sha256Hex(held), sha256Hex(loose)])).toEqual([sha256Hex(held)]);

    expect(ok(await daemon.berth('-n', ns, 'leases', 'rm', '--sync', 'keep-me'))).toBe('keep-me\n');
    expect(await contentLs(ns)).toEqual([]);
    expect(onDisk([sha256Hex(held)])).toEqual([]);
  });
});
