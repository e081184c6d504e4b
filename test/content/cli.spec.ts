import { execFileSync } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { connect } from '@berth/core';
import { BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import { type FixtureImages, fixtureImages, OCI } from '../harness/images';
import type { RunResult } from '../harness/process';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { type RegistryProxyHandle, startRegistryProxy } from '../harness/registry-proxy';
import {
  berthChild,
  berthRaw,
  errorLine,
  expectAlive,
  json,
  lines,
  ok,
  parseLabels,
  pushRandomImage,
  sha256Hex,
  tableRows,
  waitFor,
} from './helpers';

interface ImageJson {
  name: string;
  target: { mediaType: string; digest: string; size: number };
  labels: Record<string, string>;
}
interface ContentJson {
  digest: string;
  size: number;
  labels: Record<string, string>;
}
interface LeaseJson {
  id: string;
  labels: Record<string, string>;
}
interface IngestJson {
  ref: string;
  offset: number;
  total: number;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The bytes the registry itself serves for a blob (or a manifest by digest). */
async function fromRegistry(registry: RegistryHandle, repo: string, digest: string, mediaType: string): Promise<Buffer> {
  const kind = mediaType === OCI.manifest || mediaType === OCI.index ? 'manifests' : 'blobs';
  const res = await fetch(`${registry.url}/v2/${repo}/${kind}/${digest}`, { headers: { accept: mediaType } });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

// The berth CLI against berthd, every images / content / leases command, on a real registry.
describe('berth CLI: images, content and leases through berthd (real docker-registry)', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let proxy: RegistryProxyHandle;
  let daemon: BerthdHandle;
  let work: string;

  beforeAll(async () => {
    fixtures = await fixtureImages();
    [registry, daemon] = await Promise.all([startRegistry(), startBerthd()]);
    proxy = await startRegistryProxy({ upstream: registry.url });
    work = path.join(daemon.dir, 'work');
    fs.mkdirSync(work);
    // The image most tests work on, in the default namespace, and a copy to tag and remove.
    const pulls = await Promise.all(
      ['default', 'tagging'].map((ns) => daemon.berth('-n', ns, 'images', 'pull', '--plain-http', registry.ref('busybox:latest'))),
    );
    pulls.forEach(ok);
  });
  // A crash fails the test that caused it (expectAlive); the next test gets a new daemon on the same dirs.
  beforeEach(async () => {
    if (daemon.process.exitCode !== null || daemon.process.signalCode !== null) daemon = await startBerthd({ dir: daemon.dir });
  });
  afterEach(() => expectAlive(daemon));
  afterAll(async () => {
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
    await proxy?.stop();
    await registry?.stop();
  });

  const busybox = () => registry.ref('busybox:latest');
  const busyboxBlobs = () => [fixtures.busybox.manifest, fixtures.busybox.config, ...fixtures.busybox.layers];

  it('images pull prints one summary line with the digest, blob count and sizes', async () => {
    const name = registry.ref('multi:latest');
    const r = await daemon.berth('-n', 'pull-summary', 'images', 'pull', '--plain-http', name);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(
      new RegExp(`^${escape(name)}: pulled ${fixtures.multi.index.digest} \\(6 blobs, 1\\.0 MiB, 1\\.0 MiB fetched\\) in \\d+\\.\\ds\\n$`),
    );
    // Again: everything is there, nothing is fetched.
    const again = ok(await daemon.berth('-n', 'pull-summary', 'images', 'pull', '--plain-http', name));
    expect(again).toMatch(new RegExp(`: pulled ${fixtures.multi.index.digest} \\(6 blobs, 1\\.0 MiB, 0 B fetched\\)`));
  });

  it('images ls, tag, check and rm; --format json parses', async () => {
    const ns = 'tagging';
    const tagged = await daemon.berth('-n', ns, 'images', 'tag', busybox(), 'local/busybox:one', 'local/busybox:two');
    expect(ok(tagged)).toBe('local/busybox:one\nlocal/busybox:two\n');

    const [table, quiet, asJson, check, checkJson, filtered, duplicate] = await Promise.all([
      daemon.berth('-n', ns, 'images', 'ls'),
      daemon.berth('-n', ns, 'images', 'ls', '-q'),
      daemon.berth('-n', ns, '--format', 'json', 'images', 'ls'),
      daemon.berth('-n', ns, 'images', 'check'),
      daemon.berth('-n', ns, '--format', 'json', 'images', 'check', 'name~=local/'),
      daemon.berth('-n', ns, 'images', 'ls', '-q', 'name~=busybox:one'),
      daemon.berth('-n', ns, 'images', 'tag', busybox(), 'local/busybox:two'),
    ]);
    const names = [busybox(), 'local/busybox:one', 'local/busybox:two'].sort();
    expect(tableRows(ok(table)).map((r) => [r[0], r[1], r[2]])).toEqual(
      names.map((n) => [n, 'oci.image.manifest.v1+json', fixtures.busybox.manifest.digest]),
    );
    expect(lines(ok(quiet))).toEqual(names);
    const images = json<ImageJson[]>(asJson);
    expect(images.map((i) => [i.name, i.target])).toEqual(
      names.map((n) => [n, { mediaType: OCI.manifest, digest: fixtures.busybox.manifest.digest, size: fixtures.busybox.manifest.size }]),
    );
    const checkRows = tableRows(ok(check));
    expect(checkRows.map((r) => [r[0], r[3], r[4]])).toEqual(names.map((n) => [n, 'complete', '(4/4)']));
    expect(json<unknown[]>(checkJson)).toHaveLength(2);

    // ls filters; a name taken is one clear line; rm prints the name; a missing image is one clear line.
    expect(lines(ok(filtered))).toEqual(['local/busybox:one']);
    expect(errorLine(duplicate)).toMatch(/local\/busybox:two.*already exists/);
    expect(ok(await daemon.berth('-n', ns, 'images', 'rm', 'local/busybox:one'))).toBe('local/busybox:one\n');
    const [remaining, again] = await Promise.all([
      daemon.berth('-n', ns, 'images', 'ls', '-q'),
      daemon.berth('-n', ns, 'images', 'rm', 'local/busybox:one'),
    ]);
    expect(lines(ok(remaining))).toEqual([busybox(), 'local/busybox:two']);
    expect(errorLine(again)).toMatch(/local\/busybox:one.*not found/);
  });

  it('content ls lists every blob; content get returns byte for byte what the registry serves', async () => {
    const [table, quiet, asJson] = await Promise.all([
      daemon.berth('content', 'ls'),
      daemon.berth('content', 'ls', '-q'),
      daemon.berth('--format', 'json', 'content', 'ls'),
    ]);
    const digests = busyboxBlobs().map((d) => d.digest).sort();
    expect(lines(ok(quiet))).toEqual(digests);
    expect(tableRows(ok(table)).map((r) => r[0])).toEqual(digests);
    const infos = json<ContentJson[]>(asJson);
    expect(infos.map((i) => [i.digest, i.size])).toEqual(
      busyboxBlobs().map((d) => [d.digest, d.size]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    expect(infos.find((i) => i.digest === fixtures.busybox.layers[0].digest)?.labels).toMatchObject({
      [`containerd.io/distribution.source.${registry.host}`]: 'busybox',
    });

    // The manifest (served from /manifests/), the config and the big layer.
    const missing = `sha256:${'0'.repeat(64)}`;
    const [notThere] = await Promise.all([
      daemon.berth('content', 'get', missing),
      ...[fixtures.busybox.manifest, fixtures.busybox.config, fixtures.busybox.layers[0]].map(async (d) => {
        const [got, served] = await Promise.all([
          berthRaw(daemon.address, ['content', 'get', d.digest]),
          fromRegistry(registry, 'busybox', d.digest, d.mediaType),
        ]);
        expect(got.code).toBe(0);
        expect(got.stdout.length).toBe(d.size);
        expect(sha256Hex(got.stdout)).toBe(d.digest);
        expect(sha256Hex(got.stdout)).toBe(sha256Hex(served));
      }),
    ]);
    expect(errorLine(notThere as RunResult)).toMatch(new RegExp(`${missing}.*not found`));
  });

  it('content ingest, label, rm: verified writes, labels set and cleared, removal', async () => {
    const ns = 'ingesting';
    const data = randomBytes(300_000);
    const digest = sha256Hex(data);
    const ingested = await berthRaw(
      daemon.address,
      ['-n', ns, 'content', 'ingest', 'my-upload', '--expected-size', String(data.length), '--expected-digest', digest],
      data,
    );
    expect(ingested.code).toBe(0);
    expect(ingested.stdout.toString()).toBe(`${digest}\n`);

    // Wrong expectations: nothing is committed and no ingest is left behind.
    const other = randomBytes(1000);
    const claimed = sha256Hex(randomBytes(1000));
    const [got, badDigest, badSize, present] = await Promise.all([
      berthRaw(daemon.address, ['-n', ns, 'content', 'get', digest]),
      berthRaw(daemon.address, ['-n', ns, 'content', 'ingest', 'bad-digest', '--expected-digest', claimed], other),
      berthRaw(daemon.address, ['-n', ns, 'content', 'ingest', 'bad-size', '--expected-size', '999'], other),
      // Naming a digest the namespace has is success without a write, as in containerd.
      berthRaw(daemon.address, ['-n', ns, 'content', 'ingest', 'again', '--expected-digest', digest], other),
    ]);
    expect(got.stdout.equals(data)).toBe(true);
    expect(present.code).toBe(0);
    expect(present.stdout.toString()).toBe(`${digest}\n`);
    for (const [r, message] of [
      [badDigest, `unexpected commit digest ${sha256Hex(other)}, expected ${claimed}`],
      [badSize, 'unexpected commit size 1000, expected 999'],
    ] as const) {
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`berth: ${message}\n`);
    }
    const [committed, active] = await Promise.all([
      daemon.berth('-n', ns, 'content', 'ls', '-q'),
      daemon.berth('-n', ns, '--format', 'json', 'content', 'active'),
    ]);
    expect(lines(ok(committed))).toEqual([digest]);
    expect(json(active)).toEqual([]);

    expect(ok(await daemon.berth('-n', ns, 'content', 'label', digest, 'team=blue', 'tier=1'))).toBe('team=blue,tier=1\n');
    expect(ok(await daemon.berth('-n', ns, 'content', 'label', digest, 'tier='))).toBe('team=blue\n');
    const [labelled, unfiltered] = await Promise.all([
      daemon.berth('-n', ns, 'content', 'ls', '-q', 'labels.team==blue'),
      daemon.berth('-n', ns, 'content', 'ls'),
    ]);
    expect(lines(ok(labelled))).toEqual([digest]);
    expect(parseLabels(tableRows(ok(unfiltered))[0].at(-1))).toEqual({ team: 'blue' });

    expect(ok(await daemon.berth('-n', ns, 'content', 'rm', digest))).toBe(`${digest}\n`);
    const [gone, get] = await Promise.all([daemon.berth('-n', ns, 'content', 'ls', '-q'), daemon.berth('-n', ns, 'content', 'get', digest)]);
    expect(ok(gone)).toBe('');
    expect(errorLine(get)).toMatch(new RegExp(`${digest}.*not found`));
  });

  it('content active shows a pull\'s ingest at its offset while it stalls; a canceled pull leaves none (fake: proxy stalls the layer)', async () => {
    const ns = 'stalled';
    // A layer no namespace has: berthd keeps one copy of a blob, so a known one would be linked, not fetched.
    const { layer } = await pushRandomImage(registry.url, 'stalled/app:1', 1024 * 1024);
    const ingestRef = `layer-${layer.digest}`;
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(`/blobs/${layer.digest}`) ? { stallAfter: 200_000 } : undefined);
    const client = await connect(daemon.address, { namespace: ns });
    try {
      const pull = berthChild(daemon.address, ['-n', ns, 'images', 'pull', '--plain-http', `${proxy.host}/stalled/app:1`]);
      await waitFor('the stalled ingest', async () => (await client.content.active()).find((s) => s.offset === 200_000));
      const [active, table] = await Promise.all([
        daemon.berth('-n', ns, '--format', 'json', 'content', 'active'),
        daemon.berth('-n', ns, 'content', 'active'),
      ]);
      expect(json<IngestJson[]>(active).map((s) => [s.ref, s.offset, s.total])).toEqual([[ingestRef, 200_000, layer.size]]);
      expect(ok(table)).toMatch(new RegExp(`^REF\\s+SIZE\\s+AGE\\n${ingestRef}\\s+195\\.3 KiB/1\\.0 MiB\\s+\\d+ seconds\\n$`));

      // Ctrl-C: the pull is canceled, its transfer lease released, and GC takes the partial ingest (as containerd's).
      pull.child.kill('SIGINT');
      expect(errorLine(await pull.done)).toMatch(/cancel/i);
      await waitFor('the ingest to be collected', async () => ((await client.content.active()).length === 0 ? true : undefined));
      expect(json(await daemon.berth('-n', ns, '--format', 'json', 'content', 'active'))).toEqual([]);
      expect(ok(await daemon.berth('-n', ns, 'content', 'ls', '-q'))).not.toContain(layer.digest);
    } finally {
      proxy.intercept = undefined;
      await client.close();
    }
  });

  it('leases create, ls and rm', async () => {
    const ns = 'leasing';
    const [named, anonymous] = await Promise.all([
      daemon.berth('-n', ns, 'leases', 'create', '--id', 'build-42', 'owner=ci', '-x', '1h'),
      daemon.berth('-n', ns, 'leases', 'create', '-x', '0'),
    ]);
    expect(ok(named)).toBe('build-42\n');
    const generated = ok(anonymous).trim();
    expect(generated).toMatch(/^\S+$/);

    const [quiet, table, asJson] = await Promise.all([
      daemon.berth('-n', ns, 'leases', 'ls', '-q'),
      daemon.berth('-n', ns, 'leases', 'ls'),
      daemon.berth('-n', ns, '--format', 'json', 'leases', 'ls'),
    ]);
    expect(lines(ok(quiet))).toEqual(['build-42', generated].sort());
    const row = tableRows(ok(table)).find((r) => r[0] === 'build-42')!;
    expect(row[1]).toMatch(/^\d{4}-\d\d-\d\dT/);
    const labels = parseLabels(row.at(-1));
    expect(labels.owner).toBe('ci');
    const expires = Date.parse(labels['containerd.io/gc.expire']);
    expect(expires - Date.now()).toBeGreaterThan(55 * 60_000);
    expect(expires - Date.now()).toBeLessThanOrEqual(60 * 60_000);
    const leases = json<LeaseJson[]>(asJson);
    expect(leases.find((l) => l.id === generated)?.labels).toEqual({});

    expect(ok(await daemon.berth('-n', ns, 'leases', 'rm', 'build-42', generated))).toBe(`build-42\n${generated}\n`);
    const [none, missing] = await Promise.all([daemon.berth('-n', ns, 'leases', 'ls', '-q'), daemon.berth('-n', ns, 'leases', 'rm', 'build-42')]);
    expect(ok(none)).toBe('');
    expect(errorLine(missing)).toMatch(/build-42.*not found/);
  });

  it('images export, then import into another namespace: same image, same bytes', async () => {
    const archive = path.join(work, 'busybox.tar');
    expect(ok(await daemon.berth('images', 'export', archive, busybox()))).toBe('');
    const listing = execFileSync('tar', ['-tf', archive], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(lines(listing)).toEqual(
      lines(
        ['oci-layout', 'index.json', 'manifest.json', 'blobs/', 'blobs/sha256/', ...busyboxBlobs().map((d) => `blobs/sha256/${d.digest.slice(7)}`)].join(
          '\n',
        ),
      ),
    );
    expect(fs.readdirSync(work).filter((f) => f.includes('partial'))).toEqual([]);

    const ns = 'imported';
    expect(ok(await daemon.berth('-n', ns, 'images', 'import', archive))).toBe(`${busybox()} ${fixtures.busybox.manifest.digest}\n`);
    const [check, content, original] = await Promise.all([
      daemon.berth('-n', ns, 'images', 'check'),
      daemon.berth('-n', ns, 'content', 'ls', '-q'),
      daemon.berth('content', 'ls', '-q'),
    ]);
    expect(ok(check)).toMatch(new RegExp(`^${escape(busybox())}\\s.*${fixtures.busybox.manifest.digest}\\s+complete \\(4/4\\)`, 'm'));
    expect(lines(ok(content))).toEqual(lines(ok(original)));
    const manifest = await berthRaw(daemon.address, ['-n', ns, 'content', 'get', fixtures.busybox.manifest.digest]);
    expect(sha256Hex(manifest.stdout)).toBe(fixtures.busybox.manifest.digest);
    // Like ctr images import, the import unpacked: one committed snapshot per layer.
    const snapshots = ok(await daemon.berth('-n', ns, 'snapshots', 'ls'));
    expect(snapshots.split('\n').filter((l) => /\bCommitted\b/i.test(l))).toHaveLength(fixtures.busybox.layers.length);
    // --no-unpack stores content only.
    const bare = 'imported-bare';
    ok(await daemon.berth('-n', bare, 'images', 'import', '--no-unpack', archive));
    expect(ok(await daemon.berth('-n', bare, 'snapshots', 'ls')).split('\n').filter((l) => /\bCommitted\b/i.test(l))).toHaveLength(0);
  });

  it('images push to another repository, then pull it back: digests equal', async () => {
    const dest = registry.ref('pushed/busybox:v1');
    const pushed = await daemon.berth('images', 'push', '--plain-http', dest, busybox());
    expect(ok(pushed)).toMatch(new RegExp(`^${escape(dest)}: pushed \\(5 blobs, 1\\.0 MiB\\) in \\d+\\.\\ds\\n$`));
    const head = await fetch(`${registry.url}/v2/pushed/busybox/manifests/v1`, { method: 'HEAD', headers: { accept: OCI.manifest } });
    expect(head.headers.get('docker-content-digest')).toBe(fixtures.busybox.manifest.digest);

    const back = ok(await daemon.berth('-n', 'pushed-back', 'images', 'pull', '--plain-http', dest));
    expect(back).toContain(`${dest}: pulled ${fixtures.busybox.manifest.digest} `);
    const [listed, check] = await Promise.all([
      daemon.berth('-n', 'pushed-back', '--format', 'json', 'images', 'ls'),
      daemon.berth('-n', 'pushed-back', 'images', 'check'),
    ]);
    expect(json<ImageJson[]>(listed).map((i) => [i.name, i.target.digest])).toEqual([[dest, fixtures.busybox.manifest.digest]]);
    expect(ok(check)).toContain('complete (4/4)');
  });
});
