import type { TasksApi } from '../client/types';
import type { AnyMessage } from '../events/types';
import type { Mount } from '../snapshots/types';

/** containerd's task/process status values, as the Tasks API reports them. */
export type ProcessStatus = 'unknown' | 'created' | 'running' | 'stopped' | 'paused' | 'pausing';

/** Paths (FIFOs or `file://`/`binary://` URIs) the shim opens for a process's stdio. */
export interface ProcessIO {
  stdin?: string;
  stdout?: string;
  stderr?: string;
  terminal: boolean;
}

export interface ExitStatus {
  /** 128+signal for a signalled process, as containerd reports it. */
  exitStatus: number;
  exitedAt: Date;
}

export interface ProcessState extends ProcessIO {
  /** Container id. */
  id: string;
  /** Exec id; empty for the task's init process. */
  execId: string;
  pid: number;
  status: ProcessStatus;
  bundle: string;
  exitStatus: number;
  /** Unset while the process runs. */
  exitedAt?: Date;
}

export interface DeletedProcess extends ExitStatus {
  pid: number;
}

export interface ProcessInfo {
  pid: number;
  /** Runtime-specific detail, e.g. `containerd.runc.v1.ProcessDetails` with an exec id. */
  info?: AnyMessage;
}

/** One process of a task: the init process (execId '') or an exec. */
export interface RuntimeProcess {
  readonly execId: string;
  state(): Promise<ProcessState>;
  /** Starts a created exec (the init process starts through RuntimeTask.start). Returns its pid. */
  start(): Promise<number>;
  kill(signal: number, all?: boolean): Promise<void>;
  resizePty(width: number, height: number): Promise<void>;
  /** Closes the process's stdin. */
  closeIO(): Promise<void>;
  /** Resolves when the process exits. */
  wait(): Promise<ExitStatus>;
  /** Removes a stopped process; FailedPrecondition while it runs. */
  delete(): Promise<DeletedProcess>;
}

export interface CreateTaskOptions {
  /** The OCI runtime spec (parsed JSON), written as the bundle's config.json. */
  spec: Record<string, unknown>;
  /** Mounted by the shim at <bundle>/rootfs. */
  rootfs: Mount[];
  io: ProcessIO;
  /** Runtime name (`io.containerd.runc.v2`) or an absolute path to a v2 shim binary. */
  runtime: string;
  /** The container's runtime options, passed to the shim (stdin of `start`) and in Create. */
  runtimeOptions?: AnyMessage;
  /** Per-task options (CreateTaskRequest.options), given to the shim's Create. */
  taskOptions?: AnyMessage;
}

export interface ExecOptions {
  /** The OCI Process (parsed JSON). */
  spec: Record<string, unknown>;
  io: ProcessIO;
}

/** A running (or stopped) task: a container's init process plus its execs, served by one shim. */
export interface RuntimeTask extends RuntimeProcess {
  /** Container id. */
  readonly id: string;
  readonly namespace: string;
  /** Pid of the init process; 0 before create returns. */
  readonly pid: number;
  /** Starts the init process. */
  start(): Promise<number>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  pids(): Promise<ProcessInfo[]>;
  /** Adds an exec (created, not started). AlreadyExists for a taken exec id. */
  exec(execId: string, options: ExecOptions): Promise<RuntimeProcess>;
  /** NotFound for an unknown exec id. */
  process(execId: string): Promise<RuntimeProcess>;
  /** `resources`: Any of the OCI LinuxResources JSON, as containerd sends it. */
  update(resources?: AnyMessage, annotations?: Record<string, string>): Promise<void>;
  /** Shim Stats: an Any such as `io.containerd.cgroups.v1.Metrics`. */
  stats(): Promise<AnyMessage | undefined>;
}

/**
 * containerd's runtime.PlatformRuntime: creates tasks and keeps track of them,
 * across daemon restarts. Task events (/tasks/*) reach the exchange from the shims.
 */
export interface TaskRuntime {
  /** The plugin URI, e.g. `io.berth.runtime.v2.task`. */
  readonly id: string;
  /** AlreadyExists if a task with this id exists in the namespace. */
  create(namespace: string, id: string, options: CreateTaskOptions): Promise<RuntimeTask>;
  /** NotFound if absent. */
  get(namespace: string, id: string): Promise<RuntimeTask>;
  /** Tasks of one namespace, or of all when `namespace` is undefined. */
  tasks(namespace?: string): Promise<RuntimeTask[]>;
  /**
   * Deletes a stopped task: the shim's Delete and Shutdown, its bundle removed,
   * rootfs unmounted. FailedPrecondition while it runs; NotFound if absent.
   */
  delete(namespace: string, id: string): Promise<DeletedProcess>;
}
export const TaskRuntime = Symbol.for('io.berth.TaskRuntime');

export const TaskTopics = {
  create: '/tasks/create',
  start: '/tasks/start',
  exit: '/tasks/exit',
  delete: '/tasks/delete',
  execAdded: '/tasks/exec-added',
  execStarted: '/tasks/exec-started',
  paused: '/tasks/paused',
  resumed: '/tasks/resumed',
  oom: '/tasks/oom',
  checkpointed: '/tasks/checkpointed',
} as const;

/**
 * The Tasks service behind both doors: the gRPC Tasks service and the
 * in-process facade call it. It joins containers, snapshots and the runtime.
 */
export interface TaskService {
  inNamespace(namespace: string): TasksApi;
}
export const TaskService = Symbol.for('io.berth.TaskService');
