import { ContainerStore } from '../containers/types';
import { PluginSkipError } from '../plugin/plugin-skip-error';
import { PluginType, type PluginRegistration } from '../plugin/types';
import { TaskRuntime, TaskService } from '../runtime/types';
import { SnapshotService } from '../snapshots/types';
import { LocalTaskService } from './task-service';

/**
 * `io.berth.service.v1.tasks`: the Tasks service over the task runtime, the
 * containers service and the snapshot service, bound as TaskService for the
 * gRPC Tasks service and the in-process facade. The other services are
 * resolved on use: plugins cannot require their own type (Service).
 */
export const tasksServicePlugin: PluginRegistration<unknown, LocalTaskService> = {
  type: PluginType.Service,
  id: 'tasks',
  requires: [PluginType.Runtime, PluginType.Metadata, PluginType.Event],
  init(ctx) {
    const runtimes = ctx.getByType<TaskRuntime>(PluginType.Runtime);
    const runtime = ctx.container.isBound(TaskRuntime) ? ctx.container.get<TaskRuntime>(TaskRuntime) : [...runtimes.values()][0];
    if (!runtime) throw new PluginSkipError('no task runtime is loaded');
    const { container } = ctx;
    const optional = <T>(token: symbol) => (): T | undefined => (container.isBound(token) ? container.get<T>(token) : undefined);
    const service = new LocalTaskService({
      runtime,
      containers: optional<ContainerStore>(ContainerStore),
      snapshots: optional<SnapshotService>(SnapshotService),
      logger: ctx.logger,
    });
    if (!container.isBound(TaskService)) container.bind<TaskService>(TaskService).toConstantValue(service);
    ctx.meta.exports.runtime = runtime.id;
    return service;
  },
};
