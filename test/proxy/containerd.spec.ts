import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { makeTempDir } from '../harness/daemon';
import { fixtureImages } from '../harness/images';
import { run, type RunResult } from '../harness/process';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { describeAsRoot } from '../harness/root';
import {
  listDir,
  mountsUnder,
  processesNaming,
  rawSnapshots,
  SHIM_SOCKET_DIR,
  shimSocketPath,
  Spawned,
  startSnapshotterServer,
  unmountLeftovers,
  waitForSocket,
} from './helpers';

/**
 * The real containerd 1.6 using berth's overlayfs snapshotter as a proxy
 * plugin: `berth snapshotter serve overlayfs` on a socket, containerd on temp
 * dirs with `[proxy_plugins.berth]`, then ctr pulls (unpacking into berth's
 * snapshots) and runs a container on them.
 */
describeAsRoot('containerd 1.6 with berth\'s overlayfs as a proxy snapshotter', () => {
  const namespace = 'default';
  const containerId = 'c1';
  let dir: string;
  let registry: RegistryHandle | undefined;
  let snapshotter: Spawned | undefined;
  let containerd: Spawned | undefined;
  let csock: string;
  let snSock: string;
  let snRoot: string;
  let shimDirBefore: string[];

  const ctr = (...args: string[]): Promise<RunResult> =>
    run('ctr', ['-a', csock, '-n', namespace, ...args], {
      env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
      timeoutMs: 60_000,
    });
  const ok = (r: RunResult, what: string): RunResult => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code ?? r.signal}):\n${r.stdout}${r.stderr}\ncontainerd:\n${containerd?.output ?? ''}`);
    return r;
  };

  beforeAll(async () => {
    await fixtureImages();
    registry = await startRegistry();
    shimDirBefore = listDir(SHIM_SOCKET_DIR);
    // Short: containerd's sockets (and <address>.ttrpc) must fit in 108 bytes.
    dir = makeTempDir('bpx-');
    csock = path.join(dir, 'c.sock');
    snSock = path.join(dir, 'sn.sock');
    snRoot = path.join(dir, 'sn');
    for (const d of ['runc', 'fifo']) fs.mkdirSync(path.join(dir, d));

    snapshotter = await startSnapshotterServer('overlayfs', snRoot, snSock);

    const config = [
      'version = 2',
      `root = ${JSON.stringify(path.join(dir, 'croot'))}`,
      `state = ${JSON.stringify(path.join(dir, 'cstate'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(csock)}`,
      // Else containerd creates /opt/containerd.
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${JSON.stringify(path.join(dir, 'opt'))}`,
      '[proxy_plugins.berth]',
      '  type = "snapshot"',
      `  address = ${JSON.stringify(snSock)}`,
      '',
    ].join('\n');
    const configPath = path.join(dir, 'containerd.toml');
    fs.writeFileSync(configPath, config);
    containerd = new Spawned('containerd', spawn('containerd', ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await waitForSocket(containerd, csock);
  });

  afterAll(async () => {
    const problems: string[] = [];
    try {
      if (containerd?.running) {
        // Whatever a failed test left: the container and its task, then the image.
        await ctr('tasks', 'kill', '-s', 'SIGKILL', containerId).catch(() => undefined);
        await ctr('tasks', 'rm', '-f', containerId).catch(() => undefined);
        await ctr('containers', 'rm', containerId).catch(() => undefined);
        if (registry) await ctr('images', 'rm', '--sync', registry.ref('busybox:latest')).catch(() => undefined);
      }
      const stopped = await containerd?.stop();
      if (stopped && stopped.code !== 0 && stopped.signal !== 'SIGTERM') problems.push(`containerd ended with ${JSON.stringify(stopped)}`);
      if (dir) {
        const shims = processesNaming(dir, 'containerd-shim');
        for (const pid of shims) process.kill(pid, 'SIGKILL');
        if (shims.length) problems.push(`leftover shims killed: ${shims.join(', ')}`);
        // Only this containerd's shim socket; the directory is shared with other containerds.
        const ours = path.basename(shimSocketPath(csock, namespace, containerId));
        for (const name of listDir(SHIM_SOCKET_DIR).filter((n) => !shimDirBefore.includes(n) && n === ours)) {
          fs.rmSync(path.join(SHIM_SOCKET_DIR, name), { force: true });
          problems.push(`shim socket ${name} left behind`);
        }
      }
      const served = await snapshotter?.stop();
      if (served && served.code !== 0) problems.push(`snapshotter server ended with ${JSON.stringify(served)}:\n${snapshotter?.output}`);
      if (dir && fs.existsSync(snSock)) problems.push('snapshotter server left its socket');
    } finally {
      if (dir) {
        const leftover = await unmountLeftovers(dir);
        if (leftover.length) problems.push(`mounts left behind: ${leftover.join(', ')}`);
        fs.rmSync(dir, { recursive: true, force: true });
      }
      await registry?.stop();
    }
    expect(problems).toEqual([]);
  });

  it('loads berth\'s socket as proxy plugin "berth"', async () => {
    const out = ok(await ctr('plugins', 'ls'), 'ctr plugins ls').stdout;
    expect(out).toMatch(/^io\.containerd\.snapshotter\.v1\s+berth\s+-\s+ok\s*$/m);
  });

  it('pulls and unpacks busybox into berth\'s snapshots, runs a container on them, and removes it all', async () => {
    const image = registry!.ref('busybox:latest');
    const fixtures = await fixtureImages();

    ok(await ctr('images', 'pull', '--plain-http', '--snapshotter', 'berth', image), 'ctr images pull');
    // containerd sees three committed layers...
    const listed = ok(await ctr('snapshots', '--snapshotter', 'berth', 'ls'), 'ctr snapshots ls').stdout;
    expect(listed.trim().split('\n').slice(1).filter((l) => /\bCommitted\b/.test(l))).toHaveLength(fixtures.busybox.layers.length);
    // ...which berth stores under containerd's backend keys, `<ns>/<n>/<chainID>`, with the files in its own root.
    const raw = await rawSnapshots(snSock);
    expect(raw).toHaveLength(fixtures.busybox.layers.length);
    for (const info of raw) {
      expect(info.kind).toBe('committed');
      expect(info.name).toMatch(new RegExp(`^${namespace}/\\d+/sha256:[0-9a-f]{64}$`));
    }
    const busyboxes = fs
      .readdirSync(path.join(snRoot, 'snapshots'))
      .filter((id) => fs.existsSync(path.join(snRoot, 'snapshots', id, 'fs', 'bin', 'busybox')));
    expect(busyboxes).toHaveLength(1);

    const started = Date.now();
    const result = ok(
      await ctr(
        'run', '--rm', '--snapshotter', 'berth',
        '--runc-root', path.join(dir, 'runc'), '--fifo-dir', path.join(dir, 'fifo'),
        image, containerId, '/bin/busybox', 'echo', 'hello-from-berth',
      ),
      'ctr run',
    );
    expect(result.stdout).toBe('hello-from-berth\n');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(ok(await ctr('containers', 'ls', '-q'), 'ctr containers ls').stdout.trim()).toBe('');
    // The container's rootfs is gone from the shim's state and from the mount table.
    expect(mountsUnder(dir)).toEqual([]);

    // Removing the image with --sync runs containerd's GC, which removes berth's snapshots through the proxy.
    ok(await ctr('images', 'rm', '--sync', image), 'ctr images rm');
    expect(await rawSnapshots(snSock)).toEqual([]);
    expect(fs.readdirSync(path.join(snRoot, 'snapshots'))).toEqual([]);
    expect(ok(await ctr('snapshots', '--snapshotter', 'berth', 'ls'), 'ctr snapshots ls').stdout.trim().split('\n')).toHaveLength(1);
  });
});
