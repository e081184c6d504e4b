import type { CreateTaskRequestOptions, TaskMetric, TasksApi } from '../client/types';
import type { Container, ContainerStore } from '../containers/types';
import {
  AlreadyExistsError,
  BerthError,
  errorKind,
  FailedPreconditionError,
  InvalidArgumentError,
  isNotFound,
  NotFoundError,
} from '../errdefs';
import type { AnyMessage } from '../events/types';
import { parseFilters, type FieldAdaptor } from '../filters';
import { silentLogger, type Logger } from '../log';
import type {
  DeletedProcess,
  ExitStatus,
  ProcessInfo,
  ProcessIO,
  ProcessState,
  ProcessStatus,
  RuntimeProcess,
  RuntimeTask,
  TaskRuntime,
  TaskService,
} from '../runtime/types';
import type { Mount, SnapshotService } from '../snapshots/types';

export interface LocalTaskServiceOptions {
  runtime: TaskRuntime;
  /** Resolved on use: the containers service may load after this one, or not at all. */
  containers: () => ContainerStore | undefined;
  snapshots: () => SnapshotService | undefined;
  logger?: Logger;
}

/** Statuses in which a task still has a live init process. */
const LIVE_STATUSES: ReadonlySet<ProcessStatus> = new Set(['running', 'paused', 'pausing']);

/**
 * containerd's local tasks service: joins a container's record (spec, runtime,
 * snapshot) with the task runtime. Every call looks the container up first, so
 * a task is reached only through a container of the caller's namespace.
 */
export class LocalTaskService implements TaskService {
  private readonly logger: Logger;

  constructor(private readonly options: LocalTaskServiceOptions) {
    this.logger = options.logger ?? silentLogger();
  }

  inNamespace(namespace: string): TasksApi {
    return new NamespacedTasks(this.options, this.logger, namespace);
  }
}

class NamespacedTasks implements TasksApi {
  constructor(
    private readonly options: LocalTaskServiceOptions,
    private readonly logger: Logger,
    private readonly namespace: string,
  ) {}

  private get runtime(): TaskRuntime {
    return this.options.runtime;
  }

  private containerStore(): ContainerStore {
    const store = this.options.containers();
    if (!store) throw new FailedPreconditionError('tasks need the containers service, which is not loaded');
    return store;
  }

  private container(containerId: string): Promise<Container> {
    return this.containerStore().get(this.namespace, containerId);
  }

  /** The task of a container that exists in this namespace; NotFound for either. */
  private async task(containerId: string): Promise<RuntimeTask> {
    await this.container(containerId);
    try {
      return await this.runtime.get(this.namespace, containerId);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`task ${containerId} not found`, { cause: err });
      throw err;
    }
  }

  private async process(containerId: string, execId?: string): Promise<RuntimeProcess> {
    const task = await this.task(containerId);
    return execId ? task.process(execId) : task;
  }

  async create(containerId: string, request: CreateTaskRequestOptions = {}): Promise<{ pid: number }> {
    const container = await this.container(containerId);
    const spec = parseSpec(container);
    await this.ensureNoTask(containerId);
    const rootfs = request.rootfs?.length ? request.rootfs : await this.snapshotMounts(container);
    const task = await this.runtime.create(this.namespace, containerId, {
      spec,
      rootfs,
      io: request.io ?? { terminal: false },
      runtime: request.runtimePath || container.runtime.name,
      ...(container.runtime.options ? { runtimeOptions: container.runtime.options } : {}),
      ...(request.options ? { taskOptions: request.options } : {}),
    });
    return { pid: task.pid };
  }

  private async ensureNoTask(containerId: string): Promise<void> {
    try {
      await this.runtime.get(this.namespace, containerId);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    throw new AlreadyExistsError(`task ${containerId}: already exists`);
  }

  /** The mounts of the container's snapshot; none when it has no snapshot (spec root is a host path). */
  private async snapshotMounts(container: Container): Promise<Mount[]> {
    if (!container.snapshotKey) return [];
    const snapshots = this.options.snapshots();
    if (!snapshots) {
      throw new FailedPreconditionError(
        `container ${container.id} uses snapshot ${JSON.stringify(container.snapshotKey)}, but no snapshot service is loaded`,
      );
    }
    const snapshotter = snapshots.forNamespace(this.namespace, container.snapshotter || undefined);
    try {
      return await snapshotter.mounts(container.snapshotKey);
    } catch (err) {
      const where = `${container.snapshotter || snapshots.defaultName}/${container.snapshotKey}`;
      throw wrapSameKind(err, `rootfs of container ${container.id}: snapshot ${where}`);
    }
  }

  async start(containerId: string, execId?: string): Promise<number> {
    return (await this.process(containerId, execId)).start();
  }

  async get(containerId: string, execId?: string): Promise<ProcessState> {
    return (await this.process(containerId, execId)).state();
  }

  /** Init processes of the namespace's tasks; `filters` over `id`, `pid` and `status`. */
  async list(filters: string[] = []): Promise<ProcessState[]> {
    const filter = parseFilters(filters);
    const states: ProcessState[] = [];
    for (const task of await this.runtime.tasks(this.namespace)) {
      const state = await this.listedState(task);
      if (state && filter.match(processFields(state))) states.push(state);
    }
    return states;
  }

  /** A task's state for listings: one deleted meanwhile is left out, one that fails shows as unknown. */
  private async listedState(task: RuntimeTask): Promise<ProcessState | undefined> {
    try {
      return await task.state();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      this.logger.warn({ err, id: task.id, namespace: this.namespace }, 'get state of task');
      return {
        id: task.id,
        execId: '',
        pid: task.pid,
        status: 'unknown',
        bundle: '',
        exitStatus: 0,
        terminal: false,
      };
    }
  }

  async kill(containerId: string, signal: number, options: { execId?: string; all?: boolean } = {}): Promise<void> {
    await (await this.process(containerId, options.execId)).kill(signal, options.all ?? false);
  }

  async wait(containerId: string, execId?: string): Promise<ExitStatus> {
    return (await this.process(containerId, execId)).wait();
  }

  async exec(containerId: string, execId: string, spec: Record<string, unknown>, io: ProcessIO): Promise<void> {
    if (!execId) throw new InvalidArgumentError('exec id cannot be empty');
    if (!isRecord(spec)) throw new InvalidArgumentError(`exec ${execId}: the process spec must be a JSON object`);
    const task = await this.task(containerId);
    await task.exec(execId, { spec, io });
  }

  async delete(containerId: string): Promise<DeletedProcess> {
    const task = await this.task(containerId);
    const { status } = await task.state();
    if (LIVE_STATUSES.has(status)) {
      throw new FailedPreconditionError(`task ${containerId} must be stopped before deletion: it is ${status}`);
    }
    return this.runtime.delete(this.namespace, containerId);
  }

  async deleteProcess(containerId: string, execId: string): Promise<DeletedProcess> {
    if (!execId) throw new InvalidArgumentError('exec id cannot be empty: delete the task to remove its init process');
    const task = await this.task(containerId);
    return (await task.process(execId)).delete();
  }

  async pause(containerId: string): Promise<void> {
    await (await this.task(containerId)).pause();
  }

  async resume(containerId: string): Promise<void> {
    await (await this.task(containerId)).resume();
  }

  async pids(containerId: string): Promise<ProcessInfo[]> {
    return (await this.task(containerId)).pids();
  }

  /** Stats of the namespace's tasks matching `filters` (fields `id`, `namespace`). */
  async metrics(filters: string[] = []): Promise<TaskMetric[]> {
    const filter = parseFilters(filters);
    const metrics: TaskMetric[] = [];
    for (const task of await this.runtime.tasks(this.namespace)) {
      const fields: FieldAdaptor = ([field]) =>
        field === 'id' ? task.id : field === 'namespace' ? task.namespace : undefined;
      if (!filter.match(fields)) continue;
      const timestamp = new Date();
      try {
        const data = await task.stats();
        metrics.push({ id: task.id, timestamp, ...(data ? { data } : {}) });
      } catch (err) {
        // A task that went away or cannot report is left out, as containerd does.
        if (!isNotFound(err)) this.logger.warn({ err, id: task.id, namespace: this.namespace }, 'collect task metrics');
      }
    }
    return metrics;
  }

  async resizePty(containerId: string, width: number, height: number, execId?: string): Promise<void> {
    await (await this.process(containerId, execId)).resizePty(width, height);
  }

  async closeIO(containerId: string, execId?: string): Promise<void> {
    await (await this.process(containerId, execId)).closeIO();
  }

  async update(containerId: string, resources?: AnyMessage, annotations?: Record<string, string>): Promise<void> {
    await (await this.task(containerId)).update(resources, annotations);
  }
}

/** The container's OCI spec, which containerd stores as JSON inside an Any. */
function parseSpec(container: Container): Record<string, unknown> {
  if (!container.spec || container.spec.value.length === 0) {
    throw new FailedPreconditionError(`container ${container.id} has no runtime spec: a task needs one`);
  }
  let spec: unknown;
  try {
    spec = JSON.parse(Buffer.from(container.spec.value).toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`container ${container.id}: its spec (${container.spec.typeUrl}) is not valid JSON`, {
      cause: err,
    });
  }
  if (!isRecord(spec)) throw new InvalidArgumentError(`container ${container.id}: its spec is not a JSON object`);
  return spec;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Filter fields of a listed process: `id` (container id), `pid`, `status`. */
function processFields(state: ProcessState): FieldAdaptor {
  return ([field]) => {
    switch (field) {
      case 'id':
      case 'container_id':
        return state.id;
      case 'pid':
        return String(state.pid);
      case 'status':
        return state.status;
      default:
        return undefined;
    }
  };
}

/** Prefixes `err`'s message with `context`, keeping its kind. */
function wrapSameKind(err: unknown, context: string): BerthError {
  const message = err instanceof Error ? err.message : String(err);
  return new BerthError(errorKind(err), `${context}: ${message}`, { cause: err });
}
