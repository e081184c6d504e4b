import * as fs from 'fs';
import * as path from 'path';
import { cachedFixtureDir } from './fixture-cache';
import { run } from './process';

/** Files of the test PKI, made once per machine with openssl and cached. */
export interface TestCertificates {
  dir: string;
  /** The test CA: give its PEM to clients (`ca` option, hosts.toml `ca`). */
  caCertPath: string;
  caCertPem: string;
  /** Server certificate for 127.0.0.1 and localhost, signed by the CA. */
  serverCertPath: string;
  serverKeyPath: string;
  /** Self-signed certificate and key the token server signs JWTs with (the registry's rootcertbundle). */
  tokenCertPath: string;
  tokenKeyPath: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.stderr}`);
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** The test CA, a server certificate for 127.0.0.1 and a token-signing certificate. */
export async function testCertificates(): Promise<TestCertificates> {
  const dir = await cachedFixtureDir('certs', { version: 1 }, async (d) => {
    await openssl(
      ['req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=berth test CA',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      d,
    );
    await openssl(['req', ...ecKey, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], d);
    fs.writeFileSync(
      path.join(d, 'server.ext'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' +
        'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
    );
    await openssl(
      ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt',
        '-days', '3650', '-extfile', 'server.ext'],
      d,
    );
    await openssl(
      ['req', '-x509', ...ecKey, '-keyout', 'token.key', '-out', 'token.crt', '-days', '3650', '-subj',
        '/CN=berth test token issuer'],
      d,
    );
    for (const f of fs.readdirSync(d)) if (f.endsWith('.key')) fs.chmodSync(path.join(d, f), 0o600);
  });
  return {
    dir,
    caCertPath: path.join(dir, 'ca.crt'),
    caCertPem: fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    serverCertPath: path.join(dir, 'server.crt'),
    serverKeyPath: path.join(dir, 'server.key'),
    tokenCertPath: path.join(dir, 'token.crt'),
    tokenKeyPath: path.join(dir, 'token.key'),
  };
}

/**
 * A bcrypt htpasswd line, as the registry requires. Made with perl's crypt(3),
 * which is libxcrypt on Debian and speaks bcrypt (`$2b$`): neither htpasswd
 * nor a bcrypt npm package is installed here.
 */
export async function htpasswdLine(username: string, password: string): Promise<string> {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let salt = '';
  for (let i = 0; i < 21; i++) salt += alphabet[Math.floor(Math.random() * alphabet.length)];
  salt += '.'; // the 22nd character carries only 2 bits; '.' keeps them zero
  const r = await run('perl', ['-e', 'print crypt($ENV{BERTH_PW}, $ENV{BERTH_SALT})'], {
    env: { ...process.env, BERTH_PW: password, BERTH_SALT: `$2b$05$${salt}` },
  });
  if (r.code !== 0 || !r.stdout.startsWith('$2b$')) {
    throw new Error(`perl crypt() did not produce a bcrypt hash (libxcrypt missing?): ${r.stderr}`);
  }
  return `${username}:${r.stdout}`;
}
