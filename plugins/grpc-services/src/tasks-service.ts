import * as grpc from '@grpc/grpc-js';
import {
  GrpcService,
  InvalidArgumentError,
  namespaceOf,
  NotImplementedError,
  PluginRegistration,
  PluginSkipError,
  PluginType,
  TaskService,
  unary,
  type DeletedProcess,
  type ProcessIO,
  type ProcessState,
  type ProcessStatus,
  type TasksApi,
} from '@berth/core';
import { goZeroTime, taskTypesV1, tasksV1 } from '@berth/proto';
import { fromProtoMounts } from './snapshots-service';

const statuses: Record<ProcessStatus, taskTypesV1.Status> = {
  unknown: taskTypesV1.Status.UNKNOWN,
  created: taskTypesV1.Status.CREATED,
  running: taskTypesV1.Status.RUNNING,
  stopped: taskTypesV1.Status.STOPPED,
  paused: taskTypesV1.Status.PAUSED,
  pausing: taskTypesV1.Status.PAUSING,
};

/** containerd.v1.types.Process; `id` is the exec id, or the container id for the init process. */
export function toProtoProcess(state: ProcessState): taskTypesV1.Process {
  return {
    containerId: state.id,
    id: state.execId || state.id,
    pid: state.pid,
    status: statuses[state.status] ?? taskTypesV1.Status.UNKNOWN,
    stdin: state.stdin ?? '',
    stdout: state.stdout ?? '',
    stderr: state.stderr ?? '',
    terminal: state.terminal,
    exitStatus: state.exitStatus,
    // A process still running has Go's zero time here, as containerd sends it.
    exitedAt: state.exitedAt ?? goZeroTime(),
  };
}

function toDeleteResponse(id: string, deleted: DeletedProcess): tasksV1.DeleteResponse {
  return { id, pid: deleted.pid, exitStatus: deleted.exitStatus, exitedAt: deleted.exitedAt };
}

/** Request stdio fields; proto3 sends an absent path as ''. */
function toProcessIO(req: { stdin: string; stdout: string; stderr: string; terminal: boolean }): ProcessIO {
  return {
    ...(req.stdin ? { stdin: req.stdin } : {}),
    ...(req.stdout ? { stdout: req.stdout } : {}),
    ...(req.stderr ? { stderr: req.stderr } : {}),
    terminal: req.terminal,
  };
}

/** The OCI Process an exec carries as JSON in an Any. */
function parseProcessSpec(req: tasksV1.ExecProcessRequest): Record<string, unknown> {
  if (!req.spec?.value.length) throw new InvalidArgumentError(`exec ${req.execId}: a process spec is required`);
  let spec: unknown;
  try {
    spec = JSON.parse(Buffer.from(req.spec.value).toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`exec ${req.execId}: the process spec (${req.spec.typeUrl}) is not valid JSON`, { cause: err });
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new InvalidArgumentError(`exec ${req.execId}: the process spec is not a JSON object`);
  }
  return spec as Record<string, unknown>;
}

/**
 * containerd.services.tasks.v1.Tasks over the TaskService, in the namespace
 * of the `containerd-namespace` header. Checkpoints are not supported.
 */
export const tasksGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'tasks',
  requires: [PluginType.Service],
  init: (ctx) => {
    if (!ctx.container.isBound(TaskService)) throw new PluginSkipError('no tasks service is loaded');
    const service = ctx.container.get<TaskService>(TaskService);
    const tasks = (call: { metadata: grpc.Metadata }): TasksApi => service.inNamespace(namespaceOf(call));
    return {
      register(server: grpc.Server) {
        const impl: tasksV1.TasksServer = {
          create: unary(async (req, call) => {
            if (req.checkpoint) throw new NotImplementedError('restoring a task from a checkpoint is not supported');
            const { pid } = await tasks(call).create(req.containerId, {
              io: toProcessIO(req),
              rootfs: fromProtoMounts(req.rootfs),
              ...(req.options ? { options: req.options } : {}),
              ...(req.runtimePath ? { runtimePath: req.runtimePath } : {}),
            });
            return { containerId: req.containerId, pid };
          }),
          start: unary(async (req, call) => ({ pid: await tasks(call).start(req.containerId, req.execId || undefined) })),
          delete: unary(async (req, call) => toDeleteResponse(req.containerId, await tasks(call).delete(req.containerId))),
          deleteProcess: unary(async (req, call) =>
            toDeleteResponse(req.execId, await tasks(call).deleteProcess(req.containerId, req.execId)),
          ),
          get: unary(async (req, call) => ({
            process: toProtoProcess(await tasks(call).get(req.containerId, req.execId || undefined)),
          })),
          list: unary(async (req, call) => ({
            tasks: (await tasks(call).list(req.filter ? [req.filter] : [])).map(toProtoProcess),
          })),
          kill: unary(async (req, call) => {
            await tasks(call).kill(req.containerId, req.signal, { execId: req.execId || undefined, all: req.all });
            return {};
          }),
          exec: unary(async (req, call) => {
            if (!req.execId) throw new InvalidArgumentError('exec id cannot be empty');
            await tasks(call).exec(req.containerId, req.execId, parseProcessSpec(req), toProcessIO(req));
            return {};
          }),
          resizePty: unary(async (req, call) => {
            await tasks(call).resizePty(req.containerId, req.width, req.height, req.execId || undefined);
            return {};
          }),
          closeIo: unary(async (req, call) => {
            if (req.stdin) await tasks(call).closeIO(req.containerId, req.execId || undefined);
            return {};
          }),
          pause: unary(async (req, call) => {
            await tasks(call).pause(req.containerId);
            return {};
          }),
          resume: unary(async (req, call) => {
            await tasks(call).resume(req.containerId);
            return {};
          }),
          listPids: unary(async (req, call) => ({
            processes: (await tasks(call).pids(req.containerId)).map((p) => ({
              pid: p.pid,
              ...(p.info ? { info: { typeUrl: p.info.typeUrl, value: Buffer.from(p.info.value) } } : {}),
            })),
          })),
          checkpoint: unary(async () => {
            throw new NotImplementedError('checkpointing tasks is not supported');
          }),
          update: unary(async (req, call) => {
            await tasks(call).update(req.containerId, req.resources, req.annotations);
            return {};
          }),
          metrics: unary(async (req, call) => ({
            metrics: (await tasks(call).metrics(req.filters)).map((m) => ({
              timestamp: m.timestamp,
              id: m.id,
              ...(m.data ? { data: { typeUrl: m.data.typeUrl, value: Buffer.from(m.data.value) } } : {}),
            })),
          })),
          wait: unary(async (req, call) => {
            const exit = await tasks(call).wait(req.containerId, req.execId || undefined);
            return { exitStatus: exit.exitStatus, exitedAt: exit.exitedAt };
          }),
        };
        server.addService(tasksV1.TasksService, impl);
      },
    };
  },
};
