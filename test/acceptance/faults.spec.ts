import * as fs from 'fs';
import * as path from 'path';
import { type Berth, connect, errorKind, OCI_SPEC_TYPE_URL } from '@berth/core';
import { describeAsRoot } from '../harness/root';
import {
  type AcceptanceSetup,
  cgroupPids,
  chainIds,
  cmdlineOf,
  DEFAULT_FIFO_ROOT,
  distinctEvents,
  entries,
  eventually,
  EventsWatcher,
  fifosOf,
  isAlive,
  mountsUnder,
  ok,
  parseSnapshotTable,
  parseTaskTable,
  runtimeRootDir,
  runtimeStateDir,
  shimPids,
  shimSocketPath,
  shimSocketPaths,
  startSetup,
  type TaskJson,
  teardown,
  uniqueName,
} from './helpers';

const NS = uniqueName('acc-faults');
const NS_A = `${NS}-a`;
const NS_B = `${NS}-b`;
const suffix = NS.slice(NS.lastIndexOf('-') + 1);
const ids = {
  shimKilled: `shimkill-${suffix}`,
  missingCommand: `nocmd-${suffix}`,
  missingCommandKept: `nocmd-kept-${suffix}`,
  missingCommandFifo: `nocmd-fifo-${suffix}`,
  isolated: `iso-${suffix}`,
};

// What goes wrong must end cleanly: a shim that dies, a command that is not
// there, an id that is not an id, a namespace that is not yours.
describeAsRoot('acceptance: faults', () => {
  let setup: AcceptanceSetup;
  let client: Berth;
  const watchers: EventsWatcher[] = [];

  beforeAll(async () => {
    setup = await startSetup([NS, NS_A]);
    client = await connect(setup.daemon.address, { namespace: NS });
  }, 120_000);

  afterAll(async () => {
    for (const watcher of watchers) watcher.stop();
    await client?.close().catch(() => undefined);
    await teardown(setup ?? {}, [NS, NS_A, NS_B], Object.values(ids));
  }, 120_000);

  const berthIn = (namespace: string, ...args: string[]) => setup.daemon.berth('-n', namespace, ...args);
  const berth = (...args: string[]) => berthIn(NS, ...args);

  async function taskJson(namespace = NS): Promise<TaskJson[]> {
    return JSON.parse(ok(await berthIn(namespace, '--format', 'json', 'tasks', 'ls'))) as TaskJson[];
  }

  /** Nothing of task `id` is left on the host: no shim, no mount, no bundle, no FIFOs. */
  async function expectNoTraceOf(id: string, namespace = NS): Promise<void> {
    await eventually(`the shims of ${id} to exit`, () => shimPids(namespace, id).length === 0);
    expect(mountsUnder(runtimeStateDir(setup.daemon, namespace, id))).toEqual([]);
    expect(fs.existsSync(runtimeStateDir(setup.daemon, namespace, id))).toBe(false);
    expect(fs.existsSync(runtimeRootDir(setup.daemon, namespace, id))).toBe(false);
    expect(fifosOf(DEFAULT_FIFO_ROOT, [id])).toEqual([]);
    expect(fs.existsSync(shimSocketPath(setup.daemon.address, namespace, id))).toBe(false);
  }

  it('a SIGKILLed shim: the task turns STOPPED with a non-zero status, its processes die, its rootfs is unmounted, /tasks/exit is published', async () => {
    const id = ids.shimKilled;
    const watcher = await EventsWatcher.start(setup.daemon.address, NS, ['/tasks/exit'], client);
    watchers.push(watcher);
    // Two processes in the container: the init and a child it forks.
    ok(await berth('run', '-d', setup.image, id, 'sh', '-c', 'sleep 301 & exec sleep 302'), 'berth run -d');
    const [task] = await taskJson();
    expect(task).toMatchObject({ id, status: 'running' });
    const members = await eventually('both sleeps in the container\'s cgroup', () => {
      const pids = cgroupPids(NS, id);
      return pids.length === 2 ? pids : undefined;
    });
    expect(members).toContain(task!.pid);
    expect(members.map((pid) => cmdlineOf(pid)?.join(' ')).sort()).toEqual(['sleep 301', 'sleep 302']);
    const rootfs = path.join(runtimeStateDir(setup.daemon, NS, id), 'rootfs');
    expect(mountsUnder(rootfs)).toEqual([rootfs]);
    const shims = shimPids(NS, id);
    expect(shims).toHaveLength(1);
    const sockets = shimSocketPaths(shims[0]!);
    expect(sockets).toEqual([shimSocketPath(setup.daemon.address, NS, id)]);

    process.kill(shims[0]!, 'SIGKILL');

    // Polled through the facade (a CLI run costs a second or two of node start-up), then shown by the CLI.
    await eventually('the task to be reported stopped', async () => (await client.tasks.get(id)).status === 'stopped', 15_000);
    const [stopped] = await taskJson();
    expect(stopped).toMatchObject({ id, pid: task!.pid, status: 'stopped' });
    expect(stopped!.exitStatus).not.toBe(0);
    const exit = await watcher.waitFor(`the /tasks/exit of ${id}`, (e) => e.topic === '/tasks/exit' && e.event.containerId === id);
    expect(exit.event).toMatchObject({ containerId: id, id, pid: task!.pid, exitStatus: stopped!.exitStatus });
    await eventually('the container\'s processes to die', () => members.every((pid) => !isAlive(pid)));
    expect(cgroupPids(NS, id)).toEqual([]);
    expect(mountsUnder(rootfs)).toEqual([]);
    // The dead shim's socket file is removed with the rest.
    expect(fs.existsSync(sockets[0]!)).toBe(false);
    expect(parseTaskTable(ok(await berth('tasks', 'ls')))).toEqual([{ id, pid: task!.pid, status: 'STOPPED' }]);

    ok(await berth('tasks', 'rm', id), 'tasks rm');
    expect(await taskJson()).toEqual([]);
    ok(await berth('containers', 'rm', id), 'containers rm');
    await expectNoTraceOf(id);
    expect(distinctEvents(watcher.on('/tasks/exit').filter((e) => e.event.containerId === id))).toHaveLength(1);
  }, 180_000);

  it('run --rm of a command the image lacks: a non-zero exit naming it, and no task, container, mount, shim or FIFO left', async () => {
    const id = ids.missingCommand;
    const snapshotsBefore = ok(await berth('snapshots', 'ls'));
    const result = await berth('run', '--rm', setup.image, id, '/does-not-exist');
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toMatch(/\/does-not-exist/);
    expect(result.stderr).toMatch(/no such file or directory/);
    expect(result.stdout).toBe('');

    expect(await taskJson()).toEqual([]);
    expect(ok(await berth('containers', 'ls', '-q'))).toBe('');
    // --rm took the container's snapshot too.
    expect(ok(await berth('snapshots', 'ls'))).toBe(snapshotsBefore);
    expect(mountsUnder(setup.daemon.dir)).toEqual([]);
    await expectNoTraceOf(id);
  }, 180_000);

  it('without --rm the container stays for inspection, but its task, FIFOs (also in a --fifo-dir), mounts and shim are gone', async () => {
    const id = ids.missingCommandKept;
    const result = await berth('run', setup.image, id, '/does-not-exist');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/\/does-not-exist.*no such file or directory/);
    expect(await taskJson()).toEqual([]);
    expect(ok(await berth('containers', 'ls', '-q'))).toBe(`${id}\n`);
    await expectNoTraceOf(id);
    ok(await berth('containers', 'rm', id), 'containers rm');

    const fifoId = ids.missingCommandFifo;
    const withFifoDir = await berth('run', '--rm', '--fifo-dir', setup.fifoRoot, setup.image, fifoId, '/does-not-exist');
    expect(withFifoDir.code).not.toBe(0);
    expect(withFifoDir.stderr).toMatch(/no such file or directory/);
    expect(entries(setup.fifoRoot)).toEqual([]);
    expect(ok(await berth('containers', 'ls', '-q'))).toBe('');
    await expectNoTraceOf(fifoId);
    expect(mountsUnder(setup.daemon.dir)).toEqual([]);
  }, 180_000);

  const badIds: [string, string][] = [
    ['../x', '../x'],
    ['a/b', 'a/b'],
    ['77 characters', 'a'.repeat(77)],
  ];

  it.each(badIds)('an invalid container id (%s) is refused with InvalidArgument before anything touches the disk', async (_, badId) => {
    const overlaySnapshots = path.join(setup.daemon.root, 'io.berth.snapshotter.v1.overlayfs', 'snapshots');
    expect(fs.existsSync(overlaySnapshots)).toBe(true);
    const onDiskBefore = entries(overlaySnapshots).sort();
    const listedBefore = (await client.snapshots('overlayfs').list()).map((info) => info.name).sort();

    const result = await berth('run', '--rm', '--fifo-dir', setup.fifoRoot, setup.image, badId, 'true');
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(JSON.stringify(badId));
    expect(lines[0]).toMatch(/container id/);

    // The daemon's own check, through the remote API: InvalidArgument, not NotFound or Unknown.
    const spec = { typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from('{}') };
    const refused = await client.containers.create({ id: badId, image: setup.image, runtime: { name: 'io.containerd.runc.v2' }, spec }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeDefined();
    expect(errorKind(refused)).toBe('invalid-argument');

    expect(await client.containers.list()).toEqual([]);
    expect(await client.tasks.list()).toEqual([]);
    expect((await client.snapshots('overlayfs').list()).map((info) => info.name).sort()).toEqual(listedBefore);
    expect(entries(runtimeStateDir(setup.daemon, NS))).toEqual([]);
    expect(entries(runtimeRootDir(setup.daemon, NS))).toEqual([]);
    expect(entries(setup.fifoRoot)).toEqual([]);
    expect(mountsUnder(setup.daemon.dir)).toEqual([]);
    // Not even a snapshot directory that the collector would take later.
    expect(entries(overlaySnapshots).sort()).toEqual(onDiskBefore);
  }, 180_000);

  it('a running task in one namespace is invisible from another, where the same id is free', async () => {
    const id = ids.isolated;
    ok(await berthIn(NS_A, 'run', '-d', setup.image, id, 'sleep', '300'), 'berth run -d in a');
    const [running] = parseTaskTable(ok(await berthIn(NS_A, 'tasks', 'ls')));
    expect(running).toMatchObject({ id, status: 'RUNNING' });

    expect(parseTaskTable(ok(await berthIn(NS_B, 'tasks', 'ls')))).toEqual([]);
    expect(JSON.parse(ok(await berthIn(NS_B, '--format', 'json', 'tasks', 'ls')))).toEqual([]);
    for (const args of [['tasks', 'kill', '-s', 'KILL', id], ['tasks', 'rm', '-f', id], ['tasks', 'ps', id], ['containers', 'info', id]]) {
      const refused = await berthIn(NS_B, ...args);
      expect({ args, code: refused.code }).toEqual({ args, code: 1 });
      expect(refused.stderr).toMatch(/not found/);
      expect(refused.stderr).toContain(id);
    }

    // The same id is another container in b: its own snapshot, bundle, shim and cgroup.
    ok(await berthIn(NS_B, 'images', 'pull', '--plain-http', setup.image), 'pull into b');
    const inB = await berthIn(NS_B, 'run', '--rm', setup.image, id, 'echo', 'hello from b');
    expect(inB).toMatchObject({ code: 0, stdout: 'hello from b\n' });

    // a's task was not touched by any of it.
    expect(parseTaskTable(ok(await berthIn(NS_A, 'tasks', 'ls')))).toEqual([running]);
    expect(cmdlineOf(running!.pid)).toEqual(['sleep', '300']);
    expect(shimPids(NS_A, id)).toHaveLength(1);

    ok(await berthIn(NS_A, 'tasks', 'rm', '-f', id), 'tasks rm -f in a');
    ok(await berthIn(NS_A, 'containers', 'rm', id), 'containers rm in a');
    await eventually('a\'s sleep to be gone', () => !isAlive(running!.pid));
    await expectNoTraceOf(id, NS_A);
    await expectNoTraceOf(id, NS_B);
    // Each namespace keeps only its image's committed chain.
    const chain = chainIds(setup.fixtures.busybox.diffIds).sort();
    for (const namespace of [NS_A, NS_B]) {
      const snapshots = parseSnapshotTable(ok(await berthIn(namespace, 'snapshots', 'ls')));
      expect(snapshots.map((s) => s.key).sort()).toEqual(chain);
    }
  }, 180_000);
});
