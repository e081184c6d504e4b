import type * as grpc from '@grpc/grpc-js';
import { NotImplementedError } from '../errdefs';
import type { AnyMessage } from '../events/types';
import type { DeletedProcess, ExitStatus, ProcessIO, ProcessInfo, ProcessState } from '../runtime/types';
import type { RemoteClients } from './remote-apis';
import type { CreateTaskRequestOptions, TaskMetric, TasksApi } from './types';

/** Tasks over gRPC (containerd.services.tasks.v1.Tasks). */
export class RemoteTasks implements TasksApi {
  constructor(
    private readonly clients: RemoteClients,
    private readonly md: () => grpc.Metadata,
  ) {}

  create(_containerId: string, _options?: CreateTaskRequestOptions): Promise<{ pid: number }> {
    throw new NotImplementedError('tasks.create: not implemented yet');
  }
  start(_containerId: string, _execId?: string): Promise<number> {
    throw new NotImplementedError('tasks.start: not implemented yet');
  }
  get(_containerId: string, _execId?: string): Promise<ProcessState> {
    throw new NotImplementedError('tasks.get: not implemented yet');
  }
  list(_filters?: string[]): Promise<ProcessState[]> {
    throw new NotImplementedError('tasks.list: not implemented yet');
  }
  kill(_containerId: string, _signal: number, _options?: { execId?: string; all?: boolean }): Promise<void> {
    throw new NotImplementedError('tasks.kill: not implemented yet');
  }
  wait(_containerId: string, _execId?: string): Promise<ExitStatus> {
    throw new NotImplementedError('tasks.wait: not implemented yet');
  }
  exec(_containerId: string, _execId: string, _spec: Record<string, unknown>, _io: ProcessIO): Promise<void> {
    throw new NotImplementedError('tasks.exec: not implemented yet');
  }
  delete(_containerId: string): Promise<DeletedProcess> {
    throw new NotImplementedError('tasks.delete: not implemented yet');
  }
  deleteProcess(_containerId: string, _execId: string): Promise<DeletedProcess> {
    throw new NotImplementedError('tasks.deleteProcess: not implemented yet');
  }
  pause(_containerId: string): Promise<void> {
    throw new NotImplementedError('tasks.pause: not implemented yet');
  }
  resume(_containerId: string): Promise<void> {
    throw new NotImplementedError('tasks.resume: not implemented yet');
  }
  pids(_containerId: string): Promise<ProcessInfo[]> {
    throw new NotImplementedError('tasks.pids: not implemented yet');
  }
  metrics(_filters?: string[]): Promise<TaskMetric[]> {
    throw new NotImplementedError('tasks.metrics: not implemented yet');
  }
  resizePty(_containerId: string, _width: number, _height: number, _execId?: string): Promise<void> {
    throw new NotImplementedError('tasks.resizePty: not implemented yet');
  }
  closeIO(_containerId: string, _execId?: string): Promise<void> {
    throw new NotImplementedError('tasks.closeIO: not implemented yet');
  }
  update(_containerId: string, _resources?: AnyMessage, _annotations?: Record<string, string>): Promise<void> {
    throw new NotImplementedError('tasks.update: not implemented yet');
  }
}
