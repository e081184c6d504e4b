import * as fs from 'fs';
import * as path from 'path';
import { type Berth, connect } from '@berth/core';
import { type BerthdHandle, startBerthd } from '../harness/daemon';
import { describeAsRoot } from '../harness/root';
import {
  ACCEPTANCE_CONFIG,
  type AcceptanceSetup,
  cmdlineOf,
  DEFAULT_FIFO_ROOT,
  distinctEvents,
  eventually,
  EventsWatcher,
  fifosOf,
  isAlive,
  mountsUnder,
  ok,
  parseTaskTable,
  runtimeRootDir,
  runtimeStateDir,
  shimPids,
  shimSocketPath,
  startSetup,
  type TaskJson,
  teardown,
  uniqueName,
} from './helpers';

const NS = uniqueName('acc-restart');
const ID = uniqueName('s1');

// The seed's promise: the daemon may die at any moment; the container keeps
// running under its shim, and a restarted daemon finds it again, same pid,
// and can still signal it, hear its exit and clean up after it.
describeAsRoot('acceptance: a container outlives a SIGKILLed berthd', () => {
  let setup: AcceptanceSetup;
  let daemon: BerthdHandle;
  let client: Berth | undefined;
  let watcher: EventsWatcher | undefined;

  beforeAll(async () => {
    setup = await startSetup([NS]);
    daemon = setup.daemon;
  }, 120_000);

  afterAll(async () => {
    watcher?.stop();
    await client?.close().catch(() => undefined);
    await teardown({ ...setup, daemon }, [NS], [ID]);
  }, 120_000);

  const berth = (...args: string[]) => daemon.berth('-n', NS, ...args);

  it('berth run -d, SIGKILL berthd, restart: same pid RUNNING; kill ends it with 137 and an exit event; rm leaves nothing behind', async () => {
    ok(await berth('run', '-d', setup.image, ID, 'sleep', '300'), 'berth run -d');

    const [before] = parseTaskTable(ok(await berth('tasks', 'ls')));
    expect(before).toMatchObject({ id: ID, status: 'RUNNING' });
    const pid = before!.pid;
    expect(pid).toBeGreaterThan(1);
    expect(fs.existsSync(`/proc/${pid}`)).toBe(true);
    expect(cmdlineOf(pid)).toEqual(['sleep', '300']);
    const [shim] = shimPids(NS, ID);
    expect(shim).toBeDefined();
    const shimSocket = shimSocketPath(daemon.address, NS, ID);
    expect(fs.existsSync(shimSocket)).toBe(true);
    // A detached run keeps its output FIFOs, in the CLI's default FIFO root, for a later attach.
    const [detached] = JSON.parse(ok(await berth('--format', 'json', 'tasks', 'ls'))) as (TaskJson & { stdout: string })[];
    expect(detached!.stdout).toBe(path.join(path.dirname(detached!.stdout), `${ID}-stdout`));
    const fifoDir = path.dirname(detached!.stdout);
    expect(path.dirname(fifoDir)).toBe(DEFAULT_FIFO_ROOT);
    expect(fs.lstatSync(detached!.stdout).isFIFO()).toBe(true);

    daemon.kill('SIGKILL');
    expect(await daemon.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // Nothing of the container depended on the daemon.
    expect(isAlive(pid)).toBe(true);
    expect(cmdlineOf(pid)).toEqual(['sleep', '300']);
    expect(isAlive(shim!)).toBe(true);

    daemon = await startBerthd({ dir: daemon.dir, config: ACCEPTANCE_CONFIG });
    expect(parseTaskTable(ok(await berth('tasks', 'ls')))).toEqual([{ id: ID, pid, status: 'RUNNING' }]);
    expect(shimPids(NS, ID)).toEqual([shim]);
    // The restarted daemon knows the task's stdio again (tasks attach needs it).
    expect(JSON.parse(ok(await berth('--format', 'json', 'tasks', 'ls')))).toEqual([
      expect.objectContaining({ id: ID, pid, status: 'running', stdout: detached!.stdout }),
    ]);

    client = await connect(daemon.address, { namespace: NS });
    watcher = await EventsWatcher.start(daemon.address, NS, ['/tasks/exit'], client);

    // SIGTERM (the default) does nothing to sleep as pid 1 of its pid
    // namespace: the kernel drops signals pid 1 has no handler for.
    ok(await berth('tasks', 'kill', ID), 'tasks kill (SIGTERM)');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(isAlive(pid)).toBe(true);
    expect(watcher.on('/tasks/exit')).toEqual([]);

    ok(await berth('tasks', 'kill', '-s', 'KILL', ID), 'tasks kill -s KILL');
    const exit = await watcher.waitFor('the /tasks/exit event', (e) => e.topic === '/tasks/exit');
    expect(exit.namespace).toBe(NS);
    expect(exit.event).toMatchObject({ containerId: ID, id: ID, pid, exitStatus: 137 });
    await eventually('the sleep to be gone', () => !isAlive(pid));

    expect(parseTaskTable(ok(await berth('tasks', 'ls')))).toEqual([{ id: ID, pid, status: 'STOPPED' }]);
    const json = JSON.parse(ok(await berth('--format', 'json', 'tasks', 'ls'))) as TaskJson[];
    expect(json).toEqual([expect.objectContaining({ id: ID, pid, status: 'stopped', exitStatus: 137 })]);

    ok(await berth('tasks', 'rm', ID), 'tasks rm');
    ok(await berth('containers', 'rm', ID), 'containers rm');
    expect(parseTaskTable(ok(await berth('tasks', 'ls')))).toEqual([]);
    expect(ok(await berth('containers', 'ls', '-q'))).toBe('');

    expect(mountsUnder(daemon.dir)).toEqual([]);
    await eventually(`the shim of ${ID} to exit`, () => shimPids(NS, ID).length === 0);
    expect(isAlive(shim!)).toBe(false);
    expect(fs.existsSync(shimSocket)).toBe(false);
    expect(fs.existsSync(runtimeStateDir(daemon, NS, ID))).toBe(false);
    expect(fs.existsSync(runtimeRootDir(daemon, NS, ID))).toBe(false);
    // The detached run's FIFOs went with the task.
    expect(fifosOf(DEFAULT_FIFO_ROOT, [ID])).toEqual([]);
    expect(fs.existsSync(fifoDir)).toBe(false);
    // The exit was published once, by the shim, to the restarted daemon.
    expect(distinctEvents(watcher.on('/tasks/exit'))).toHaveLength(1);
  }, 120_000);
});
