import type * as grpc from '@grpc/grpc-js';
import { isUnsetTime, taskTypesV1, type Any, type tasksV1 } from '@berth/proto';
import { InternalError } from '../errdefs';
import type { AnyMessage } from '../events/types';
import type { DeletedProcess, ExitStatus, ProcessIO, ProcessInfo, ProcessState, ProcessStatus } from '../runtime/types';
import type { Mount } from '../snapshots/types';
import { unaryCall, type RemoteClients } from './remote-apis';
import type { CreateTaskRequestOptions, TaskMetric, TasksApi } from './types';

const statuses = new Map<taskTypesV1.Status, ProcessStatus>([
  [taskTypesV1.Status.CREATED, 'created'],
  [taskTypesV1.Status.RUNNING, 'running'],
  [taskTypesV1.Status.STOPPED, 'stopped'],
  [taskTypesV1.Status.PAUSED, 'paused'],
  [taskTypesV1.Status.PAUSING, 'pausing'],
]);

function toProtoAny(any: AnyMessage): Any {
  const { value } = any;
  return { typeUrl: any.typeUrl, value: Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

function toProtoMounts(mounts: readonly Mount[]) {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: [...m.options] }));
}

/** Stdio fields of a request: proto3 leaves absent paths ''. */
function toProtoIO(io: ProcessIO | undefined) {
  return { stdin: io?.stdin ?? '', stdout: io?.stdout ?? '', stderr: io?.stderr ?? '', terminal: io?.terminal ?? false };
}

/** An exit time; Go's zero time (or none) means the process has not exited. */
function exitTime(date: Date | undefined): Date | undefined {
  return isUnsetTime(date) ? undefined : date;
}

/**
 * A Process message as berth's ProcessState. containerd 1.6 leaves
 * `container_id` empty and puts the exec id (or, for the init process, the
 * container id) in `id`, so the caller says which container it asked about.
 */
function toProcessState(process: taskTypesV1.Process | undefined, containerId: string, execId: string): ProcessState {
  if (!process) throw new InternalError(`server answered without the process of task ${containerId}`);
  const exitedAt = exitTime(process.exitedAt);
  return {
    id: process.containerId || containerId,
    execId,
    pid: process.pid,
    status: statuses.get(process.status) ?? 'unknown',
    bundle: '',
    exitStatus: process.exitStatus,
    ...(exitedAt ? { exitedAt } : {}),
    ...(process.stdin ? { stdin: process.stdin } : {}),
    ...(process.stdout ? { stdout: process.stdout } : {}),
    ...(process.stderr ? { stderr: process.stderr } : {}),
    terminal: process.terminal,
  };
}

function toDeleted(res: tasksV1.DeleteResponse): DeletedProcess {
  return { pid: res.pid, exitStatus: res.exitStatus, exitedAt: res.exitedAt ?? new Date(0) };
}

/** Tasks over gRPC (containerd.services.tasks.v1.Tasks). */
export class RemoteTasks implements TasksApi {
  constructor(
    private readonly clients: RemoteClients,
    private readonly md: () => grpc.Metadata,
  ) {}

  private get client(): tasksV1.TasksClient {
    return this.clients.tasks;
  }

  async create(containerId: string, options: CreateTaskRequestOptions = {}): Promise<{ pid: number }> {
    const req: tasksV1.CreateTaskRequest = {
      containerId,
      rootfs: toProtoMounts(options.rootfs ?? []),
      ...toProtoIO(options.io),
      runtimePath: options.runtimePath ?? '',
      ...(options.options ? { options: toProtoAny(options.options) } : {}),
    };
    const res = await unaryCall<tasksV1.CreateTaskResponse>((cb) => this.client.create(req, this.md(), cb));
    return { pid: res.pid };
  }

  async start(containerId: string, execId = ''): Promise<number> {
    const res = await unaryCall<tasksV1.StartResponse>((cb) => this.client.start({ containerId, execId }, this.md(), cb));
    return res.pid;
  }

  async get(containerId: string, execId = ''): Promise<ProcessState> {
    const res = await unaryCall<tasksV1.GetResponse>((cb) => this.client.get({ containerId, execId }, this.md(), cb));
    return toProcessState(res.process, containerId, execId);
  }

  /** ListTasksRequest carries one filter; several (alternatives) take one call each. */
  async list(filters: string[] = []): Promise<ProcessState[]> {
    if (filters.length > 1) {
      const lists = await Promise.all(filters.map((filter) => this.list([filter])));
      const seen = new Set<string>();
      return lists.flat().filter((state) => !seen.has(state.id) && seen.add(state.id));
    }
    const res = await unaryCall<tasksV1.ListTasksResponse>((cb) => this.client.list({ filter: filters[0] ?? '' }, this.md(), cb));
    return res.tasks.map((task) => toProcessState(task, task.containerId || task.id, ''));
  }

  async kill(containerId: string, signal: number, options: { execId?: string; all?: boolean } = {}): Promise<void> {
    const req = { containerId, execId: options.execId ?? '', signal, all: options.all ?? false };
    await unaryCall((cb) => this.client.kill(req, this.md(), cb));
  }

  async wait(containerId: string, execId = ''): Promise<ExitStatus> {
    const res = await unaryCall<tasksV1.WaitResponse>((cb) => this.client.wait({ containerId, execId }, this.md(), cb));
    return { exitStatus: res.exitStatus, exitedAt: res.exitedAt ?? new Date(0) };
  }

  async exec(containerId: string, execId: string, spec: Record<string, unknown>, io: ProcessIO): Promise<void> {
    const req: tasksV1.ExecProcessRequest = {
      containerId,
      execId,
      ...toProtoIO(io),
      spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify(spec)) },
    };
    await unaryCall((cb) => this.client.exec(req, this.md(), cb));
  }

  async delete(containerId: string): Promise<DeletedProcess> {
    const res = await unaryCall<tasksV1.DeleteResponse>((cb) => this.client.delete({ containerId }, this.md(), cb));
    return toDeleted(res);
  }

  async deleteProcess(containerId: string, execId: string): Promise<DeletedProcess> {
    const res = await unaryCall<tasksV1.DeleteResponse>((cb) => this.client.deleteProcess({ containerId, execId }, this.md(), cb));
    return toDeleted(res);
  }

  async pause(containerId: string): Promise<void> {
    await unaryCall((cb) => this.client.pause({ containerId }, this.md(), cb));
  }

  async resume(containerId: string): Promise<void> {
    await unaryCall((cb) => this.client.resume({ containerId }, this.md(), cb));
  }

  async pids(containerId: string): Promise<ProcessInfo[]> {
    const res = await unaryCall<tasksV1.ListPidsResponse>((cb) => this.client.listPids({ containerId }, this.md(), cb));
    return res.processes.map((p) => ({ pid: p.pid, ...(p.info ? { info: p.info } : {}) }));
  }

  async metrics(filters: string[] = []): Promise<TaskMetric[]> {
    const res = await unaryCall<tasksV1.MetricsResponse>((cb) => this.client.metrics({ filters }, this.md(), cb));
    return res.metrics.map((m) => ({ id: m.id, timestamp: m.timestamp ?? new Date(0), ...(m.data ? { data: m.data } : {}) }));
  }

  async resizePty(containerId: string, width: number, height: number, execId = ''): Promise<void> {
    await unaryCall((cb) => this.client.resizePty({ containerId, execId, width, height }, this.md(), cb));
  }

  async closeIO(containerId: string, execId = ''): Promise<void> {
    await unaryCall((cb) => this.client.closeIo({ containerId, execId, stdin: true }, this.md(), cb));
  }

  async update(containerId: string, resources?: AnyMessage, annotations: Record<string, string> = {}): Promise<void> {
    const req: tasksV1.UpdateTaskRequest = {
      containerId,
      annotations,
      ...(resources ? { resources: toProtoAny(resources) } : {}),
    };
    await unaryCall((cb) => this.client.update(req, this.md(), cb));
  }
}
