import * as fs from 'fs';
import * as path from 'path';
import { errorKind } from '@berth/core';
import { pullImage, pushImage, RegistryResolver } from '@berth/remotes';
import { type FixtureImages, fixtureImages } from '../harness/images';
import { newTestContentStore } from '../harness/memory-content-store';
import { type RegistryHandle, startRegistry } from '../harness/registry';

const fast = { retryDelayMs: 10 };

/** The error of a promise expected to fail, with a check that it leaks no secret. */
async function failure(promise: Promise<unknown>, secrets: string[]): Promise<Error> {
  const err = await promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as Error,
  );
  const text = `${err.message} ${String(err.stack)} ${JSON.stringify(err)}`;
  for (const secret of secrets) expect(text).not.toContain(secret);
  return err;
}

describe('basic auth over TLS with a test CA (real docker-registry, htpasswd)', () => {
  let registry: RegistryHandle;
  let fixtures: FixtureImages;
  const roots: string[] = [];
  beforeAll(async () => {
    fixtures = await fixtureImages();
    registry = await startRegistry({ auth: 'basic' });
  });
  afterAll(async () => {
    await registry?.stop();
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  it('pulls with good credentials and the CA', async () => {
    const store = await newTestContentStore(roots);
    const result = await pullImage(registry.ref('busybox'), {
      ...fast,
      store,
      ca: registry.caCertPem,
      credentials: registry.credentials,
    });
    expect(result.target.digest).toBe(fixtures.busybox.manifest.digest);
  });

  it('accepts credentials as user:password and a per-host function', async () => {
    const { username, password } = registry.credentials!;
    const resolver = new RegistryResolver({ ca: registry.caCertPem, credentials: `${username}:${password}` });
    await expect(resolver.resolve(registry.ref('busybox'))).resolves.toMatchObject({
      descriptor: { digest: fixtures.busybox.manifest.digest },
    });
    await resolver.close();
    const asked: string[] = [];
    const perHost = new RegistryResolver({
      ca: registry.caCertPem,
      credentials: (host) => (asked.push(host), registry.credentials),
    });
    await perHost.resolve(registry.ref('multi'));
    await perHost.close();
    expect(asked).toContain(registry.host);
  });

  it('rejects wrong credentials with a clear 401 message that holds no credential', async () => {
    const store = await newTestContentStore(roots);
    const wrong = { username: 'mallory-the-user', password: 'Wr0ng-Secret-Pw' };
    const err = await failure(
      pullImage(registry.ref('busybox'), { ...fast, store, ca: registry.caCertPem, credentials: wrong }),
      [wrong.username, wrong.password, registry.credentials!.password],
    );
    expect(errorKind(err)).toBe('unauthenticated');
    expect(err.message).toMatch(new RegExp(`^${registry.host.replace(/\./g, '\\.')} rejected the credentials \\(HTTP 401\\)`));
  });

  it('says credentials are needed when none are given', async () => {
    const store = await newTestContentStore(roots);
    const err = await failure(pullImage(registry.ref('busybox'), { ...fast, store, ca: registry.caCertPem }), []);
    expect(errorKind(err)).toBe('unauthenticated');
    expect(err.message).toBe(`${registry.host} requires authentication (HTTP 401) and no credentials were given for it`);
  });

  it('fails TLS verification without the CA, clearly and without retrying forever', async () => {
    const resolver = new RegistryResolver({ credentials: registry.credentials, retries: 5, retryDelayMs: 2000 });
    const started = Date.now();
    const err = await failure(resolver.resolve(registry.ref('busybox')), [registry.credentials!.password]);
    await resolver.close();
    expect(Date.now() - started).toBeLessThan(1900);
    expect(errorKind(err)).toBe('unavailable');
    expect(err.message).toContain(`TLS verification of ${registry.url} failed`);
    expect(err.message).toContain("CA");
  });

  it('connects with skipVerify, and with the CA from hosts.toml', async () => {
    const skip = new RegistryResolver({ credentials: registry.credentials, skipVerify: true });
    await expect(skip.resolve(registry.ref('busybox'))).resolves.toBeDefined();
    await skip.close();

    const hostsDir = path.join(registry.dir, 'certs.d');
    fs.mkdirSync(path.join(hostsDir, registry.host), { recursive: true });
    fs.copyFileSync(registry.caCertPath!, path.join(hostsDir, registry.host, 'ca.crt'));
    fs.writeFileSync(path.join(hostsDir, registry.host, 'hosts.toml'), `server = "${registry.url}"\nca = "ca.crt"\n`);
    const viaHosts = new RegistryResolver({ credentials: registry.credentials, hostsDir });
    await expect(viaHosts.resolve(registry.ref('busybox'))).resolves.toMatchObject({
      descriptor: { digest: fixtures.busybox.manifest.digest },
    });
    await viaHosts.close();
  });
});

describe('bearer token auth (real docker-registry, Node token server)', () => {
  let registry: RegistryHandle;
  let fixtures: FixtureImages;
  const roots: string[] = [];
  beforeAll(async () => {
    fixtures = await fixtureImages();
    registry = await startRegistry({ auth: 'token' });
  });
  afterAll(async () => {
    await registry?.stop();
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  it('pulls through the WWW-Authenticate Bearer challenge, caching the token per scope', async () => {
    const store = await newTestContentStore(roots);
    registry.tokenServer!.requests.length = 0;
    const result = await pullImage(registry.ref('multi'), {
      ...fast,
      store,
      plainHttp: true,
      credentials: registry.credentials,
      allPlatforms: true,
    });
    expect(result.target.digest).toBe(fixtures.multi.index.digest);
    // One token for the whole pull: nine requests, all with the same scope.
    expect(registry.tokenServer!.requests).toEqual([
      { user: registry.credentials!.username, scopes: ['repository:multi:pull'], service: 'berth-test-registry', status: 200 },
    ]);
  });

  it('pushes with a pull,push token', async () => {
    const store = await newTestContentStore(roots);
    const options = { ...fast, plainHttp: true, credentials: registry.credentials };
    const pulled = await pullImage(registry.ref('busybox'), { ...options, store });
    registry.tokenServer!.requests.length = 0;
    await pushImage(registry.ref('pushed/busybox:t1'), pulled.target, store, options);
    expect(registry.tokenServer!.requests.map((r) => r.scopes)).toContainEqual(['repository:pushed/busybox:pull,push']);
    const resolver = new RegistryResolver(options);
    await expect(resolver.resolve(registry.ref('pushed/busybox:t1'))).resolves.toMatchObject({
      descriptor: { digest: pulled.target.digest },
    });
    await resolver.close();
  });

  it('rejects wrong credentials at the token server, naming no credential', async () => {
    const store = await newTestContentStore(roots);
    const wrong = { username: 'eve-the-user', password: 'not-the-Password-1' };
    const err = await failure(
      pullImage(registry.ref('busybox'), { ...fast, store, plainHttp: true, credentials: wrong }),
      [wrong.username, wrong.password],
    );
    expect(errorKind(err)).toBe('unauthenticated');
    expect(err.message).toBe(
      `token server ${registry.tokenServer!.realm} rejected the credentials for ${registry.host} (HTTP 401)`,
    );
  });

  it('says credentials are needed when the token server refuses anonymous access', async () => {
    const store = await newTestContentStore(roots);
    const err = await failure(pullImage(registry.ref('busybox'), { ...fast, store, plainHttp: true }), []);
    expect(errorKind(err)).toBe('unauthenticated');
    expect(err.message).toContain('requires credentials');
  });
});

describe('bearer token auth with anonymous pull', () => {
  let registry: RegistryHandle;
  const roots: string[] = [];
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'token', anonymousPull: true });
  });
  afterAll(async () => {
    await registry?.stop();
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  it('pulls anonymously, and a push without credentials is denied clearly', async () => {
    const store = await newTestContentStore(roots);
    const pulled = await pullImage(registry.ref('busybox'), { ...fast, store, plainHttp: true });
    const err = await pushImage(registry.ref('anon/busybox:x'), pulled.target, store, { ...fast, plainHttp: true }).catch(
      (e: Error) => e,
    );
    expect(['unauthenticated', 'permission-denied']).toContain(errorKind(err));
    expect((err as Error).message).toContain(registry.host);
  });
});
