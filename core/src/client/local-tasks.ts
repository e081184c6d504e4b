import type { AnyMessage } from '../events/types';
import type { DeletedProcess, ExitStatus, ProcessIO, ProcessInfo, ProcessState } from '../runtime/types';
import { need, type LocalStores } from './local-apis';
import type { CreateTaskRequestOptions, TaskMetric, TasksApi } from './types';

/** Tasks in-process: the TaskService plugin, in this facade's namespace. */
export class LocalTasks implements TasksApi {
  constructor(
    private readonly stores: LocalStores,
    private readonly namespace: string,
  ) {}

  private get api(): TasksApi {
    return need(this.stores.tasks, 'tasks').inNamespace(this.namespace);
  }

  create(containerId: string, options?: CreateTaskRequestOptions): Promise<{ pid: number }> {
    return this.api.create(containerId, options);
  }
  start(containerId: string, execId?: string): Promise<number> {
    return this.api.start(containerId, execId);
  }
  get(containerId: string, execId?: string): Promise<ProcessState> {
    return this.api.get(containerId, execId);
  }
  list(filters?: string[]): Promise<ProcessState[]> {
    return this.api.list(filters);
  }
  kill(containerId: string, signal: number, options?: { execId?: string; all?: boolean }): Promise<void> {
    return this.api.kill(containerId, signal, options);
  }
  wait(containerId: string, execId?: string): Promise<ExitStatus> {
    return this.api.wait(containerId, execId);
  }
  exec(containerId: string, execId: string, spec: Record<string, unknown>, io: ProcessIO): Promise<void> {
    return this.api.exec(containerId, execId, spec, io);
  }
  delete(containerId: string): Promise<DeletedProcess> {
    return this.api.delete(containerId);
  }
  deleteProcess(containerId: string, execId: string): Promise<DeletedProcess> {
    return this.api.deleteProcess(containerId, execId);
  }
  pause(containerId: string): Promise<void> {
    return this.api.pause(containerId);
  }
  resume(containerId: string): Promise<void> {
    return this.api.resume(containerId);
  }
  pids(containerId: string): Promise<ProcessInfo[]> {
    return this.api.pids(containerId);
  }
  metrics(filters?: string[]): Promise<TaskMetric[]> {
    return this.api.metrics(filters);
  }
  resizePty(containerId: string, width: number, height: number, execId?: string): Promise<void> {
    return this.api.resizePty(containerId, width, height, execId);
  }
  closeIO(containerId: string, execId?: string): Promise<void> {
    return this.api.closeIO(containerId, execId);
  }
  update(containerId: string, resources?: AnyMessage, annotations?: Record<string, string>): Promise<void> {
    return this.api.update(containerId, resources, annotations);
  }
}
