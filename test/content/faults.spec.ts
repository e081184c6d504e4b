import { connect } from '@berth/core';
import { berth, BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { type RegistryProxyHandle, startRegistryProxy } from '../harness/registry-proxy';
import {
  berthRaw,
  errorLine,
  expectAlive,
  type GateHandle,
  json,
  ok,
  type PushedImage,
  pushRandomImage,
  sha256Hex,
  startGate,
  waitFor,
} from './helpers';

interface ActiveIngest {
  ref: string;
  offset: number;
  total: number;
  expected: string;
}

/**
 * berthd under faults: killed mid-pull, and two pulls at once. The daemon
 * reaches the real registry through the harness's fake (a recording proxy
 * that stalls on demand) and a gate that holds a download open on demand.
 */
describe('berthd faults during pulls (fake: recording proxy and a gate in front of docker-registry)', () => {
  let registry: RegistryHandle;
  let gate: GateHandle;
  let proxy: RegistryProxyHandle;
  let daemon: BerthdHandle;

  beforeAll(async () => {
    registry = await startRegistry({ storage: 'empty' });
    gate = await startGate(registry.url);
    [proxy, daemon] = await Promise.all([startRegistryProxy({ upstream: gate.url }), startBerthd()]);
  });
  // A crash fails the test that caused it (expectAlive); the next test gets a new daemon on the same dirs.
  beforeEach(async () => {
    proxy.intercept = undefined;
    proxy.requests.length = 0;
    if (daemon.process.exitCode !== null || daemon.process.signalCode !== null) daemon = await startBerthd({ dir: daemon.dir });
  });
  afterEach(() => {
    gate.open();
    expectAlive(daemon);
  });
  afterAll(async () => {
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
    await proxy?.stop();
    await gate?.stop();
    await registry?.stop();
  });

  const blobGets = (digest: string) => proxy.requestsFor(`/blobs/${digest}`, 'GET');
  const escape = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  /** A new image with a layer no daemon has (a few MB), named through the proxy. */
  async function newImage(repo: string, layerBytes = 2 * 1024 * 1024): Promise<PushedImage & { viaProxy: string }> {
    const pushed = await pushRandomImage(registry.url, `${repo}:1`, layerBytes);
    return { ...pushed, viaProxy: `${proxy.host}/${repo}:1` };
  }

  it('berthd SIGKILLed mid-pull keeps the ingest at its offset; the next pull resumes with Range and verifies (fake: proxy stalls the layer so the kill lands mid-transfer)', async () => {
    const ns = 'killed';
    const image = await newImage('killed/app', 3 * 1024 * 1024);
    const { layer } = image;
    const stallAt = 1_500_000;
    const ingestRef = `layer-${layer.digest}`;
    proxy.intercept = (r) => (r.method === 'GET' && r.url.includes(`/blobs/${layer.digest}`) ? { stallAfter: stallAt } : undefined);

    const pulling = berth(daemon.address, '-n', ns, 'images', 'pull', '--plain-http', image.viaProxy);
    const active = (d: BerthdHandle) => d.berth('-n', ns, '--format', 'json', 'content', 'active');
    // Poll through the API (a CLI run per poll is slow); the CLI shows the result after the restart.
    const client = await connect(daemon.address, { namespace: ns });
    try {
      await waitFor(`the ingest of ${layer.digest} to reach ${stallAt} bytes`, async () =>
        (await client.content.active()).find((s) => s.ref === ingestRef && s.offset === stallAt),
      );
    } finally {
      await client.close();
    }
    daemon.kill('SIGKILL');
    expect(await daemon.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The client sees the daemon go away: one line, exit 1.
    errorLine(await pulling);

    daemon = await startBerthd({ dir: daemon.dir });
    const [afterRestart, committed] = await Promise.all([active(daemon), daemon.berth('-n', ns, 'content', 'ls', '-q')]);
    expect(json<ActiveIngest[]>(afterRestart)).toContainEqual(
      expect.objectContaining({ ref: ingestRef, offset: stallAt, total: layer.size, expected: layer.digest }),
    );
    expect(ok(committed)).not.toContain(layer.digest);

    proxy.intercept = undefined;
    proxy.requests.length = 0;
    const again = ok(await daemon.berth('-n', ns, 'images', 'pull', '--plain-http', image.viaProxy));
    expect(again).toContain(`: pulled ${image.manifest.digest} `);

    const gets = blobGets(layer.digest);
    expect(gets).toHaveLength(1);
    expect(gets[0].range).toBe(`bytes=${stallAt}-`);
    expect(gets[0].status).toBe(206);
    expect(gets[0].bytesSent).toBe(layer.size - stallAt);

    const [check, bytes, leftover] = await Promise.all([
      daemon.berth('-n', ns, 'images', 'check'),
      berthRaw(daemon.address, ['-n', ns, 'content', 'get', layer.digest]),
      active(daemon),
    ]);
    expect(ok(check)).toMatch(new RegExp(`^${escape(image.viaProxy)}\\s.*${image.manifest.digest}\\s+complete \\(2/2\\)`, 'm'));
    expect(bytes.code).toBe(0);
    expect(sha256Hex(bytes.stdout)).toBe(layer.digest);
    expect(json<ActiveIngest[]>(leftover).map((s) => s.ref)).not.toContain(ingestRef);
  });

  it('two concurrent `berth images pull` of one image fetch each blob once (the gate holds the manifest until both pulls are in)', async () => {
    const ns = 'concurrent';
    const image = await newImage('concurrent/app');
    // Both pulls resolve the tag (HEAD), then ask for the manifest by digest: held until both are there.
    gate.hold = (method, url) => method === 'GET' && url.includes(`/manifests/${image.manifest.digest}`);
    const pull = () => berth(daemon.address, '-n', ns, 'images', 'pull', '--plain-http', image.viaProxy);
    const both = Promise.all([pull(), pull()]);
    await waitFor('both pulls to resolve the tag', async () =>
      gate.waiting() >= 1 && proxy.requestsFor('/manifests/1', 'HEAD').length === 2 ? true : undefined,
    );
    // Time for the second pull to ask too, if it would; it waits on the first's download instead.
    await new Promise((r) => setTimeout(r, 1000));
    expect(gate.waiting()).toBe(1);
    gate.open();
    const [a, b] = await both;
    for (const r of [a, b]) expect(ok(r)).toMatch(new RegExp(`^${escape(image.viaProxy)}: pulled ${image.manifest.digest} `));
    for (const blob of [image.manifest, image.config, image.layer]) {
      const kind = blob === image.manifest ? 'manifests' : 'blobs';
      expect([blob.digest, proxy.requestsFor(`/${kind}/${blob.digest}`, 'GET').length]).toEqual([blob.digest, 1]);
    }
    expect(ok(await daemon.berth('-n', ns, 'images', 'check'))).toContain('complete (2/2)');
  });

  it('`berth images pull` waiting on a layer that real ctr is fetching into the same namespace succeeds when ctr commits it', async () => {
    const ns = 'with-ctr';
    const image = await newImage('with-ctr/app');
    gate.hold = (method, url) => method === 'GET' && url.includes(`/blobs/${image.layer.digest}`);
    // ctr opens the layer's ingest, then its download is held at the gate.
    const fetching = daemon.ctr('-n', ns, 'content', 'fetch', '--plain-http', image.viaProxy);
    await waitFor("ctr's layer download to be held", async () => (gate.waiting() === 1 ? true : undefined));
    const pulling = berth(daemon.address, '-n', ns, 'images', 'pull', '--plain-http', image.viaProxy);
    await waitFor('berth to resolve the tag', async () =>
      proxy.requestsFor('/manifests/1', 'HEAD').length === 2 ? true : undefined,
    );
    // berth finds the ingest locked by ctr's writer and waits for it.
    await new Promise((r) => setTimeout(r, 1000));
    gate.open();
    const [fetched, pulled] = await Promise.all([fetching, pulling]);
    expect(fetched.code).toBe(0);
    expect(ok(pulled)).toContain(`: pulled ${image.manifest.digest} `);
    expect(blobGets(image.layer.digest)).toHaveLength(1);
    expect(ok(await daemon.berth('-n', ns, 'images', 'check'))).toContain('complete (2/2)');
  });
});
