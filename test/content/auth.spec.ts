import * as fs from 'fs';
import * as path from 'path';
import { BerthdHandle, removeDir, startBerthd } from '../harness/daemon';
import type { RunResult } from '../harness/process';
import { type FixtureImages, fixtureImages } from '../harness/images';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { errorLine, expectAlive, ok } from './helpers';

const WRONG_PASSWORD = 'Wr0ng-But-Secret-Passw0rd';

// Credentials go CLI → berthd → registry; a wrong one is refused clearly and no password is ever printed or logged.
describe('basic auth over TLS through berthd (real docker-registry with htpasswd and a test CA)', () => {
  let fixtures: FixtureImages;
  let registry: RegistryHandle;
  let daemon: BerthdHandle;
  let hostsDir: string;
  const outputs: RunResult[] = [];

  beforeAll(async () => {
    fixtures = await fixtureImages();
    [registry, daemon] = await Promise.all([startRegistry({ auth: 'basic' }), startBerthd()]);
    // containerd's certs.d layout: <dir>/<host:port>/hosts.toml naming the CA.
    hostsDir = path.join(daemon.dir, 'certs.d');
    fs.mkdirSync(path.join(hostsDir, registry.host), { recursive: true });
    fs.writeFileSync(
      path.join(hostsDir, registry.host, 'hosts.toml'),
      `server = "${registry.url}"\nca = ${JSON.stringify(registry.caCertPath)}\n`,
    );
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

  const user = () => `${registry.credentials!.username}:${registry.credentials!.password}`;
  async function pull(ns: string, ...flags: string[]): Promise<RunResult> {
    const r = await daemon.berth('-n', ns, 'images', 'pull', ...flags, registry.ref('busybox:latest'));
    outputs.push(r);
    return r;
  }
  function expectNoSecrets(r: RunResult): void {
    for (const secret of [registry.credentials!.password, WRONG_PASSWORD]) {
      expect(r.stdout).not.toContain(secret);
      expect(r.stderr).not.toContain(secret);
    }
  }

  it('pulls with the right credentials and the CA from hosts.toml, or with -k', async () => {
    const [viaHosts, skipVerify] = await Promise.all([
      pull('good-ca', '--user', user(), '--hosts-dir', hostsDir),
      pull('good-k', '--user', user(), '-k'),
    ]);
    for (const r of [viaHosts, skipVerify]) {
      expect(ok(r)).toMatch(new RegExp(`^${registry.ref('busybox:latest').replace(/[.]/g, '\\.')}: pulled ${fixtures.busybox.manifest.digest} `));
      expectNoSecrets(r);
    }
  });

  it('wrong credentials: one line saying the registry rejected them (HTTP 401), no password anywhere', async () => {
    const wrong = `${registry.credentials!.username}:${WRONG_PASSWORD}`;
    const [viaHosts, skipVerify] = await Promise.all([
      pull('wrong-ca', '--user', wrong, '--hosts-dir', hostsDir),
      pull('wrong-k', '--user', wrong, '-k'),
    ]);
    for (const r of [viaHosts, skipVerify]) {
      expect(r.stdout).toBe('');
      expect(errorLine(r)).toMatch(new RegExp(`^berth: ${registry.host.replace(/[.]/g, '\\.')} rejected the credentials \\(HTTP 401\\)`));
      expectNoSecrets(r);
    }
    for (const ns of ['wrong-ca', 'wrong-k']) expect(ok(await daemon.berth('-n', ns, 'images', 'ls', '-q'))).toBe('');
  });

  it('no credentials, and no CA: one clear line each', async () => {
    const [anonymous, untrusted] = await Promise.all([pull('anon', '--hosts-dir', hostsDir), pull('no-ca', '--user', user())]);
    expect(errorLine(anonymous)).toBe(
      `berth: ${registry.host} requires authentication (HTTP 401) and no credentials were given for it`,
    );
    expect(errorLine(untrusted)).toContain(`TLS verification of ${registry.url} failed`);
    expectNoSecrets(untrusted);
  });

  it("berthd's log (debug level) holds neither password", async () => {
    expect(outputs.length).toBeGreaterThanOrEqual(6);
    expect(daemon.output).toContain('berthd serving');
    expect(daemon.output).not.toContain(registry.credentials!.password);
    expect(daemon.output).not.toContain(WRONG_PASSWORD);
  });
});
