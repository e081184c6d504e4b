import * as fs from 'fs';
import * as path from 'path';
import { containerdEvents, packAny, runcOptionsV1, unpackAny } from '@berth/proto';
import { RuntimeTask, TaskTopics } from '@berth/core';
import { describeAsRoot } from '../harness/root';
import {
  bundlePath,
  eventually,
  execProcess,
  fifoReader,
  fifoWriter,
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

const NS = `rtv2-life-${process.pid}`;

describeAsRoot('runtime v2: task lifecycle over containerd-shim-runc-v2', () => {
  let dirs: RuntimeTestDirs;
  let loaded: LoadedRuntime;
  const live = new Set<RuntimeTask>();
  let seq = 0;

  beforeAll(async () => {
    dirs = makeTestDirs('berth-rtv2-life-');
    loaded = await loadRuntime(dirs);
  });

  afterEach(async () => {
    for (const task of live) await removeTask(task).catch(() => undefined);
    live.clear();
  });

  afterAll(async () => {
    await loaded?.close();
    forceCleanup(NS, dirs.dir);
  });

  function nextId(name: string): string {
    return `${name}-${++seq}`;
  }

  // The runc shim opens stdout and stderr together (both or neither), as ctr always passes both.
  async function createTask(id: string, args: string[], stdout?: string, stderr?: string): Promise<RuntimeTask> {
    const task = await loaded.runtime.create(NS, id, {
      spec: minimalSpec(NS, id, args),
      rootfs: [rootfsMount(dirs.rootfs)],
      io: { terminal: false, stdout, stderr },
      runtime: 'io.containerd.runc.v2',
    });
    live.add(task);
    return task;
  }

  async function deleteTask(task: RuntimeTask) {
    const deleted = await loaded.runtime.delete(NS, task.id);
    live.delete(task);
    return deleted;
  }

  it.each([
    ['true', 0, ['true']],
    ['false', 1, ['false']],
    ['sh -c "exit 3"', 3, ['sh', '-c', 'exit 3']],
  ])('runs `%s` and reports exit status %d through wait, state and delete', async (_name, code, args) => {
    const task = await createTask(nextId('exit'), args);
    expect(task.pid).toBeGreaterThan(0);
    expect((await task.state()).status).toBe('created');
    const pid = await task.start();
    expect(pid).toBe(task.pid);
    const exit = await task.wait();
    expect(exit.exitStatus).toBe(code);
    expect(exit.exitedAt.getTime()).toBeGreaterThan(Date.now() - 60_000);
    const state = await task.state();
    expect(state).toMatchObject({ status: 'stopped', exitStatus: code, id: task.id, execId: '' });
    expect(state.exitedAt).toBeInstanceOf(Date);
    const deleted = await deleteTask(task);
    expect(deleted).toMatchObject({ exitStatus: code, pid });
  });

  it('streams stdout through a FIFO and publishes create/start/exit/delete events', async () => {
    const id = nextId('echo');
    const out = fifoReader(path.join(dirs.dir, `${id}-stdout`));
    const err = fifoReader(path.join(dirs.dir, `${id}-stderr`));
    const task = await createTask(id, ['sh', '-c', 'echo hello from $(hostname); echo oops >&2'], out.path, err.path);
    await task.start();
    expect((await task.wait()).exitStatus).toBe(0);
    expect(await out.text).toBe(`hello from ${id}\n`);
    expect(await err.text).toBe('oops\n');
    await deleteTask(task);
    const topics = await eventually('task events', () => {
      const mine = loaded.events
        .filter((e) => e.namespace === NS)
        .filter((e) => [TaskTopics.create, TaskTopics.start, TaskTopics.exit, TaskTopics.delete].includes(e.topic as never))
        .filter((e) => {
          const decoded = containerdEvents.TaskCreate.decode(e.event.value); // field 1 is container_id in all four
          return decoded.containerId === id;
        })
        .map((e) => e.topic);
      return mine.length >= 4 ? mine : undefined;
    });
    expect(topics).toEqual([TaskTopics.create, TaskTopics.start, TaskTopics.exit, TaskTopics.delete]);
  });

  it('reports 137 for a task killed with SIGKILL, and wait returns after kill', async () => {
    const task = await createTask(nextId('kill'), ['sleep', '60']);
    await task.start();
    expect((await task.state()).status).toBe('running');
    expect((await task.state()).exitedAt).toBeUndefined();
    const waiting = task.wait();
    await task.kill(9);
    expect((await waiting).exitStatus).toBe(137);
    expect((await task.state()).status).toBe('stopped');
  });

  it('runs an exec with its own output and exit status', async () => {
    const task = await createTask(nextId('exec'), ['sleep', '60']);
    await task.start();
    const out = fifoReader(path.join(dirs.dir, `${task.id}-exec-stdout`));
    const err = fifoReader(path.join(dirs.dir, `${task.id}-exec-stderr`));
    const exec = await task.exec('probe', {
      spec: execProcess(['sh', '-c', 'echo exec says hi; exit 7']),
      io: { terminal: false, stdout: out.path, stderr: err.path },
    });
    expect(exec.execId).toBe('probe');
    expect((await exec.state()).status).toBe('created');
    const execPid = await exec.start();
    expect(execPid).toBeGreaterThan(0);
    expect((await exec.wait()).exitStatus).toBe(7);
    expect(await out.text).toBe('exec says hi\n');
    expect(await err.text).toBe('');
    const again = await task.process('probe');
    expect((await again.state()).status).toBe('stopped');
    await expect(task.exec('probe', { spec: execProcess(['true']), io: { terminal: false } })).rejects.toMatchObject({ kind: 'already-exists' });
    expect(await exec.delete()).toMatchObject({ exitStatus: 7, pid: execPid });
    await expect(task.process('probe')).rejects.toMatchObject({ kind: 'not-found' });
    await expect(task.process('never-added')).rejects.toMatchObject({ kind: 'not-found' });
    await expect(task.exec('bad id!', { spec: execProcess(['true']), io: { terminal: false } })).rejects.toMatchObject({ kind: 'invalid-argument' });
  });

  it('will not delete a running exec or task', async () => {
    const task = await createTask(nextId('busy'), ['sleep', '60']);
    await task.start();
    const exec = await task.exec('sleeper', { spec: execProcess(['sleep', '60']), io: { terminal: false } });
    await exec.start();
    await expect(exec.delete()).rejects.toMatchObject({ kind: 'failed-precondition' });
    await expect(loaded.runtime.delete(NS, task.id)).rejects.toMatchObject({ kind: 'failed-precondition' });
    await exec.kill(9);
    expect((await exec.wait()).exitStatus).toBe(137);
    await exec.delete();
  });

  it('pauses and resumes, lists pids and returns stats', async () => {
    const task = await createTask(nextId('pause'), ['sleep', '60']);
    const pid = await task.start();
    await task.pause();
    expect((await task.state()).status).toBe('paused');
    await task.resume();
    expect((await task.state()).status).toBe('running');
    const pids = await task.pids();
    expect(pids.map((p) => p.pid)).toContain(pid);
    const stats = await task.stats();
    expect(stats?.typeUrl).toMatch(/^io\.containerd\.cgroups\.v[12]\.Metrics$/);
    expect(stats?.value.length).toBeGreaterThan(0);
  });

  it('closes stdin with closeIO', async () => {
    const id = nextId('stdin');
    const input = fifoWriter(path.join(dirs.dir, `${id}-stdin`));
    const out = fifoReader(path.join(dirs.dir, `${id}-stdout`));
    const err = fifoReader(path.join(dirs.dir, `${id}-stderr`));
    const task = await loaded.runtime.create(NS, id, {
      spec: minimalSpec(NS, id, ['cat']),
      rootfs: [rootfsMount(dirs.rootfs)],
      io: { terminal: false, stdin: input.path, stdout: out.path, stderr: err.path },
      runtime: 'io.containerd.runc.v2',
    });
    live.add(task);
    await task.start();
    input.write('through cat\n');
    // The shim holds a write end of the FIFO too; closeIO drops it, so cat sees EOF once ours is closed.
    input.close();
    await task.closeIO();
    expect((await task.wait()).exitStatus).toBe(0);
    expect(await out.text).toBe('through cat\n');
  });

  it('resizes the pty of a terminal task', async () => {
    const id = nextId('tty');
    const input = fifoWriter(path.join(dirs.dir, `${id}-stdin`));
    const out = fifoReader(path.join(dirs.dir, `${id}-stdout`));
    const spec = minimalSpec(NS, id, ['sh', '-c', 'read line; stty size']);
    (spec.process as { terminal: boolean }).terminal = true;
    const task = await loaded.runtime.create(NS, id, {
      spec,
      rootfs: [rootfsMount(dirs.rootfs)],
      io: { terminal: true, stdin: input.path, stdout: out.path },
      runtime: 'io.containerd.runc.v2',
    });
    live.add(task);
    await task.start();
    await task.resizePty(123, 45);
    input.write('go\n');
    expect((await task.wait()).exitStatus).toBe(0);
    expect(await out.text).toContain('45 123');
    input.close();
  });

  it('updates resources: a pids limit reaches the cgroup', async () => {
    const id = nextId('update');
    const task = await createTask(id, ['sleep', '60']);
    await task.start();
    const resources = { pids: { limit: 42 } };
    await task.update({
      typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
      value: Buffer.from(JSON.stringify(resources)),
    });
    const pidsMax = fs.existsSync('/sys/fs/cgroup/cgroup.controllers')
      ? `/sys/fs/cgroup/${NS}/${id}/pids.max`
      : `/sys/fs/cgroup/pids/${NS}/${id}/pids.max`;
    expect(fs.readFileSync(pidsMax, 'utf8').trim()).toBe('42');
  });

  it('delete removes the bundle and work dir, unmounts the rootfs and ends the shim', async () => {
    const id = nextId('delete');
    const task = await createTask(id, ['sleep', '60']);
    await task.start();
    const bundle = bundlePath(dirs, NS, id);
    expect(fs.readdirSync(bundle).sort()).toEqual(expect.arrayContaining(['address', 'config.json', 'log', 'rootfs', 'shim-binary-path', 'work']));
    expect(fs.statSync(path.join(bundle, 'log')).isFIFO()).toBe(true);
    expect(fs.readlinkSync(path.join(bundle, 'work'))).toBe(path.join(dirs.root, 'io.berth.runtime.v2.task', NS, id));
    expect(mountsUnder(bundle)).toEqual([path.join(bundle, 'rootfs')]);
    expect(shimPids(NS, id)).toHaveLength(1);
    await task.kill(9);
    await task.wait();
    await deleteTask(task);
    expect(fs.existsSync(bundle)).toBe(false);
    expect(fs.existsSync(path.join(dirs.root, 'io.berth.runtime.v2.task', NS, id))).toBe(false);
    expect(mountsUnder(bundle)).toEqual([]);
    await eventually('the shim to exit', () => shimPids(NS, id).length === 0);
    await expect(loaded.runtime.get(NS, id)).rejects.toMatchObject({ kind: 'not-found' });
    await expect(loaded.runtime.delete(NS, id)).rejects.toMatchObject({ kind: 'not-found' });
    // The rootfs source was only unmounted, never emptied.
    expect(fs.existsSync(path.join(dirs.rootfs, 'bin', 'busybox'))).toBe(true);
  });

  it('treats a SIGKILLed shim as a stopped task: exit status, container gone, rootfs unmounted', async () => {
    const id = nextId('shimkill');
    const task = await createTask(id, ['sleep', '60']);
    const pid = await task.start();
    const [shim] = shimPids(NS, id);
    const waiting = task.wait();
    process.kill(shim, 'SIGKILL');
    const exit = await waiting;
    expect(exit.exitStatus).toBe(137);
    const state = await task.state();
    expect(state).toMatchObject({ status: 'stopped', exitStatus: 137 });
    expect(isAlive(pid)).toBe(false);
    const bundle = bundlePath(dirs, NS, id);
    expect(mountsUnder(bundle)).toEqual([]);
    const exitEvent = await eventually('the /tasks/exit event', () =>
      loaded.events.find(
        (e) => e.namespace === NS && e.topic === TaskTopics.exit && unpackAny({ typeUrl: e.event.typeUrl, value: Buffer.from(e.event.value) }, containerdEvents.TaskExit).containerId === id,
      ),
    );
    expect(containerdEvents.TaskExit.decode(exitEvent.event.value)).toMatchObject({ id, exitStatus: 137 });
    await expect(task.kill(9)).rejects.toMatchObject({ kind: 'not-found' });
    expect((await loaded.runtime.tasks(NS)).map((t) => t.id)).toContain(id);
    expect(await deleteTask(task)).toMatchObject({ exitStatus: 137 });
    expect(fs.existsSync(bundle)).toBe(false);
  });

  it('runs the OCI runtime binary the runtime options name, or the runtimes table does', async () => {
    const calls = path.join(dirs.dir, 'runc-calls');
    const wrapper = path.join(dirs.dir, 'my-runc');
    fs.writeFileSync(wrapper, `#!/bin/sh\necho "$@" >> ${calls}\nexec /usr/sbin/runc "$@"\n`);
    fs.chmodSync(wrapper, 0o755);
    const id = nextId('wrapped');
    const task = await loaded.runtime.create(NS, id, {
      spec: minimalSpec(NS, id, ['true']),
      rootfs: [rootfsMount(dirs.rootfs)],
      io: { terminal: false },
      runtime: 'io.containerd.runc.v2',
      runtimeOptions: packAny(runcOptionsV1.Options, runcOptionsV1.Options.fromPartial({ binaryName: wrapper })),
    });
    live.add(task);
    await task.start();
    expect((await task.wait()).exitStatus).toBe(0);
    expect(fs.readFileSync(calls, 'utf8')).toMatch(new RegExp(`\\bcreate\\b.*${id}`));

    // A second instance needs its own directories (and events socket).
    const otherDirs = { ...dirs, root: path.join(dirs.dir, 'root2'), state: path.join(dirs.dir, 'state2') };
    const other = await loadRuntime(otherDirs, { runtimes: { wrapped: { shim: '/usr/bin/containerd-shim-runc-v2', binary_name: wrapper } } });
    try {
      const viaTable = nextId('table');
      const tableTask = await other.runtime.create(NS, viaTable, {
        spec: minimalSpec(NS, viaTable, ['true']),
        rootfs: [rootfsMount(dirs.rootfs)],
        io: { terminal: false },
        runtime: 'wrapped',
      });
      await tableTask.start();
      expect((await tableTask.wait()).exitStatus).toBe(0);
      expect(fs.readFileSync(calls, 'utf8')).toMatch(new RegExp(`\\bstart\\b.*${viaTable}`));
      await other.runtime.delete(NS, viaTable);
    } finally {
      await other.close();
    }
  });

  it('rejects bad names before touching the disk, duplicate ids, and unknown runtimes', async () => {
    const options = { spec: minimalSpec(NS, 'x', ['true']), rootfs: [rootfsMount(dirs.rootfs)], io: { terminal: false }, runtime: 'io.containerd.runc.v2' };
    await expect(loaded.runtime.create(NS, '../escape', options)).rejects.toMatchObject({ kind: 'invalid-argument' });
    await expect(loaded.runtime.create('bad ns', 'x', options)).rejects.toMatchObject({ kind: 'invalid-argument' });
    expect(fs.existsSync(path.join(dirs.state, 'io.berth.runtime.v2.task', 'bad ns'))).toBe(false);
    await expect(loaded.runtime.create(NS, nextId('nort'), { ...options, runtime: 'io.containerd.nosuch.v9' })).rejects.toThrow(
      /containerd-shim-nosuch-v9 not found/,
    );
    await expect(loaded.runtime.create(NS, nextId('nort'), { ...options, runtime: '/no/such/shim' })).rejects.toMatchObject({ kind: 'not-found' });
    const id = nextId('dup');
    const task = await createTask(id, ['true']);
    await expect(loaded.runtime.create(NS, id, options)).rejects.toMatchObject({ kind: 'already-exists' });
    await task.start();
    await task.wait();
  });

  it('fails create cleanly when the OCI runtime fails, leaving no bundle or shim', async () => {
    const id = nextId('badspec');
    const spec = minimalSpec(NS, id, ['/no/such/binary']);
    await expect(
      loaded.runtime.create(NS, id, { spec, rootfs: [rootfsMount(dirs.rootfs)], io: { terminal: false }, runtime: 'io.containerd.runc.v2' }),
    ).rejects.toThrow();
    expect(fs.existsSync(bundlePath(dirs, NS, id))).toBe(false);
    await eventually('the shim to exit', () => shimPids(NS, id).length === 0);
    await expect(loaded.runtime.get(NS, id)).rejects.toMatchObject({ kind: 'not-found' });
  });
});
