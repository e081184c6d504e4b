import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isInvalidArgument } from '@berth/core';
import { configureHosts, hostsWith } from './hosts';

describe('hosts.toml', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-hosts-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (host: string, text: string, files: Record<string, string> = {}) => {
    fs.mkdirSync(path.join(dir, host), { recursive: true });
    fs.writeFileSync(path.join(dir, host, 'hosts.toml'), text);
    for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, host, name), content);
  };

  it('defaults to the server alone: https, or http when plainHttp; Docker Hub via registry-1', async () => {
    expect((await configureHosts('r.example:5000')).map((h) => h.origin)).toEqual(['https://r.example:5000']);
    expect((await configureHosts('127.0.0.1:5000', { plainHttp: true }))[0].origin).toBe('http://127.0.0.1:5000');
    expect((await configureHosts('docker.io', { hostsDir: dir }))[0]).toMatchObject({
      origin: 'https://registry-1.docker.io',
      path: '/v2',
      capabilities: ['pull', 'resolve', 'push'],
    });
  });

  it('lists mirrors in file order, then the server', async () => {
    write(
      'docker.io',
      `server = "https://registry-1.docker.io"

[host."http://127.0.0.1:5001"]
  capabilities = ["pull", "resolve"]

[host."https://mirror.example/custom/v2"]
  capabilities = ["pull"]
  skip_verify = true
  ca = "ca.pem"
  header = { x-team = "berth", x-list = ["a", "b"] }

[host."https://raw.example/prefix"]
  override_path = true
`,
      { 'ca.pem': 'PEM-TEXT' },
    );
    const hosts = await configureHosts('docker.io', { hostsDir: dir });
    expect(hosts.map((h) => `${h.origin}${h.path}`)).toEqual([
      'http://127.0.0.1:5001/v2',
      'https://mirror.example/custom/v2',
      'https://raw.example/prefix',
      'https://registry-1.docker.io/v2',
    ]);
    expect(hosts[0].capabilities).toEqual(['pull', 'resolve']);
    expect(hosts[1].tls).toMatchObject({ skipVerify: true, ca: ['PEM-TEXT'] });
    expect(hosts[1].headers).toEqual({ 'x-team': 'berth', 'x-list': 'a, b' });
    expect(hosts.every((h) => h.upstream === 'docker.io')).toBe(true);
    expect(hostsWith(hosts, 'resolve').map((h) => h.origin)).toEqual([
      'http://127.0.0.1:5001',
      'https://raw.example',
      'https://registry-1.docker.io',
    ]);
    expect(hostsWith(hosts, 'push').map((h) => h.origin)).toEqual(['https://raw.example', 'https://registry-1.docker.io']);
  });

  it('finds host:port directories and falls back to _default', async () => {
    write('127.0.0.1:5000', 'server = "http://127.0.0.1:5000"');
    write('_default', '[host."http://127.0.0.1:9"]\ncapabilities = ["pull", "resolve"]');
    expect((await configureHosts('127.0.0.1:5000', { hostsDir: dir })).map((h) => h.origin)).toEqual(['http://127.0.0.1:5000']);
    expect((await configureHosts('other.example', { hostsDir: dir })).map((h) => h.origin)).toEqual([
      'http://127.0.0.1:9',
      'https://other.example',
    ]);
  });

  it('reads a Docker-style certs.d directory when there is no hosts.toml', async () => {
    fs.mkdirSync(path.join(dir, 'r.example:5000'));
    fs.writeFileSync(path.join(dir, 'r.example:5000', 'ca.crt'), 'CA-PEM');
    fs.writeFileSync(path.join(dir, 'r.example:5000', 'client.cert'), 'CERT-PEM');
    fs.writeFileSync(path.join(dir, 'r.example:5000', 'client.key'), 'KEY-PEM');
    const [server] = await configureHosts('r.example:5000', { hostsDir: dir });
    expect(server.tls).toEqual({ ca: ['CA-PEM'], clientCertificates: [{ cert: 'CERT-PEM', key: 'KEY-PEM' }] });
  });

  it('applies top-level settings to the server', async () => {
    write('r.example', 'ca = "/nonexistent/ca.pem"');
    await expect(configureHosts('r.example', { hostsDir: dir })).rejects.toThrow(/cannot read \/nonexistent\/ca.pem/);
    write('r.example', 'skip_verify = true\ncapabilities = ["pull", "resolve"]');
    const [server] = await configureHosts('r.example', { hostsDir: dir });
    expect(server).toMatchObject({ origin: 'https://r.example', capabilities: ['pull', 'resolve'], tls: { skipVerify: true } });
  });

  it.each([
    ['server = 3', /"server" must be a URL string/],
    ['[host."ftp://x"]', /scheme must be http or https/],
    ['[host."https://x"]\ncapabilities = ["fly"]', /unknown capability "fly"/],
    ['[host."https://u:p@x"]', /must not carry credentials/],
    ['this is not toml', /invalid TOML/],
  ])('rejects %j clearly', async (text, why) => {
    write('r.example', text);
    const err = await configureHosts('r.example', { hostsDir: dir }).catch((e: unknown) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toMatch(why);
  });
});
