import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { EventEnvelope, Exchange, NotFoundError, NotImplementedError, silentLogger, TaskTopics } from '@berth/core';
import {
  containerdEvents,
  eventsTtrpcV1,
  goZeroTime,
  packAny,
  shimTaskV2,
  taskTypesV1,
} from '@berth/proto';
import { TtrpcCallContext, TtrpcConnection, TtrpcServer } from '@berth/ttrpc';
import { ShimManager } from './shim-manager';

type Task = typeof shimTaskV2.TaskDefinition;

interface FakeProcess {
  pid: number;
  status: taskTypesV1.Status;
  exitStatus: number;
  exitedAt: Date;
  exited: Promise<void>;
  exit: (status: number) => void;
}

/**
 * A stand-in for a shim's Task service, served in-process over real ttrpc, so
 * the manager's side of the protocol can be checked call by call.
 */
class FakeTaskService {
  readonly calls: { method: string; request: unknown; namespace: string[] | undefined }[] = [];
  readonly processes = new Map<string, FakeProcess>();
  /** A real shim exits after Shutdown, closing its connections. */
  onShutdown?: () => void;
  private nextPid = 1000;

  process(execId = ''): FakeProcess {
    const p = this.processes.get(execId);
    if (!p) throw new NotFoundError(`process ${execId}: not found`);
    return p;
  }

  private record(method: string, request: unknown, ctx: TtrpcCallContext): void {
    this.calls.push({ method, request, namespace: ctx.metadata.get('containerd-namespace-ttrpc') });
  }

  private add(execId: string): FakeProcess {
    let exit!: (status: number) => void;
    const p: FakeProcess = {
      pid: this.nextPid++,
      status: taskTypesV1.Status.CREATED,
      exitStatus: 0,
      exitedAt: goZeroTime(),
      exited: new Promise<void>((resolve) => {
        exit = (status) => {
          p.status = taskTypesV1.Status.STOPPED;
          p.exitStatus = status;
          p.exitedAt = new Date();
          resolve();
        };
      }),
      exit: (status) => exit(status),
    };
    this.processes.set(execId, p);
    return p;
  }

  impl(): { [K in keyof Task['methods']]: (request: never, ctx: TtrpcCallContext) => Promise<object> } {
    const notImplemented = async () => {
      throw new NotImplementedError('not in the fake');
    };
    return {
      create: async (r: shimTaskV2.CreateTaskRequest, ctx) => {
        this.record('create', r, ctx);
        return { pid: this.add('').pid };
      },
      start: async (r: shimTaskV2.StartRequest, ctx) => {
        this.record('start', r, ctx);
        const p = this.process(r.execId);
        p.status = taskTypesV1.Status.RUNNING;
        return { pid: p.pid };
      },
      state: async (r: shimTaskV2.StateRequest, ctx) => {
        this.record('state', r, ctx);
        const p = this.process(r.execId);
        return { id: r.id, execId: r.execId, pid: p.pid, status: p.status, exitStatus: p.exitStatus, exitedAt: p.exitedAt, stdout: '/fifo/out' };
      },
      exec: async (r: shimTaskV2.ExecProcessRequest, ctx) => {
        this.record('exec', r, ctx);
        this.add(r.execId);
        return {};
      },
      wait: async (r: shimTaskV2.WaitRequest, ctx) => {
        this.record('wait', r, ctx);
        const p = this.process(r.execId);
        await Promise.race([p.exited, new Promise((_, reject) => ctx.signal.addEventListener('abort', reject))]);
        return { exitStatus: p.exitStatus, exitedAt: p.exitedAt };
      },
      kill: async (r: shimTaskV2.KillRequest, ctx) => {
        this.record('kill', r, ctx);
        this.process(r.execId).exit(128 + r.signal);
        return {};
      },
      delete: async (r: shimTaskV2.DeleteRequest, ctx) => {
        this.record('delete', r, ctx);
        const p = this.process(r.execId);
        this.processes.delete(r.execId);
        return { pid: p.pid, exitStatus: p.exitStatus, exitedAt: p.exitedAt };
      },
      shutdown: async (r: shimTaskV2.ShutdownRequest, ctx) => {
        this.record('shutdown', r, ctx);
        setImmediate(() => this.onShutdown?.());
        return {};
      },
      connect: async (r: shimTaskV2.ConnectRequest, ctx) => {
        this.record('connect', r, ctx);
        return { shimPid: process.pid, taskPid: this.process().pid };
      },
      pids: notImplemented,
      pause: notImplemented,
      resume: notImplemented,
      checkpoint: notImplemented,
      resizePty: notImplemented,
      closeIO: notImplemented,
      update: notImplemented,
      stats: notImplemented,
    };
  }

  methods(): string[] {
    return this.calls.map((c) => c.method);
  }
}

async function eventually<T>(probe: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await probe();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not met in 2 s');
}

// The real shim covers the normal paths (test/runtime); this fake shim only causes
// races and faults a real one cannot be made to produce on demand.
describe('ShimManager faults (fake shim: timings a real shim cannot be made to hit)', () => {
  let dir: string;
  let shimSocket: string;
  let fake: FakeTaskService;
  let server: TtrpcServer;
  let exchange: Exchange;
  let events: EventEnvelope[];
  let managers: ShimManager[];

  async function serveFake(service = new FakeTaskService()): Promise<void> {
    fake = service;
    server = new TtrpcServer();
    server.register(shimTaskV2.TaskDefinition, fake.impl() as never);
    const serving = server;
    fake.onShutdown = () => void serving.close();
    await server.listen(shimSocket);
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-rtv2-mgr-'));
    shimSocket = join(dir, 'shim.sock');
    await serveFake();
    writeFileSync(
      join(dir, 'delete-response'),
      shimTaskV2.DeleteResponse.encode({ pid: 1000, exitStatus: 137, exitedAt: new Date('2024-01-01T00:00:00Z') }).finish(),
    );
    // The shim binary: `start` prints the fake's address, `delete` prints a DeleteResponse.
    writeFileSync(
      join(dir, 'fake-shim'),
      `#!/bin/sh
for last; do :; done
case "$last" in
  start) cat > ${dir}/start-stdin; echo "unix://${shimSocket}" ;;
  delete) echo "$@" >> ${dir}/deletes; cat ${dir}/delete-response ;;
  *) exit 1 ;;
esac
`,
    );
    chmodSync(join(dir, 'fake-shim'), 0o755);
    exchange = new Exchange();
    events = [];
    void (async () => {
      for await (const e of exchange.subscribe([])) events.push(e);
    })();
    managers = [];
  });

  afterEach(async () => {
    for (const m of managers) await m.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(): Promise<ShimManager> {
    const manager = await ShimManager.open({
      id: 'io.berth.runtime.v2.task',
      stateDir: join(dir, 'state'),
      rootDir: join(dir, 'root'),
      address: join(dir, 'berth.sock'),
      ttrpcAddress: join(dir, 'events.ttrpc'),
      publishBinary: '/usr/bin/berthd',
      defaultRuntime: 'fake',
      runtimes: { fake: { shim: join(dir, 'fake-shim'), binary_name: '/opt/crun' } },
      shimDebug: false,
      exchange,
      logger: silentLogger(),
    });
    managers.push(manager);
    return manager;
  }

  const createOptions = {
    spec: { ociVersion: '1.0.2' },
    rootfs: [{ type: 'bind', source: '/src', options: ['rbind', 'ro'] }],
    io: { terminal: false, stdout: '/fifo/out', stderr: '/fifo/err' },
    runtime: '',
  };

  it('answers state and delete right after the shim died with the cleaned-up exit, not a transport error', async () => {
    const manager = await open();
    const task = await manager.create('ns1', 't1', createOptions);
    await task.start();
    await server.close();
    expect(await task.state()).toMatchObject({ status: 'stopped', exitStatus: 137 });
    expect(await manager.delete('ns1', 't1')).toMatchObject({ exitStatus: 137 });
  });

  it('cleans up a create whose shim cannot be reached: no bundle, no task', async () => {
    const manager = await open();
    await server.close(); // `start` prints an address nobody listens on
    await expect(manager.create('ns1', 't2', createOptions)).rejects.toMatchObject({ kind: 'unavailable' });
    expect(existsSync(join(dir, 'state', 'ns1', 't2'))).toBe(false);
    expect(readFileSync(join(dir, 'deletes'), 'utf8')).toContain('-id t2');
    await expect(manager.get('ns1', 't2')).rejects.toMatchObject({ kind: 'not-found' });
  });

  it('keeps the exit the shim reported before it died, and does not publish it twice', async () => {
    const manager = await open();
    const task = await manager.create('ns1', 't1', createOptions);
    await task.start();
    const shimSide = await TtrpcConnection.connect(join(dir, 'events.ttrpc'));
    await shimSide.client(eventsTtrpcV1.EventsDefinition).forward({
      envelope: {
        timestamp: new Date(),
        namespace: 'ns1',
        topic: TaskTopics.exit,
        event: packAny(containerdEvents.TaskExit, { containerId: 't1', id: 't1', pid: 1000, exitStatus: 3, exitedAt: new Date() }),
      },
    });
    shimSide.close();
    await server.close();
    await eventually(async () => (await task.state().catch(() => undefined))?.status === 'stopped');
    expect(await task.state()).toMatchObject({ status: 'stopped', exitStatus: 3 });
    expect(events.filter((e) => e.topic === TaskTopics.exit)).toHaveLength(1);
  });

  it('rejects duplicate ids, also while the first create is still running', async () => {
    const manager = await open();
    const [a, b] = await Promise.allSettled([manager.create('ns1', 'same', createOptions), manager.create('ns1', 'same', createOptions)]);
    expect(a.status).toBe('fulfilled');
    expect(b).toMatchObject({ status: 'rejected', reason: { kind: 'already-exists' } });
    await expect(manager.create('ns1', 'same', createOptions)).rejects.toMatchObject({ kind: 'already-exists' });
    expect(await manager.create('ns2', 'same', createOptions)).toMatchObject({ namespace: 'ns2', id: 'same' });
  });
});
