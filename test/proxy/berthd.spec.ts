import * as fs from 'fs';
import * as path from 'path';
import { berthBin, type BerthdHandle, makeTempDir, startBerthd } from '../harness/daemon';
import { run, type RunResult } from '../harness/process';
import { describeAsRoot } from '../harness/root';
import { mountsUnder, rawSnapshots, type Spawned, startSnapshotterServer, unmountLeftovers } from './helpers';

/**
 * berthd loading an external snapshotter: `berth snapshotter serve native` on
 * one socket, berthd configured with `[proxy_plugins.ext]` pointing at it (and
 * `[proxy_plugins.gone]` pointing at nothing).
 */
describeAsRoot('berthd with a proxy snapshotter from `berth snapshotter serve`', () => {
  let dir: string;
  let server: Spawned | undefined;
  let berthd: BerthdHandle | undefined;
  let s1: string;
  let r: string;
  let missing: string;

  const ok = (res: RunResult, what: string): RunResult => {
    if (res.code !== 0) throw new Error(`${what} failed (${res.code ?? res.signal}):\n${res.stdout}${res.stderr}\nberthd:\n${berthd?.output ?? ''}`);
    return res;
  };

  beforeAll(async () => {
    dir = makeTempDir('bpd-');
    s1 = path.join(dir, 's1.sock');
    r = path.join(dir, 'ext');
    missing = path.join(dir, 'nobody-here.sock');
    server = await startSnapshotterServer('native', r, s1);
    fs.mkdirSync(path.join(dir, 'd'));
    berthd = await startBerthd({
      dir: path.join(dir, 'd'),
      config: [
        '[proxy_plugins.ext]',
        'type = "snapshot"',
        `address = ${JSON.stringify(s1)}`,
        '',
        '[proxy_plugins.gone]',
        'type = "snapshot"',
        `address = ${JSON.stringify(missing)}`,
        '',
      ].join('\n'),
    });
  });

  afterAll(async () => {
    const problems: string[] = [];
    try {
      const stopped = await berthd?.stop();
      if (stopped && stopped.code !== 0) problems.push(`berthd ended with ${JSON.stringify(stopped)}:\n${berthd?.output}`);
      // berthd going away closes its channel, not the server.
      if (server && !server.running) problems.push(`snapshotter server died with berthd:\n${server.output}`);
      const served = await server?.stop();
      if (served && served.code !== 0) problems.push(`snapshotter server ended with ${JSON.stringify(served)}:\n${server?.output}`);
      if (fs.existsSync(s1)) problems.push('snapshotter server left its socket');
    } finally {
      if (dir) {
        const leftover = await unmountLeftovers(dir);
        if (leftover.length) problems.push(`mounts left behind: ${leftover.join(', ')}`);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    expect(problems).toEqual([]);
  });

  it('lists the proxy as a loaded snapshotter plugin, to berth and to ctr', async () => {
    const berthList = ok(await berthd!.berth('plugins', 'ls'), 'berth plugins ls').stdout;
    expect(berthList).toMatch(/^io\.berth\.snapshotter\.v1\s+ext\s+-\s+ok$/m);
    const ctrList = ok(await berthd!.ctr('plugins', 'ls'), 'ctr plugins ls').stdout;
    expect(ctrList).toMatch(/^io\.berth\.snapshotter\.v1\s+ext\s+-\s+ok\s*$/m);

    const detailed = JSON.parse(ok(await berthd!.berth('--format', 'json', 'plugins', 'ls', 'id==ext'), 'berth plugins ls id==ext').stdout);
    expect(detailed).toEqual([
      expect.objectContaining({
        type: 'io.berth.snapshotter.v1',
        id: 'ext',
        status: 'ok',
        exports: { address: s1 },
        capabilities: ['proxy'],
      }),
    ]);
  });

  it('marks a proxy whose socket does not answer as failed, naming the address, and serves anyway', async () => {
    const ctrList = ok(await berthd!.ctr('plugins', 'ls'), 'ctr plugins ls').stdout;
    expect(ctrList).toMatch(/^io\.berth\.snapshotter\.v1\s+gone\s+-\s+error\s*$/m);
    const [gone] = JSON.parse(ok(await berthd!.berth('--format', 'json', 'plugins', 'ls', 'id==gone'), 'berth plugins ls').stdout);
    expect(gone.status).toBe('error');
    expect(gone.error).toContain(`cannot connect to snapshotter "gone" at ${missing}`);
  });

  it('takes ctr snapshot commands to the external snapshotter through berthd', async () => {
    const empty = ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'ls'), 'ctr snapshots ls').stdout;
    expect(empty.trim().split('\n')).toHaveLength(1);

    ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'prepare', 'k1'), 'ctr snapshots prepare');
    let raw = await rawSnapshots(s1);
    expect(raw.map((i) => [i.kind, i.name.endsWith('/k1')])).toEqual([['active', true]]);
    const mounts = ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'mounts', '/mnt/x', 'k1'), 'ctr snapshots mounts').stdout;
    expect(mounts).toContain(path.join(r, 'snapshots'));

    ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'commit', 'c1', 'k1'), 'ctr snapshots commit');
    ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'prepare', 'k2', 'c1'), 'ctr snapshots prepare k2');
    raw = await rawSnapshots(s1);
    const committed = raw.find((i) => i.name.endsWith('/c1'));
    expect(committed?.kind).toBe('committed');
    expect(raw.find((i) => i.name.endsWith('/k2'))).toMatchObject({ kind: 'active', parent: committed!.name });

    const listed = ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'ls'), 'ctr snapshots ls').stdout;
    expect(listed).toMatch(/^c1\s+Committed\s*$/m);
    expect(listed).toMatch(/^k2\s+c1\s+Active\s*$/m);

    ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'rm', 'k2'), 'ctr snapshots rm k2');
    ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'rm', 'c1'), 'ctr snapshots rm c1');
    const after = ok(await berthd!.ctr('snapshots', '--snapshotter', 'ext', 'ls'), 'ctr snapshots ls').stdout;
    expect(after.trim().split('\n')).toHaveLength(1);
    expect(mountsUnder(dir)).toEqual([]);
  });

  it('`berth snapshotter serve` refuses a socket another server answers on, before touching its root', async () => {
    const otherRoot = path.join(dir, 'other');
    const res = await run(process.execPath, [berthBin, 'snapshotter', 'serve', 'overlayfs', '--root', otherRoot, '--address', s1]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`berth: another server is already listening on ${s1}`);
    expect(fs.existsSync(otherRoot)).toBe(false);
    expect(server!.running).toBe(true);

    const noAddress = await run(process.execPath, [berthBin, 'snapshotter', 'serve', 'native', '--root', otherRoot]);
    expect(noAddress.code).toBe(1);
    expect(noAddress.stderr).toContain('--address <socket> is required');
  });
});
