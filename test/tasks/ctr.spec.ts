import * as fs from 'fs';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import { grpcTarget } from '@berth/core';
import { goZeroTime, taskTypesV1, tasksV1 } from '@berth/proto';
import { BerthdHandle, makeTempDir, removeDir, startBerthd } from '../harness/daemon';
import type { RunResult } from '../harness/process';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { describeAsRoot } from '../harness/root';
import {
  cleanupNamespace,
  cmdlineOf,
  ctrIn,
  dirsNamed,
  EventWatcher,
  mountsUnder,
  ok,
  parseTaskList,
  shimsOf,
  uniqueName,
  waitFor,
} from './helpers';

// ctr 1.6 runs containers through berthd: containers and snapshots client-side,
// then Tasks.Create/Start/Wait/Delete with FIFOs it makes itself; the runc shim
// does the work and its /tasks/* events reach `ctr events` through berthd.
describeAsRoot('tasks through berthd with containerd 1.6 ctr', () => {
  const ns = uniqueName('tasks-ctr');
  const otherNs = `${ns}-b`;
  let registry: RegistryHandle;
  let daemon: BerthdHandle;
  let work: string;
  let image: string;
  let watcher: EventWatcher;

  const ctr = (...args: string[]): Promise<RunResult> => ctrIn(daemon.address, ns, args);
  const ctrB = (...args: string[]): Promise<RunResult> => ctrIn(daemon.address, otherNs, args);
  /** Fails with the daemon's last words too, which say more than ctr's. */
  const must = (r: RunResult): string => {
    if (r.code !== 0) throw new Error(`ctr failed (${r.code}):\n${r.stderr}${r.stdout}\n--- berthd:\n${daemon.output.slice(-6000)}`);
    return r.stdout;
  };
  /** A raw Tasks call, to look at the wire as ctr gets it. */
  type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;
  const rawCall = <Res>(invoke: (client: tasksV1.TasksClient, md: grpc.Metadata, cb: Callback<Res>) => void) =>
    new Promise<Res>((resolve, reject) => {
      const client = new tasksV1.TasksClient(grpcTarget(daemon.address), grpc.credentials.createInsecure());
      const md = new grpc.Metadata();
      md.set('containerd-namespace', ns);
      invoke(client, md, (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res);
      });
    });
  const taskRows = async () => parseTaskList(must(await ctr('tasks', 'ls')));
  const taskRow = async (id: string) => (await taskRows()).find((row) => row.id === id);

  beforeAll(async () => {
    registry = await startRegistry();
    daemon = await startBerthd();
    work = makeTempDir('berth-tasks-');
    image = registry.ref('busybox:latest');
    watcher = new EventWatcher(daemon.address, [`namespace==${ns},topic~="^/tasks/"`]);
    must(await ctr('images', 'pull', '--plain-http', image));
  });

  afterAll(async () => {
    watcher?.stop();
    if (daemon) {
      await cleanupNamespace(daemon.address, ns, daemon.dir);
      await cleanupNamespace(daemon.address, otherNs, daemon.dir);
      await daemon.stop();
      removeDir(daemon.dir);
    }
    await registry?.stop();
    if (work) removeDir(work);
  });

  it('ctr run --rm prints the output of echo, exits 0 and leaves nothing behind', async () => {
    const result = await ctr('run', '--rm', image, 'c1', 'echo', 'hi');
    must(result);
    expect(result.stdout).toBe('hi\n');
    expect((await taskRows()).map((r) => r.id)).not.toContain('c1');
    expect(must(await ctr('containers', 'ls', '-q')).split('\n')).not.toContain('c1');
  });

  it('ctr events sees /tasks/create, /tasks/start, /tasks/exit and /tasks/delete of that run, in order', async () => {
    const ofC1 = () => watcher.events.filter((e) => e.event.container_id === 'c1');
    await waitFor(`/tasks/delete of c1 in:\n${watcher.output}`, () =>
      ofC1().some((e) => e.topic === '/tasks/delete') ? true : undefined,
    );
    const events = ofC1();
    expect(events.map((e) => e.topic)).toEqual(['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
    const [create, start, exit, del] = events.map((e) => e.event);
    expect(typeof create!.pid).toBe('number');
    expect(create!.bundle).toEqual(expect.stringContaining('c1'));
    expect(start).toEqual({ container_id: 'c1', pid: create!.pid });
    // exit_status 0 is left out of the JSON, as Go's omitempty does.
    expect(exit).toMatchObject({ container_id: 'c1', id: 'c1', pid: create!.pid });
    expect(exit!.exit_status).toBeUndefined();
    expect(del).toMatchObject({ container_id: 'c1', pid: create!.pid });
    for (const e of events) expect(e.namespace).toBe(ns);
  });

  it('a detached task: ls with a live pid, exec, ps, pause/resume, metrics, kill, rm', async () => {
    const hostnameFile = path.join(work, 'hostname');
    fs.writeFileSync(hostnameFile, 'berth-c2-host\n');
    const hostnameMount = `type=bind,src=${hostnameFile},dst=/etc/hostname,options=rbind:ro`;
    must(await ctr('run', '-d', '--mount', hostnameMount, image, 'c2', 'sleep', '300'));

    const running = await taskRow('c2');
    expect(running).toMatchObject({ id: 'c2', status: 'RUNNING' });
    const pid = running!.pid;
    expect(pid).toBeGreaterThan(1);
    await waitFor(`pid ${pid} to run sleep`, () => (cmdlineOf(pid)?.[0] === 'sleep' ? true : undefined));
    expect(cmdlineOf(pid)).toEqual(['sleep', '300']);

    // On the wire: a running process's exited_at is Go's zero time, as containerd sends it.
    const got = await rawCall<tasksV1.GetResponse>((c, md, cb) => c.get({ containerId: 'c2', execId: '' }, md, cb));
    expect(got.process).toMatchObject({ id: 'c2', pid, status: taskTypesV1.Status.RUNNING, exitStatus: 0 });
    expect(got.process?.exitedAt?.getTime()).toBe(goZeroTime().getTime());
    const checkpoint = await rawCall((c, md, cb) => c.checkpoint({ containerId: 'c2', parentCheckpoint: '' }, md, cb)).catch(
      (e: grpc.ServiceError) => e,
    );
    expect(checkpoint).toMatchObject({ code: grpc.status.UNIMPLEMENTED });

    const exec = await ctr('tasks', 'exec', '--exec-id', 'e1', 'c2', 'cat', '/etc/hostname');
    must(exec);
    expect(exec.stdout).toBe('berth-c2-host\n');

    const ps = must(await ctr('tasks', 'ps', 'c2')).trimEnd().split('\n');
    expect(ps[0]).toMatch(/^PID\s+INFO\s*$/);
    // The exec ended and ctr deleted it: only the init process is left.
    expect(ps.slice(1).map((line) => Number(line.trim().split(/\s+/)[0]))).toEqual([pid]);

    const freezerState = path.join('/sys/fs/cgroup/freezer', ns, 'c2', 'freezer.state');
    must(await ctr('tasks', 'pause', 'c2'));
    expect(await taskRow('c2')).toMatchObject({ pid, status: 'PAUSED' });
    expect(fs.readFileSync(freezerState, 'utf8').trim()).toBe('FROZEN');
    must(await ctr('tasks', 'resume', 'c2'));
    expect(await taskRow('c2')).toMatchObject({ pid, status: 'RUNNING' });
    expect(fs.readFileSync(freezerState, 'utf8').trim()).toBe('THAWED');

    const metrics = must(await ctr('tasks', 'metrics', 'c2'));
    const lines = metrics.split('\n');
    expect(lines[0]).toMatch(/^ID\s+TIMESTAMP/);
    expect(lines[1]).toMatch(/^c2\s+\d{4}-\d\d-\d\d /);
    const values = new Map(
      lines.slice(lines.findIndex((l) => /^METRIC\s+VALUE/.test(l)) + 1)
        .map((l) => l.trim().split(/\s+/))
        .filter((cols) => cols.length >= 2)
        .map(([name, value]) => [name!, value!]),
    );
    expect(values.get('pids.current')).toBe('1');
    expect(Number(values.get('memory.usage_in_bytes'))).toBeGreaterThan(0);
    expect(values.get('cpuacct.usage')).toMatch(/^\d+$/);

    // sleep is the pid namespace's init and has no handler: the default SIGTERM is
    // delivered but ignored (as under containerd); only SIGKILL stops it from outside.
    must(await ctr('tasks', 'kill', 'c2'));
    await new Promise((r) => setTimeout(r, 300));
    expect((await taskRow('c2'))?.status).toBe('RUNNING');
    must(await ctr('tasks', 'kill', '--signal', 'SIGKILL', 'c2'));
    await waitFor('c2 to stop', async () => ((await taskRow('c2'))?.status === 'STOPPED' ? true : undefined));
    expect(await taskRow('c2')).toEqual({ id: 'c2', pid, status: 'STOPPED' });
    expect(cmdlineOf(pid)).toBeUndefined();
    const stopped = await rawCall<tasksV1.GetResponse>((c, md, cb) => c.get({ containerId: 'c2', execId: '' }, md, cb));
    expect(stopped.process).toMatchObject({ status: taskTypesV1.Status.STOPPED, exitStatus: 137 });
    expect(Math.abs(stopped.process!.exitedAt!.getTime() - Date.now())).toBeLessThan(60_000);

    must(await ctr('tasks', 'rm', 'c2'));
    must(await ctr('containers', 'rm', 'c2'));
    expect(await taskRow('c2')).toBeUndefined();
    expect(must(await ctr('containers', 'ls', '-q')).split('\n')).not.toContain('c2');
    await waitFor('the shim of c2 to exit', () => (shimsOf(ns).some((s) => s.id === 'c2') ? undefined : true));
    expect(mountsUnder(daemon.state).filter((m) => m.includes('/c2'))).toEqual([]);
  });

  it('the exec and pause events of the detached task reached ctr events', async () => {
    const topics = watcher.events.filter((e) => e.event.container_id === 'c2').map((e) => e.topic);
    expect(topics).toEqual([
      '/tasks/create',
      '/tasks/start',
      '/tasks/exec-added',
      '/tasks/exec-started',
      '/tasks/exit',
      '/tasks/paused',
      '/tasks/resumed',
      '/tasks/exit',
      '/tasks/delete',
    ]);
    const execExit = watcher.events.find((e) => e.topic === '/tasks/exit' && e.event.id === 'e1');
    expect(execExit?.event).toMatchObject({ container_id: 'c2', id: 'e1' });
    const initExit = watcher.events.find((e) => e.topic === '/tasks/exit' && e.event.container_id === 'c2' && e.event.id === 'c2');
    expect(initExit?.event.exit_status).toBe(137);
  });

  it("ctr run --rm hands the task's exit status to ctr's own exit code", async () => {
    const result = await ctr('run', '--rm', image, 'c3', 'sh', '-c', 'exit 3');
    expect(result.code).toBe(3);
    expect((await taskRows()).map((r) => r.id)).not.toContain('c3');
  });

  it('a command missing from the image fails clearly and leaves no task, shim, mount or bundle', async () => {
    const result = await ctr('run', '--rm', image, 'c4', '/nope');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/"\/nope".*no such file or directory/);
    expect((await taskRows()).map((r) => r.id)).not.toContain('c4');
    expect(must(await ctr('containers', 'ls', '-q')).split('\n')).not.toContain('c4');
    await waitFor('the shim of c4 to exit', () => (shimsOf(ns).some((s) => s.id === 'c4') ? undefined : true));
    expect(mountsUnder(daemon.state)).toEqual([]);
    expect(dirsNamed(daemon.dir, 'c4', 6)).toEqual([]);
  });

  it("answers wrong requests with containerd's status codes", async () => {
    must(await ctr('run', '-d', image, 'c6', 'sleep', '300'));
    const code = (p: Promise<unknown>) => p.then(() => grpc.status.OK, (e: grpc.ServiceError) => e.code);
    const io = { stdin: '', stdout: '', stderr: '', terminal: false, rootfs: [], runtimePath: '' };
    try {
      expect(await code(rawCall((c, md, cb) => c.create({ containerId: 'c6', ...io }, md, cb)))).toBe(grpc.status.ALREADY_EXISTS);
      expect(await code(rawCall((c, md, cb) => c.create({ containerId: 'nope', ...io }, md, cb)))).toBe(grpc.status.NOT_FOUND);
      const checkpoint = {
        mediaType: 'application/vnd.containerd.container.criu.checkpoint.criu.tar',
        digest: `sha256:${'0'.repeat(64)}`,
        size: 1,
        annotations: {},
      };
      const restore = rawCall((c, md, cb) => c.create({ containerId: 'c6', ...io, checkpoint }, md, cb));
      expect(await code(restore)).toBe(grpc.status.UNIMPLEMENTED);
      const exec = { containerId: 'c6', stdin: '', stdout: '', stderr: '', terminal: false };
      expect(await code(rawCall((c, md, cb) => c.exec({ ...exec, execId: 'x' }, md, cb)))).toBe(grpc.status.INVALID_ARGUMENT);
      const spec = {
        typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
        value: Buffer.from('{"args":["true"],"cwd":"/"}'),
      };
      expect(await code(rawCall((c, md, cb) => c.exec({ ...exec, execId: '', spec }, md, cb)))).toBe(grpc.status.INVALID_ARGUMENT);
      expect(await code(rawCall((c, md, cb) => c.start({ containerId: 'c6', execId: 'nope' }, md, cb)))).toBe(grpc.status.NOT_FOUND);
      const deleteUnknown = rawCall((c, md, cb) => c.deleteProcess({ containerId: 'c6', execId: 'nope' }, md, cb));
      expect(await code(deleteUnknown)).toBe(grpc.status.NOT_FOUND);
      expect(await code(rawCall((c, md, cb) => c.delete({ containerId: 'c6' }, md, cb)))).toBe(grpc.status.FAILED_PRECONDITION);
      expect(await code(rawCall((c, md, cb) => c.get({ containerId: 'nope', execId: '' }, md, cb)))).toBe(grpc.status.NOT_FOUND);
      expect((await taskRow('c6'))?.status).toBe('RUNNING');
    } finally {
      await ctr('tasks', 'kill', '-s', 'SIGKILL', 'c6');
      await waitFor('c6 to stop', async () => ((await taskRow('c6'))?.status === 'STOPPED' ? true : undefined));
      must(await ctr('tasks', 'rm', 'c6'));
      must(await ctr('containers', 'rm', 'c6'));
    }
  });

  it('keeps namespaces apart: a task of one namespace is NotFound from another', async () => {
    must(await ctr('run', '-d', image, 'c5', 'sleep', '300'));
    try {
      expect((await taskRow('c5'))?.status).toBe('RUNNING');
      expect(parseTaskList(must(await ctrB('tasks', 'ls')))).toEqual([]);
      for (const args of [['tasks', 'ps', 'c5'], ['tasks', 'kill', '-s', 'SIGKILL', 'c5'], ['tasks', 'pause', 'c5']]) {
        const r = await ctrB(...args);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/not found/);
      }
      // Still running in its own namespace after the other's kill.
      expect((await taskRow('c5'))?.status).toBe('RUNNING');
    } finally {
      await ctr('tasks', 'kill', '-s', 'SIGKILL', 'c5');
      await waitFor('c5 to stop', async () => ((await taskRow('c5'))?.status === 'STOPPED' ? true : undefined));
      must(await ctr('tasks', 'rm', 'c5'));
      must(await ctr('containers', 'rm', 'c5'));
    }
  });
});
