import * as fs from 'fs';
import { Readable, Writable } from 'stream';
import { type Berth, isInvalidArgument, isNotFound } from '@berth/core';
import {
  attachTask,
  createBerth,
  execInContainer,
  newContainer,
  removeContainer,
  runContainer,
} from '@berth/builtins';
import { makeTempDir, removeDir } from '../harness/daemon';
import { bothDoors, type Door } from '../harness/doors';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { describeAsRoot } from '../harness/root';
import { leftoverFifos } from './helpers';
import { host, killCgroupProcesses, killShims, mountsUnder, removeCgroups, uniqueName, waitFor } from '../tasks/helpers';

/** A Writable that keeps what it is given. */
class Collector extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

let registry: RegistryHandle;
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(() => registry?.stop());

// runContainer and friends through both doors of the facade: what an embedder
// of berth calls to run a container in a few lines.
describeAsRoot.each(
  bothDoors({ inProcess: { createBerth, tempPrefix: 'berth-rf-' } }),
)('running containers through the facade: %s', (_name, makeDoor) => {
  const ns = uniqueName('run-facade');
  let door: Door;
  let berth: Berth;
  let fifoDir: string;
  let image: string;
  const pull = () => ({ registry: { plainHttp: true } });

  beforeAll(async () => {
    door = makeDoor();
    berth = (await door.open()).withNamespace(ns);
    fifoDir = makeTempDir('berth-rf-fifo-');
    image = registry.ref('busybox:latest');
  });

  afterAll(async () => {
    if (berth) {
      for (const task of await berth.tasks.list().catch(() => [])) {
        await berth.tasks.kill(task.id, 9).catch(() => undefined);
        await berth.tasks.wait(task.id).catch(() => undefined);
        await berth.tasks.delete(task.id).catch(() => undefined);
      }
      for (const c of await berth.containers.list().catch(() => [])) await removeContainer(berth, c.id).catch(() => undefined);
    }
    killShims(ns);
    killCgroupProcesses(ns);
    if (door) for (const target of mountsUnder(door.dir())) await host('umount', ['-l', target]);
    await door?.close();
    removeCgroups(ns);
    if (fifoDir) removeDir(fifoDir);
  });

  it('runContainer pulls the image, returns the exit status, hands over stdout and stderr, and rm cleans up', async () => {
    const stdout = new Collector();
    const stderr = new Collector();
    const result = await runContainer(berth, {
      id: 'first',
      image,
      pull: pull(),
      args: ['sh', '-c', 'echo "hello $WHO"; echo oops >&2; exit 6'],
      env: ['WHO=embedder'],
      stdout,
      stderr,
      rm: true,
      fifoDir,
    });
    expect(result.exitStatus).toBe(6);
    expect(result.pid).toBeGreaterThan(0);
    expect(result.exitedAt).toBeInstanceOf(Date);
    expect(stdout.text).toBe('hello embedder\n');
    expect(stderr.text).toBe('oops\n');
    expect(isNotFound(await berth.containers.get('first').catch((e: unknown) => e))).toBe(true);
    expect((await berth.snapshots('overlayfs').list()).map((s) => s.name)).not.toContain('first');
    expect(leftoverFifos(fifoDir, ['first'])).toEqual([]);
  });

  it("picks the host's manifest from a multi-platform index", async () => {
    const stdout = new Collector();
    const result = await runContainer(berth, {
      id: 'multi',
      image: registry.ref('multi:latest'),
      pull: pull(),
      args: ['cat', '/etc/berth-fixture'],
      stdout,
      rm: true,
      fifoDir,
    });
    expect(result.exitStatus).toBe(0);
    expect(stdout.text).toBe('hello from a berth fixture image\n');
  });

  it('pipes a Readable into stdin and ends it', async () => {
    const stdout = new Collector();
    const result = await runContainer(berth, {
      id: 'stdin',
      image,
      args: ['sh', '-c', 'cat; echo "[end]"'],
      stdin: Readable.from(['line 1\n', 'line 2\n']),
      stdout,
      rm: true,
      fifoDir,
    });
    expect(result.exitStatus).toBe(0);
    expect(stdout.text).toBe('line 1\nline 2\n[end]\n');
  });

  it('without rm keeps the container (the task is gone); removeContainer removes it and its snapshot', async () => {
    const result = await runContainer(berth, { id: 'kept', image, args: ['true'], fifoDir });
    expect(result.exitStatus).toBe(0);
    const container = await berth.containers.get('kept');
    expect(container).toMatchObject({ image, snapshotter: 'overlayfs', snapshotKey: 'kept', runtime: { name: 'io.containerd.runc.v2' } });
    expect(isNotFound(await berth.tasks.get('kept').catch((e: unknown) => e))).toBe(true);
    expect((await berth.snapshots('overlayfs').stat('kept')).kind).toBe('active');
    await removeContainer(berth, 'kept');
    expect(isNotFound(await berth.containers.get('kept').catch((e: unknown) => e))).toBe(true);
    expect(isNotFound(await berth.snapshots('overlayfs').stat('kept').catch((e: unknown) => e))).toBe(true);
  });

  it('detached: runs on; exec and attach through the facade; removeContainer force-stops it', async () => {
    const started = await runContainer(berth, { id: 'bg', image, args: ['sh', '-c', 'echo up; sleep 300'], detach: true, fifoDir });
    expect(started.exitStatus).toBeUndefined();
    expect((await berth.tasks.get('bg')).status).toBe('running');

    const out = new Collector();
    const exec = await execInContainer(berth, { id: 'bg', execId: 'probe', args: ['sh', '-c', 'id -u; exit 4'], user: 'nobody', stdout: out, fifoDir });
    expect(exec.exitStatus).toBe(4);
    expect(out.text).toBe('65534\n');
    expect(isNotFound(await berth.tasks.get('bg', 'probe').catch((e: unknown) => e))).toBe(true);

    const attached = new Collector();
    const status = attachTask(berth, 'bg', { stdout: attached });
    await waitFor('the output written before attach', () => (attached.text === 'up\n' ? true : undefined));
    await berth.tasks.kill('bg', 9);
    expect((await status).exitStatus).toBe(137);

    await removeContainer(berth, 'bg', { force: true });
    expect(isNotFound(await berth.containers.get('bg').catch((e: unknown) => e))).toBe(true);
    // The FIFOs of the detached run went with its task.
    expect(leftoverFifos(fifoDir, ['bg', 'probe'])).toEqual([]);
  });

  it('a failing newContainer leaves no snapshot, container or lease behind', async () => {
    const leasesBefore = (await berth.leases.list()).length;
    const err = await newContainer(berth, { id: 'badcwd', image, cwd: 'relative/dir' }).catch((e: unknown) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toMatch(/relative\/dir/);
    expect(isNotFound(await berth.containers.get('badcwd').catch((e: unknown) => e))).toBe(true);
    expect(isNotFound(await berth.snapshots('overlayfs').stat('badcwd').catch((e: unknown) => e))).toBe(true);
    expect((await berth.leases.list()).length).toBe(leasesBefore);
  });

  it('a task that cannot start fails runContainer, and rm still removes everything', async () => {
    const err = await runContainer(berth, { id: 'nocmd', image, args: ['/nope'], rm: true, stdout: new Collector(), fifoDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/nope/);
    expect(isNotFound(await berth.containers.get('nocmd').catch((e: unknown) => e))).toBe(true);
    expect(isNotFound(await berth.tasks.get('nocmd').catch((e: unknown) => e))).toBe(true);
    expect(isNotFound(await berth.snapshots('overlayfs').stat('nocmd').catch((e: unknown) => e))).toBe(true);
    expect(leftoverFifos(fifoDir, ['nocmd'])).toEqual([]);
  });

  it('left no FIFO dirs behind', () => {
    expect(fs.readdirSync(fifoDir)).toEqual([]);
  });
});
