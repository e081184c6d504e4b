import * as fs from 'fs';
import * as path from 'path';
import { RuntimeTask, TaskTopics } from '@berth/core';
import { containerdEvents } from '@berth/proto';
import { describeAsRoot } from '../harness/root';
import {
  bundlePath,
  eventually,
  forceCleanup,
  isAlive,
  loadRuntime,
  LoadedRuntime,
  makeTestDirs,
  minimalSpec,
  mountsUnder,
  removeTask,
  rootfsMount,
  RuntimeTestDirs,
  shimPids,
} from './helpers';

const NS = `rtv2-recover-${process.pid}`;

function exitEventsFor(loaded: LoadedRuntime, id: string) {
  return loaded.events
    .filter((e) => e.namespace === NS && e.topic === TaskTopics.exit)
    .map((e) => containerdEvents.TaskExit.decode(e.event.value))
    .filter((e) => e.containerId === id);
}

// The daemon may die at any moment: shims keep their containers running and a
// new plugin instance on the same directories finds them again.
describeAsRoot('runtime v2: restart recovery', () => {
  let dirs: RuntimeTestDirs;
  const instances: LoadedRuntime[] = [];

  beforeAll(() => {
    dirs = makeTestDirs('berth-rtv2-rec-');
  });

  afterAll(async () => {
    const last = instances[instances.length - 1];
    if (last) {
      for (const task of await last.runtime.tasks(NS)) await removeTask(task).catch(() => undefined);
    }
    for (const instance of instances) await instance.close().catch(() => undefined);
    forceCleanup(NS, dirs.dir);
  });

  async function open(): Promise<LoadedRuntime> {
    const loaded = await loadRuntime(dirs);
    instances.push(loaded);
    return loaded;
  }

  async function startSleeper(loaded: LoadedRuntime, id: string): Promise<RuntimeTask> {
    const task = await loaded.runtime.create(NS, id, {
      spec: minimalSpec(NS, id, ['sleep', '60']),
      rootfs: [rootfsMount(dirs.rootfs)],
      io: { terminal: false },
      runtime: 'io.containerd.runc.v2',
    });
    await task.start();
    return task;
  }

  it('finds running tasks again, same pid, and still gets their exit events', async () => {
    const first = await open();
    const before = await startSleeper(first, 'survivor');
    const paused = await startSleeper(first, 'sleepy');
    await paused.pause();
    const [shim] = shimPids(NS, 'survivor');
    await first.close(); // the daemon goes away; shims must not
    expect(isAlive(shim)).toBe(true);
    expect(isAlive(before.pid)).toBe(true);

    const second = await open();
    const tasks = await second.runtime.tasks(NS);
    expect(tasks.map((t) => t.id).sort()).toEqual(['sleepy', 'survivor']);
    const after = await second.runtime.get(NS, 'survivor');
    expect(after.pid).toBe(before.pid);
    expect(await after.state()).toMatchObject({ status: 'running', pid: before.pid, bundle: bundlePath(dirs, NS, 'survivor') });
    expect((await (await second.runtime.get(NS, 'sleepy')).state()).status).toBe('paused');

    const waiting = after.wait();
    await after.kill(9);
    expect((await waiting).exitStatus).toBe(137);
    // The shim reconnects its event publisher to the new instance's socket.
    const exits = await eventually('the /tasks/exit event after recovery', () => {
      const found = exitEventsFor(second, 'survivor');
      return found.length > 0 ? found : undefined;
    });
    expect(exits[0]).toMatchObject({ id: 'survivor', pid: before.pid, exitStatus: 137 });
    expect(await second.runtime.delete(NS, 'survivor')).toMatchObject({ exitStatus: 137 });
    expect(fs.existsSync(bundlePath(dirs, NS, 'survivor'))).toBe(false);
    await eventually('the shim to exit', () => shimPids(NS, 'survivor').length === 0);
    await removeTask(await second.runtime.get(NS, 'sleepy'));
    await second.close();
  });

  it('reports tasks whose shim died while the daemon was away as stopped, and cleans up after them', async () => {
    const first = await open();
    const task = await startSleeper(first, 'orphan');
    const [shim] = shimPids(NS, 'orphan');
    await first.close();
    process.kill(shim, 'SIGKILL');
    await eventually('the shim to die', () => !isAlive(shim));

    const second = await open();
    const found = await second.runtime.get(NS, 'orphan');
    const state = await found.state();
    expect(state).toMatchObject({ status: 'stopped', exitStatus: 137 });
    expect(state.exitedAt).toBeInstanceOf(Date);
    expect(isAlive(task.pid)).toBe(false);
    expect(mountsUnder(bundlePath(dirs, NS, 'orphan'))).toEqual([]);
    expect(exitEventsFor(second, 'orphan')).toEqual([expect.objectContaining({ id: 'orphan', exitStatus: 137 })]);
    expect(await found.wait()).toMatchObject({ exitStatus: 137 });

    // A third instance still knows the exit without publishing it again.
    await second.close();
    const third = await open();
    expect(await (await third.runtime.get(NS, 'orphan')).state()).toMatchObject({ status: 'stopped', exitStatus: 137 });
    expect(exitEventsFor(third, 'orphan')).toEqual([]);
    expect(await third.runtime.delete(NS, 'orphan')).toMatchObject({ exitStatus: 137 });
    expect(fs.existsSync(bundlePath(dirs, NS, 'orphan'))).toBe(false);
    await third.close();
  });

  it('removes a bundle whose shim never started (the daemon died mid-create)', async () => {
    const loaded = await open();
    await loaded.close();
    const bundle = bundlePath(dirs, NS, 'halfmade');
    fs.mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
    fs.writeFileSync(path.join(bundle, 'config.json'), '{}');
    const again = await open();
    await expect(again.runtime.get(NS, 'halfmade')).rejects.toMatchObject({ kind: 'not-found' });
    expect(fs.existsSync(bundle)).toBe(false);
    await again.close();
  });
});
