import { BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import { type FixtureImages, fixtureImages } from '../harness/images';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { type RegistryProxyHandle, startRegistryProxy } from '../harness/registry-proxy';
import { errorLine, expectAlive, json, ok, pushRandomImage, waitFor } from './helpers';

interface IngestJson {
  ref: string;
  offset: number;
}

/**
 * What berthd does with bad input from registries and users: the CLI exits 1
 * with one line naming what went wrong, and nothing half-done is recorded.
 */
describe('bad registry data and bad pull requests through berthd (real docker-registry; a fake proxy for broken blobs)', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let proxy: RegistryProxyHandle;
  let daemon: BerthdHandle;

  beforeAll(async () => {
    fixtures = await fixtureImages();
    [registry, daemon] = await Promise.all([startRegistry(), startBerthd()]);
    proxy = await startRegistryProxy({ upstream: registry.url });
  });
  // A daemon that crashed fails the test that crashed it (expectAlive); the next test gets a new one on the same dirs.
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

  const blobGets = (digest: string) => proxy.requestsFor(`/blobs/${digest}`, 'GET');

  /** What a namespace holds afterwards: images, committed digests, ingest refs. */
  async function state(ns: string): Promise<{ images: string; content: string; ingests: string[] }> {
    const [images, content, active] = await Promise.all([
      daemon.berth('-n', ns, 'images', 'ls', '-q'),
      daemon.berth('-n', ns, 'content', 'ls', '-q'),
      daemon.berth('-n', ns, '--format', 'json', 'content', 'active'),
    ]);
    return { images: ok(images), content: ok(content), ingests: json<IngestJson[]>(active).map((s) => s.ref) };
  }

  it('fake registry serves a corrupted blob (a fault no real registry can be made to cause): the error names the digest, nothing is committed, no ingest is left', async () => {
    const ns = 'corrupt';
    // A layer this daemon has never seen, so its bytes really come over the wire.
    const image = await pushRandomImage(registry.url, 'corrupt/app:1', 1024 * 1024);
    const { layer } = image;
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(`/blobs/${layer.digest}`) ? { corruptAt: 5000 } : undefined);
    try {
      const pull = await daemon.berth('-n', ns, 'images', 'pull', '--plain-http', `${proxy.host}/corrupt/app:1`);
      expect(pull.stdout).toBe('');
      expect(errorLine(pull)).toBe(
        `berth: blob ${layer.digest} (${layer.mediaType}) failed verification: the data received does not match its digest ` +
          `and size (${layer.size} bytes); nothing was committed`,
      );
    } finally {
      proxy.intercept = undefined;
    }
    // Wrong bytes are not fetched again: the registry would send the same.
    expect(blobGets(layer.digest)).toHaveLength(1);
    const after = await state(ns);
    expect(after.images).toBe('');
    expect(after.content).not.toContain(layer.digest);
    expect(after.ingests).not.toContain(`layer-${layer.digest}`);
    expect(after.ingests.filter((r) => r.includes(layer.digest))).toEqual([]);

    // The same image from the real registry is fine.
    const good = ok(await daemon.berth('-n', ns, 'images', 'pull', '--plain-http', image.ref));
    expect(good).toContain(`: pulled ${image.manifest.digest} `);
  });

  it('fake registry truncates a blob on every request: the error names the digest and its byte counts, nothing is committed', async () => {
    const ns = 'truncated';
    const image = await pushRandomImage(registry.url, 'truncated/app:1', 512 * 1024);
    const { layer } = image;
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(`/blobs/${layer.digest}`) ? { truncateTo: 1000 } : undefined);
    let line: string;
    try {
      line = errorLine(await daemon.berth('-n', ns, 'images', 'pull', '--plain-http', `${proxy.host}/truncated/app:1`));
    } finally {
      proxy.intercept = undefined;
    }
    // Each retry resumed where the last stopped, and got 1000 bytes more.
    const gets = blobGets(layer.digest);
    expect(gets.map((g) => g.range)).toEqual([undefined, 'bytes=1000-', 'bytes=2000-', 'bytes=3000-']);
    expect(line).toMatch(
      new RegExp(`^berth: blob ${layer.digest}: the registry ended the transfer after 4000 of ${layer.size} bytes \\(truncated\\)`),
    );
    const after = await state(ns);
    expect(after.images).toBe('');
    expect(after.content).not.toContain(layer.digest);
  });

  it('no manifest for the asked platform: one line listing what the index has; no image recorded', async () => {
    const ns = 'platform';
    const pull = await daemon.berth('-n', ns, 'images', 'pull', '--plain-http', '--platform', 'linux/s390x', registry.ref('multi:latest'));
    expect(errorLine(pull)).toBe(
      `berth: ${registry.ref('multi:latest')}: no manifest for platform linux/s390x in index ${fixtures.multi.index.digest} ` +
        '(it has: linux/amd64, linux/arm64)',
    );
    expect(ok(await daemon.berth('-n', ns, 'images', 'ls', '-q'))).toBe('');
    // What the failed pull held (the index) goes with its transfer lease at the next collection.
    await waitFor('the index to be collected', async () =>
      ok(await daemon.berth('-n', ns, 'content', 'ls', '-q')) === '' ? true : undefined,
    );
  });

  it('an unknown tag and a malformed reference are one line each', async () => {
    const [unknown, malformed] = await Promise.all([
      daemon.berth('-n', 'refs', 'images', 'pull', '--plain-http', registry.ref('busybox:no-such-tag')),
      daemon.berth('-n', 'refs', 'images', 'pull', '--plain-http', `${registry.host}/Upper/Case:x`),
    ]);
    expect(errorLine(unknown)).toMatch(new RegExp(`${registry.ref('busybox:no-such-tag').replace(/[.]/g, '\\.')}.*not found`));
    expect(errorLine(malformed)).toMatch(/Upper\/Case/);
  });
});
