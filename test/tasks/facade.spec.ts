import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { type Berth, isFailedPrecondition, isNotFound, OCI_SPEC_TYPE_URL } from '@berth/core';
import { createBerth } from '@berth/builtins';
import { execProcessSpec, generateSpec, type RuntimeSpec } from '@berth/oci';
import { cgroupsV1Metrics, cgroupsV2Metrics, isAnyOf, unpackAny } from '@berth/proto';
import { makeTempDir, removeDir } from '../harness/daemon';
import { bothDoors, type Door } from '../harness/doors';
import { type FixtureImages, fixtureImages } from '../harness/images';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { describeAsRoot } from '../harness/root';
import {
  chainIds,
  cmdlineOf,
  host,
  killCgroupProcesses,
  killShims,
  mountsUnder,
  removeCgroups,
  uniqueName,
  waitFor,
} from './helpers';

/**
 * Opens a FIFO's read end without blocking (as ctr's cio does before Tasks.Create,
 * since the shim waits for a reader) and collects what arrives until the last
 * writer closes it.
 */
function readFifo(fifo: string): { text: Promise<string>; close(): void } {
  const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const socket = new net.Socket({ fd, readable: true, writable: false });
  let text = '';
  socket.setEncoding('utf8');
  return {
    text: new Promise((resolve, reject) => {
      socket.on('data', (d: string) => (text += d));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    }),
    close: () => socket.destroy(),
  };
}

/** stdout and stderr FIFOs, read from before the task exists (the shim opens all it is given). */
async function fifoPair(dir: string, name: string) {
  const paths = { stdout: path.join(dir, `${name}-stdout`), stderr: path.join(dir, `${name}-stderr`) };
  for (const fifo of Object.values(paths)) {
    const r = await host('mkfifo', [fifo]);
    if (r.code !== 0) throw new Error(`mkfifo ${fifo}: ${r.stderr}`);
  }
  const stdout = readFifo(paths.stdout);
  const stderr = readFifo(paths.stderr);
  return {
    io: { ...paths, terminal: false },
    stdout: stdout.text,
    stderr: stderr.text,
    close() {
      stdout.close();
      stderr.close();
    },
  };
}

let registry: RegistryHandle;
let fixtures: FixtureImages;
beforeAll(async () => {
  [registry, fixtures] = await Promise.all([startRegistry(), fixtureImages()]);
});
afterAll(() => registry?.stop());

// The same task life cycle through both doors of the facade: a container made
// from a spec we generate, on a snapshot of the pulled image, run by the runc shim.
describeAsRoot.each(
  bothDoors({ inProcess: { createBerth, name: 'createBerth (in-process, @berth/builtins)', tempPrefix: 'berth-tf-' } }),
)('tasks through the facade: %s', (_name, makeDoor) => {
  const ns = uniqueName('tasks-facade');
  let door: Door;
  let berth: Berth;
  let work: string;
  let topLayer: string;

  beforeAll(async () => {
    door = makeDoor();
    berth = (await door.open()).withNamespace(ns);
    work = makeTempDir('berth-tf-io-');
    await berth.images.pull(registry.ref('busybox:latest'), { registry: { plainHttp: true } });
    topLayer = chainIds(fixtures.busybox.diffIds).at(-1)!;
  });

  afterAll(async () => {
    if (berth) {
      // Whatever a failed test left running: through the facade first, then by force.
      for (const task of await berth.tasks.list().catch(() => [])) {
        await berth.tasks.kill(task.id, 9).catch(() => undefined);
        await berth.tasks.wait(task.id).catch(() => undefined);
        await berth.tasks.delete(task.id).catch(() => undefined);
      }
      for (const c of await berth.containers.list().catch(() => [])) await berth.containers.delete(c.id).catch(() => undefined);
    }
    killShims(ns);
    killCgroupProcesses(ns);
    if (door) for (const target of mountsUnder(door.dir())) await host('umount', ['-l', target]);
    await door?.close();
    removeCgroups(ns);
    if (work) removeDir(work);
  });

  /** A container on a fresh snapshot of the image, running `args`. */
  async function newContainer(id: string, args: string[]): Promise<RuntimeSpec> {
    const spec = await generateSpec({ namespace: ns, id, args });
    // As containerd clients do, a lease keeps the new snapshot until the container holds it.
    const lease = await berth.leases.create();
    const leased = berth.withLease(lease.id);
    await leased.snapshots('overlayfs').prepare(`${id}-rootfs`, topLayer);
    await leased.containers.create({
      id,
      runtime: { name: 'io.containerd.runc.v2' },
      spec: { typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) },
      snapshotter: 'overlayfs',
      snapshotKey: `${id}-rootfs`,
      image: registry.ref('busybox:latest'),
    });
    await berth.leases.delete(lease.id);
    return spec;
  }

  async function removeContainer(id: string): Promise<void> {
    await berth.containers.delete(id);
    await berth.snapshots('overlayfs').remove(`${id}-rootfs`);
  }

  it("runs a task on the container's snapshot: stdout FIFO, start, wait gives the exit status", async () => {
    await newContainer('once', ['sh', '-c', 'echo out of the box; exit 5']);
    const stdio = await fifoPair(work, 'once');
    // No rootfs in the request: the service mounts the container's snapshot.
    const { pid } = await berth.tasks.create('once', { io: stdio.io }).catch((err: unknown) => {
      stdio.close();
      throw err;
    });
    expect(pid).toBeGreaterThan(0);
    expect(await berth.tasks.get('once')).toMatchObject({ id: 'once', execId: '', pid, status: 'created', exitStatus: 0 });
    expect((await berth.tasks.get('once')).exitedAt).toBeUndefined();

    const exited = berth.tasks.wait('once');
    const before = Date.now();
    expect(await berth.tasks.start('once')).toBe(pid);
    const exit = await exited;
    expect(exit.exitStatus).toBe(5);
    expect(exit.exitedAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(await stdio.stdout).toBe('out of the box\n');
    expect(await stdio.stderr).toBe('');

    const stopped = await berth.tasks.get('once');
    expect(stopped).toMatchObject({ pid, status: 'stopped', exitStatus: 5 });
    expect(stopped.exitedAt?.getTime()).toBe(exit.exitedAt.getTime());
    expect(await berth.tasks.delete('once')).toMatchObject({ pid, exitStatus: 5 });
    expect(isNotFound(await berth.tasks.get('once').catch((e: unknown) => e))).toBe(true);
    await removeContainer('once');
  });

  it('execs in a running task, reports metrics, pauses, refuses to delete it running, kills and deletes it', async () => {
    const spec = await newContainer('long', ['sleep', '300']);
    const { pid } = await berth.tasks.create('long');
    expect(await berth.tasks.start('long')).toBe(pid);
    // start returns once runc let the process go; it execs sleep right after.
    await waitFor(`pid ${pid} to run sleep`, () => (cmdlineOf(pid)?.[0] === 'sleep' ? true : undefined));
    expect(cmdlineOf(pid)).toEqual(['sleep', '300']);
    expect((await berth.tasks.list()).map((t) => [t.id, t.pid, t.status])).toEqual([['long', pid, 'running']]);

    const execProcess = await execProcessSpec(spec, {
      args: ['sh', '-c', 'echo from the exec; echo and its stderr >&2; exit 7'],
      terminal: false,
    });
    const stdio = await fifoPair(work, 'exec');
    await berth.tasks.exec('long', 'e1', execProcess, stdio.io).catch((err: unknown) => {
      stdio.close();
      throw err;
    });
    expect(await berth.tasks.get('long', 'e1')).toMatchObject({ id: 'long', execId: 'e1', status: 'created' });
    const execExit = berth.tasks.wait('long', 'e1');
    const execPid = await berth.tasks.start('long', 'e1');
    expect(execPid).toBeGreaterThan(0);
    expect(execPid).not.toBe(pid);
    expect((await execExit).exitStatus).toBe(7);
    expect(await stdio.stdout).toBe('from the exec\n');
    expect(await stdio.stderr).toBe('and its stderr\n');
    expect(await berth.tasks.deleteProcess('long', 'e1')).toMatchObject({ pid: execPid, exitStatus: 7 });
    expect(isNotFound(await berth.tasks.get('long', 'e1').catch((e: unknown) => e))).toBe(true);
    expect((await berth.tasks.pids('long')).map((p) => p.pid)).toEqual([pid]);

    const [metric, ...more] = await berth.tasks.metrics([`id==long`]);
    expect(more).toEqual([]);
    expect(metric!.id).toBe('long');
    const data = { typeUrl: metric!.data!.typeUrl, value: Buffer.from(metric!.data!.value) };
    const pids = isAnyOf(data, cgroupsV1Metrics.Metrics)
      ? unpackAny(data, cgroupsV1Metrics.Metrics).pids
      : unpackAny(data, cgroupsV2Metrics.Metrics).pids;
    expect(pids?.current).toBe('1');

    await berth.tasks.pause('long');
    expect((await berth.tasks.get('long')).status).toBe('paused');
    await berth.tasks.resume('long');
    expect((await berth.tasks.get('long')).status).toBe('running');

    const refused = await berth.tasks.delete('long').catch((e: unknown) => e);
    expect(isFailedPrecondition(refused)).toBe(true);

    // Another namespace sees neither the container nor, with a same-named container, the task.
    const other = berth.withNamespace(`${ns}-b`);
    expect(isNotFound(await other.tasks.get('long').catch((e: unknown) => e))).toBe(true);
    await other.containers.create({
      id: 'long',
      runtime: { name: 'io.containerd.runc.v2' },
      spec: { typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) },
    });
    const hidden = await other.tasks.kill('long', 9).catch((e: unknown) => e);
    expect(isNotFound(hidden)).toBe(true);
    expect((hidden as Error).message).toMatch(/task long not found/);
    expect(await other.tasks.list()).toEqual([]);
    await other.containers.delete('long');
    expect((await berth.tasks.get('long')).status).toBe('running');

    const exited = berth.tasks.wait('long');
    await berth.tasks.kill('long', 9);
    expect((await exited).exitStatus).toBe(137);
    expect(cmdlineOf(pid)).toBeUndefined();
    expect(await berth.tasks.delete('long')).toMatchObject({ pid, exitStatus: 137 });
    expect(await berth.tasks.list()).toEqual([]);
    await removeContainer('long');
    expect(mountsUnder(door.dir())).toEqual([]);
  });
});
