import { type ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { htpasswdLine, testCertificates } from './certs';
import { fixtureImages } from './images';
import { startTokenServer, type TokenServerHandle } from './token-server';

/**
 * Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a free port,
 * in a temp dir, for one test file:
 *
 *     const registry = await startRegistry();                  // plain HTTP, fixture images
 *     const tlsBasic = await startRegistry({ auth: 'basic' }); // HTTPS (test CA) + htpasswd
 *     const token = await startRegistry({ auth: 'token' });    // Bearer tokens from a Node token server
 *     afterAll(() => registry.stop());
 *
 * Every registry starts with a copy of the fixture images' storage (see
 * images.ts), so it is ready in a fraction of a second with busybox:latest,
 * multi:latest and busybox-docker:latest in it.
 */

/** The user every auth variant accepts unless `users` says otherwise. */
export const TEST_USER = { username: 'berth-tester', password: 'pa55-w0rd-for-tests' } as const;

export interface StartRegistryOptions {
  /** 'none' (default), 'basic' (htpasswd, bcrypt) or 'token' (Bearer, distribution token auth). */
  auth?: 'none' | 'basic' | 'token';
  /** Serve HTTPS with a certificate from the test CA. Default: true for 'basic', false otherwise. */
  tls?: boolean;
  /** Start with the fixture images (default) or empty. */
  storage?: 'fixtures' | 'empty';
  /** Use this directory as storage instead of a temp copy; it is left in place on stop. */
  storageDir?: string;
  /** user → password for 'basic' and 'token'; default TEST_USER. */
  users?: Record<string, string>;
  /** For 'token': grant pull to anonymous clients. */
  anonymousPull?: boolean;
}

export interface RegistryHandle {
  /** `127.0.0.1:<port>`: the registry part of references. */
  host: string;
  port: number;
  /** `http://127.0.0.1:<port>` or `https://...`. */
  url: string;
  tls: boolean;
  dir: string;
  storageDir: string;
  /** PEM of the CA that signed the server certificate (TLS variants). */
  caCertPem?: string;
  caCertPath?: string;
  /** The accepted user for auth variants. */
  credentials?: { username: string; password: string };
  tokenServer?: TokenServerHandle;
  /** What the registry printed (for failure messages). */
  output(): string;
  /** `<ref>` for a repository on this registry: `127.0.0.1:<port>/<repo>`. */
  ref(repoAndTag: string): string;
  stop(): Promise<void>;
}

/** A port nothing listens on right now (another process may take it; startRegistry retries). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function probe(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(`${url}/v2/`, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
  });
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<RegistryHandle> {
  const auth = options.auth ?? 'none';
  const useTls = options.tls ?? auth === 'basic';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reg-'));
  let tokenServer: TokenServerHandle | undefined;
  try {
    const storageDir = options.storageDir ?? path.join(dir, 'storage');
    if (!options.storageDir) {
      if ((options.storage ?? 'fixtures') === 'fixtures') {
        fs.cpSync((await fixtureImages()).registryStorage, storageDir, { recursive: true });
      } else {
        fs.mkdirSync(storageDir);
      }
    }
    const users = options.users ?? { [TEST_USER.username]: TEST_USER.password };
    const certs = useTls || auth === 'token' ? await testCertificates() : undefined;

    const lines = [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${yamlString(storageDir)}`,
      '  delete:',
      '    enabled: true',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      '  addr: 127.0.0.1:PORT',
      '  secret: berth-test-secret',
    ];
    if (useTls) {
      lines.push('  tls:', `    certificate: ${yamlString(certs!.serverCertPath)}`, `    key: ${yamlString(certs!.serverKeyPath)}`);
    }
    if (auth === 'basic') {
      const htpasswd = path.join(dir, 'htpasswd');
      const entries = await Promise.all(Object.entries(users).map(([u, p]) => htpasswdLine(u, p)));
      fs.writeFileSync(htpasswd, `${entries.join('\n')}\n`);
      lines.push('auth:', '  htpasswd:', '    realm: berth-test-registry', `    path: ${yamlString(htpasswd)}`);
    } else if (auth === 'token') {
      tokenServer = await startTokenServer({
        service: 'berth-test-registry',
        issuer: 'berth-test-token-issuer',
        keyPath: certs!.tokenKeyPath,
        certPath: certs!.tokenCertPath,
        users,
        anonymousPull: options.anonymousPull,
      });
      lines.push(
        'auth:',
        '  token:',
        `    realm: ${yamlString(tokenServer.realm)}`,
        '    service: berth-test-registry',
        '    issuer: berth-test-token-issuer',
        `    rootcertbundle: ${yamlString(certs!.tokenCertPath)}`,
      );
    }

    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const configPath = path.join(dir, 'config.yml');
      fs.writeFileSync(configPath, `${lines.join('\n').replace('127.0.0.1:PORT', `127.0.0.1:${port}`)}\n`);
      const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
      let exited = false;
      const exitPromise = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
      child.once('error', (err) => (output += `spawn error: ${err.message}`));

      const url = `${useTls ? 'https' : 'http'}://127.0.0.1:${port}`;
      const deadline = Date.now() + 10_000;
      let ready = false;
      while (!exited && Date.now() < deadline) {
        if ((await probe(url)) !== undefined) {
          ready = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 15));
      }
      if (!ready) {
        await killAndWait(child, exitPromise);
        if (attempt < 3 && /address already in use/.test(output)) continue;
        throw new Error(`docker-registry did not start on port ${port}:\n${output}`);
      }
      const handle: RegistryHandle = {
        host: `127.0.0.1:${port}`,
        port,
        url,
        tls: useTls,
        dir,
        storageDir,
        caCertPem: useTls ? certs!.caCertPem : undefined,
        caCertPath: useTls ? certs!.caCertPath : undefined,
        credentials: auth === 'none' ? undefined : firstUser(users),
        tokenServer,
        output: () => output,
        ref: (repoAndTag) => `127.0.0.1:${port}/${repoAndTag}`,
        async stop() {
          await killAndWait(child, exitPromise);
          await tokenServer?.stop();
          // A caller-given storageDir lies outside `dir` and is kept.
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
      return handle;
    }
  } catch (err) {
    await tokenServer?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function firstUser(users: Record<string, string>): { username: string; password: string } {
  const [username, password] = Object.entries(users)[0];
  return { username, password };
}

async function killAndWait(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** A certs.d-style directory for skopeo's --cert-dir / --dest-cert-dir with the test CA. */
export function skopeoCertDir(registry: RegistryHandle): string {
  const dir = path.join(registry.dir, 'skopeo-certs');
  fs.mkdirSync(dir, { recursive: true });
  if (registry.caCertPem) fs.writeFileSync(path.join(dir, 'ca.crt'), registry.caCertPem);
  return dir;
}
