import type { Container, ContainerStore, NewContainer } from '../containers/types';
import { OCI_SPEC_TYPE_URL } from '../containers/types';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  isFailedPrecondition,
  isNotFound,
  NotFoundError,
} from '../errdefs';
import type { AnyMessage } from '../events/types';
import type {
  CreateTaskOptions,
  DeletedProcess,
  ExecOptions,
  ExitStatus,
  ProcessInfo,
  ProcessState,
  ProcessStatus,
  RuntimeProcess,
  RuntimeTask,
  TaskRuntime,
} from '../runtime/types';
import type { Mount, Snapshotter, SnapshotService } from '../snapshots/types';
import { LocalTaskService } from './task-service';

// The service's own logic (lookups, checks, rootfs choice, filters) over
// in-memory stand-ins; the real runtime and stores run in test/tasks.

class MemoryContainers implements ContainerStore {
  readonly byNamespace = new Map<string, Map<string, Container>>();
  async get(namespace: string, id: string): Promise<Container> {
    const found = this.byNamespace.get(namespace)?.get(id);
    if (!found) throw new NotFoundError(`container "${id}" in namespace "${namespace}": not found`);
    return found;
  }
  async list(namespace: string): Promise<Container[]> {
    return [...(this.byNamespace.get(namespace)?.values() ?? [])];
  }
  async create(namespace: string, c: NewContainer): Promise<Container> {
    const now = new Date();
    const container: Container = {
      labels: {},
      image: '',
      snapshotter: '',
      snapshotKey: '',
      extensions: {},
      sandbox: '',
      ...c,
      createdAt: now,
      updatedAt: now,
    };
    if (!this.byNamespace.has(namespace)) this.byNamespace.set(namespace, new Map());
    this.byNamespace.get(namespace)!.set(c.id, container);
    return container;
  }
  async update(): Promise<Container> {
    throw new Error('unused');
  }
  async delete(namespace: string, id: string): Promise<void> {
    this.byNamespace.get(namespace)?.delete(id);
  }
}

class FakeProcess implements RuntimeProcess {
  status: ProcessStatus = 'created';
  pid = 0;
  exit?: ExitStatus;
  signals: number[] = [];
  stdinClosed = false;
  constructor(
    readonly containerId: string,
    readonly execId: string,
    private readonly nextPid: () => number,
  ) {}
  async state(): Promise<ProcessState> {
    return {
      id: this.containerId,
      execId: this.execId,
      pid: this.pid,
      status: this.status,
      bundle: '/bundle',
      exitStatus: this.exit?.exitStatus ?? 0,
      ...(this.exit ? { exitedAt: this.exit.exitedAt } : {}),
      terminal: false,
    };
  }
  async start(): Promise<number> {
    this.pid = this.pid || this.nextPid();
    this.status = 'running';
    return this.pid;
  }
  async kill(signal: number): Promise<void> {
    this.signals.push(signal);
    this.status = 'stopped';
    this.exit = { exitStatus: 128 + signal, exitedAt: new Date() };
  }
  async resizePty(): Promise<void> {}
  async closeIO(): Promise<void> {
    this.stdinClosed = true;
  }
  async wait(): Promise<ExitStatus> {
    if (!this.exit) throw new Error('fake process has not exited');
    return this.exit;
  }
  async delete(): Promise<DeletedProcess> {
    if (this.status === 'running') throw new FailedPreconditionError('process is running');
    return { pid: this.pid, exitStatus: this.exit?.exitStatus ?? 0, exitedAt: this.exit?.exitedAt ?? new Date(0) };
  }
}

class FakeTask extends FakeProcess implements RuntimeTask {
  readonly execs = new Map<string, FakeProcess>();
  statsError?: Error;
  constructor(
    readonly id: string,
    readonly namespace: string,
    readonly options: CreateTaskOptions,
    nextPid: () => number,
  ) {
    super(id, '', nextPid);
    this.pid = nextPid();
  }
  async pause(): Promise<void> {
    this.status = 'paused';
  }
  async resume(): Promise<void> {
    this.status = 'running';
  }
  async pids(): Promise<ProcessInfo[]> {
    return [{ pid: this.pid }];
  }
  async exec(execId: string, _options: ExecOptions): Promise<RuntimeProcess> {
    if (this.execs.has(execId)) throw new AlreadyExistsError(`exec ${execId} exists`);
    const p = new FakeProcess(this.id, execId, () => this.pid + 1000);
    this.execs.set(execId, p);
    return p;
  }
  async process(execId: string): Promise<RuntimeProcess> {
    const p = this.execs.get(execId);
    if (!p) throw new NotFoundError(`process ${execId} not found`);
    return p;
  }
  async update(): Promise<void> {}
  async stats(): Promise<AnyMessage | undefined> {
    if (this.statsError) throw this.statsError;
    return { typeUrl: 'test.Stats', value: Buffer.from(this.id) };
  }
  override async delete(): Promise<DeletedProcess> {
    throw new Error('the service deletes tasks through the runtime');
  }
}

class FakeRuntime implements TaskRuntime {
  readonly id = 'io.berth.runtime.v2.fake';
  readonly tasksByKey = new Map<string, FakeTask>();
  private pid = 100;
  private key = (ns: string, id: string) => `${ns}/${id}`;
  async create(namespace: string, id: string, options: CreateTaskOptions): Promise<RuntimeTask> {
    if (this.tasksByKey.has(this.key(namespace, id))) throw new AlreadyExistsError(`runtime: task ${id} exists`);
    const task = new FakeTask(id, namespace, options, () => ++this.pid);
    this.tasksByKey.set(this.key(namespace, id), task);
    return task;
  }
  async get(namespace: string, id: string): Promise<FakeTask> {
    const task = this.tasksByKey.get(this.key(namespace, id));
    if (!task) throw new NotFoundError(`runtime: no task ${id}`);
    return task;
  }
  async tasks(namespace?: string): Promise<RuntimeTask[]> {
    return [...this.tasksByKey.values()].filter((t) => namespace === undefined || t.namespace === namespace);
  }
  async delete(namespace: string, id: string): Promise<DeletedProcess> {
    const task = await this.get(namespace, id);
    this.tasksByKey.delete(this.key(namespace, id));
    return { pid: task.pid, exitStatus: task.exit?.exitStatus ?? 0, exitedAt: task.exit?.exitedAt ?? new Date(0) };
  }
}

const snapshotMounts: Mount[] = [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/l', 'upperdir=/u', 'workdir=/w'] }];

function fakeSnapshots(seen: string[]): SnapshotService {
  return {
    defaultName: 'overlayfs',
    names: () => ['overlayfs'],
    forNamespace(namespace: string, snapshotter = 'overlayfs') {
      return {
        async mounts(key: string) {
          seen.push(`${namespace}/${snapshotter}/${key}`);
          if (key !== 'snap-1') throw new NotFoundError(`snapshot ${key} does not exist`);
          return snapshotMounts;
        },
      } as unknown as Snapshotter;
    },
  };
}

const spec = { ociVersion: '1.0.2', process: { args: ['true'], cwd: '/' }, root: { path: 'rootfs' } };
const specAny = (): AnyMessage => ({ typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) });

// The normal paths run against the real runtime and shims in test/tasks; these
// stand-ins only cause faults that are awkward to produce for real.
describe('LocalTaskService faults (stand-in runtime and stores)', () => {
  let containers: MemoryContainers;
  let runtime: FakeRuntime;
  let snapshotCalls: string[];
  let service: LocalTaskService;

  beforeEach(() => {
    containers = new MemoryContainers();
    runtime = new FakeRuntime();
    snapshotCalls = [];
    const snapshots = fakeSnapshots(snapshotCalls);
    service = new LocalTaskService({ runtime, containers: () => containers, snapshots: () => snapshots });
  });

  const newContainer = (ns: string, id: string, extra: Partial<NewContainer> = {}) =>
    containers.create(ns, { id, runtime: { name: 'io.containerd.runc.v2' }, spec: specAny(), ...extra });

  it('names the snapshot when its mounts cannot be had, keeping NotFound', async () => {
    await newContainer('a', 'c1', { snapshotKey: 'gone' });
    const err = await service.inNamespace('a').create('c1').catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toBe('rootfs of container c1: snapshot overlayfs/gone: snapshot gone does not exist');
    expect(runtime.tasksByKey.size).toBe(0);
  });

  it('leaves out of metrics a task whose stats fail', async () => {
    await newContainer('a', 'c1');
    await newContainer('a', 'c2');
    const a = service.inNamespace('a');
    await a.create('c1');
    await a.create('c2');
    (await runtime.get('a', 'c1')).statsError = new NotFoundError('shim gone');
    expect((await a.metrics()).map((m) => m.id)).toEqual(['c2']);
  });

  it('says which service is missing when no containers service is loaded', async () => {
    const bare = new LocalTaskService({ runtime, containers: () => undefined, snapshots: () => undefined });
    const err = await bare.inNamespace('a').get('c1').catch((e: unknown) => e);
    expect(isFailedPrecondition(err)).toBe(true);
    expect((err as Error).message).toBe('tasks need the containers service, which is not loaded');
  });
});
