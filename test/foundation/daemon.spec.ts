import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { BerthdHandle, makeTempDir, removeDir, repoRoot, startBerthd } from '../harness/daemon';
import { run } from '../harness/process';

const fixtures = path.join(repoRoot, 'test', 'fixtures', 'plugins');

describe('berthd lifecycle', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(removeDir));

  it('serves on a 0660 socket in a 0711 directory and removes it on SIGTERM', async () => {
    const d = await startBerthd();
    dirs.push(d.dir);
    expect(fs.statSync(d.address).mode & 0o777).toBe(0o660);
    expect(fs.statSync(d.state).mode & 0o777).toBe(0o711);
    expect((await d.berth('version')).code).toBe(0);
    const exit = await d.stop();
    expect(exit.code).toBe(0);
    expect(fs.existsSync(d.address)).toBe(false);
    // structured logs: every line pino wrote is JSON
    const jsonLines = d.output.split('\n').filter((l) => l.startsWith('{'));
    expect(jsonLines.length).toBeGreaterThan(0);
    expect(jsonLines.map((l) => JSON.parse(l).msg)).toContain('berthd serving');
  });

  it('keeps its uuid across restarts and replaces a stale socket left by SIGKILL', async () => {
    const first = await startBerthd();
    dirs.push(first.dir);
    const uuid = JSON.parse((await first.berth('--format', 'json', 'version')).stdout).server.uuid;
    first.kill('SIGKILL');
    await first.exited;
    expect(fs.existsSync(first.address)).toBe(true); // stale socket file left behind
    const second = await startBerthd({ dir: first.dir });
    const again = JSON.parse((await second.berth('--format', 'json', 'version')).stdout).server.uuid;
    expect(again).toBe(uuid);
    await second.stop();
  });

  it('refuses a second berthd on a socket a live daemon serves', async () => {
    const live = await startBerthd();
    dirs.push(live.dir);
    const other = makeTempDir();
    dirs.push(other);
    const res = await run(process.execPath, [
      path.join(repoRoot, 'cmd/berthd/lib/main.js'),
      '--root', path.join(other, 'root'), '--state', path.join(other, 'state'), '--address', live.address,
    ]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`another daemon is already serving on ${live.address}`);
    // the live one is untouched
    expect((await live.berth('version')).code).toBe(0);
    await live.stop();
  });

  it('runs two daemons side by side with separate roots and sockets', async () => {
    const a = await startBerthd();
    const b = await startBerthd();
    dirs.push(a.dir, b.dir);
    await a.berth('namespaces', 'create', 'only-in-a');
    await b.berth('namespaces', 'create', 'only-in-b');
    const listA = (await a.ctr('namespaces', 'ls', '-q')).stdout.split('\n');
    const listB = (await b.ctr('namespaces', 'ls', '-q')).stdout.split('\n');
    expect(listA).toContain('only-in-a');
    expect(listA).not.toContain('only-in-b');
    expect(listB).toContain('only-in-b');
    expect(listB).not.toContain('only-in-a');
    const uuidA = /UUID:\s+(\S+)/.exec((await a.ctr('version')).stdout)![1];
    const uuidB = /UUID:\s+(\S+)/.exec((await b.ctr('version')).stdout)![1];
    expect(uuidA).not.toBe(uuidB);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('answers grpc.health.v1 Check with SERVING', async () => {
    const d = await startBerthd();
    dirs.push(d.dir);
    // A raw HTTP/2 gRPC call, independent of berth's own client.
    const http2 = await import('http2');
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(d.address) });
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': '/grpc.health.v1.Health/Check',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
      req.end(Buffer.from([0, 0, 0, 0, 0])); // empty HealthCheckRequest
    });
    session.close();
    // 5-byte gRPC prefix, then field 1 (status) varint 1 = SERVING
    expect([...body]).toEqual([0, 0, 0, 0, 2, 0x08, 0x01]);
    await d.stop();
  });

  it('prints the default config with every plugin table', async () => {
    const res = await run(process.execPath, [path.join(repoRoot, 'cmd/berthd/lib/main.js'), 'config', 'default']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^version = 2$/m);
    expect(res.stdout).toMatch(/^root = "\/var\/lib\/berth"$/m);
    expect(res.stdout).toMatch(/^\[grpc\]$/m);
    expect(res.stdout).toMatch(/address = "\/run\/berth\/berth.sock"/);
  });
});

describe('plugin graph through berthd', () => {
  let d: BerthdHandle;
  beforeAll(async () => {
    d = await startBerthd({ config: `plugin_modules = ["${path.join(fixtures, 'graph.js')}"]\n` });
  });
  afterAll(async () => {
    await d.stop();
    removeDir(d.dir);
  });

  it('shows skipped, failed and unsatisfied plugins while the rest serve', async () => {
    const ls = await d.ctr('plugins', 'ls');
    expect(ls.stdout).toMatch(/^io\.test\.skipper\.v1\s+skipper\s+-\s+skip\s*$/m);
    expect(ls.stdout).toMatch(/^io\.test\.thrower\.v1\s+thrower\s+-\s+error\s*$/m);
    expect(ls.stdout).toMatch(/^io\.test\.needy\.v1\s+needy\s+-\s+error\s*$/m);
    expect(ls.stdout).toMatch(/^io\.berth\.grpc\.v1\s+namespaces\s+-\s+ok\s*$/m);
    const json = JSON.parse((await d.berth('--format', 'json', 'plugins', 'ls')).stdout) as { id: string; status: string; error?: string }[];
    const byId = Object.fromEntries(json.map((p) => [p.id, p]));
    expect(byId.skipper).toMatchObject({ status: 'skipped' });
    expect(byId.skipper.error).toContain('no frobnicator on this host');
    expect(byId.thrower).toMatchObject({ status: 'error' });
    expect(byId.thrower.error).toContain('boom: thrower could not start');
    expect(byId.needy.error).toContain('io.test.absent.v1');
    const detailed = await d.berth('plugins', 'ls', '--detailed', 'id==thrower');
    expect(detailed.stdout).toContain('Error:         boom: thrower could not start');
  });

  it('refuses to delete a namespace that still holds resources (FailedPrecondition)', async () => {
    expect((await d.berth('namespaces', 'create', 'busy-1')).code).toBe(0);
    const rm = await d.berth('namespaces', 'rm', 'busy-1');
    expect(rm.code).toBe(1);
    expect(rm.stderr.trim()).toBe('berth: namespace "busy-1" must be empty, but it still has widgets');
    const viaCtr = await d.ctr('namespaces', 'remove', 'busy-1');
    expect(viaCtr.code).not.toBe(0);
    expect(viaCtr.stderr).toMatch(/failed precondition/);
  });
});

describe('berthd refuses bad configuration', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(removeDir));

  async function startExpectingFailure(config: string) {
    const d = await startBerthd({ config, waitReady: false });
    dirs.push(d.dir);
    const exit = await d.exited;
    return { exit, output: d.output, configPath: path.join(d.dir, 'config.toml'), dir: d.dir };
  }

  it('names the cycle when plugins require each other', async () => {
    const r = await startExpectingFailure(`plugin_modules = ["${path.join(fixtures, 'cycle.js')}"]\n`);
    expect(r.exit.code).toBe(1);
    expect(r.output).toMatch(/io\.test\.chicken\.v1\.chicken -> io\.test\.egg\.v1\.egg -> io\.test\.chicken\.v1\.chicken|io\.test\.egg\.v1\.egg -> io\.test\.chicken\.v1\.chicken -> io\.test\.egg\.v1\.egg/);
  });

  it('exits with a clear message when a required plugin fails', async () => {
    const r = await startExpectingFailure(
      `plugin_modules = ["${path.join(fixtures, 'graph.js')}"]\nrequired_plugins = ["io.test.thrower.v1.thrower"]\n`,
    );
    expect(r.exit.code).toBe(1);
    expect(r.output).toMatch(/berthd: .*io\.test\.thrower\.v1\.thrower.*boom: thrower could not start/);
    expect(fs.existsSync(path.join(r.dir, 'berth.sock'))).toBe(false);
  });

  it('names the file and the key of a wrongly typed setting', async () => {
    const r = await startExpectingFailure('version = 2\n[grpc]\naddress = 42\n');
    expect(r.exit.code).toBe(1);
    expect(r.output).toContain(r.configPath);
    expect(r.output).toContain('grpc.address');
  });

  it('names an unknown key', async () => {
    const r = await startExpectingFailure('version = 2\n[grpc]\nadress = "/tmp/x.sock"\n');
    expect(r.exit.code).toBe(1);
    expect(r.output).toContain(r.configPath);
    expect(r.output).toContain('adress');
  });

  it('names the line of a TOML syntax error', async () => {
    const r = await startExpectingFailure('version = 2\nroot = "/unterminated\n');
    expect(r.exit.code).toBe(1);
    expect(r.output).toContain(r.configPath);
    expect(r.output).toContain(`${r.configPath}:2:`); // file:line:column
  });

  it('names an unknown plugin URI', async () => {
    const r = await startExpectingFailure('[plugins."io.berth.nope.v1.ghost"]\nx = 1\n');
    expect(r.exit.code).toBe(1);
    expect(r.output).toContain('io.berth.nope.v1.ghost');
  });
});
