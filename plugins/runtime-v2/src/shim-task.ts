import {
  AnyMessage,
  DeletedProcess,
  ExecOptions,
  ExitStatus,
  FailedPreconditionError,
  isUnavailable,
  NotFoundError,
  ProcessInfo,
  ProcessIO,
  ProcessState,
  ProcessStatus,
  RuntimeProcess,
  RuntimeTask,
  validateIdentifier,
} from '@berth/core';
import { isUnsetTime, shimTaskV2, taskTypesV1 } from '@berth/proto';
import type { TtrpcClientOf, TtrpcConnection } from '@berth/ttrpc';
import type { Bundle } from './bundle';
import type { ShimInvocation } from './shim-binary';
import type { ShimLog } from './shim-log';

export type ShimTaskClient = TtrpcClientOf<typeof shimTaskV2.TaskDefinition>;

/** Type URL containerd's typeurl registers for an OCI Process (JSON inside the Any). */
export const OCI_PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';

/** ttrpc metadata key carrying the namespace to a shim. */
export const SHIM_NAMESPACE_METADATA_KEY = 'containerd-namespace-ttrpc';

const SHUTDOWN_TIMEOUT_MS = 5_000;
/** How long to wait for a shim to close its end after Shutdown, i.e. to exit. */
const SHIM_EXIT_WAIT_MS = 2_000;

const statusNames: Partial<Record<taskTypesV1.Status, ProcessStatus>> = {
  [taskTypesV1.Status.CREATED]: 'created',
  [taskTypesV1.Status.RUNNING]: 'running',
  [taskTypesV1.Status.STOPPED]: 'stopped',
  [taskTypesV1.Status.PAUSED]: 'paused',
  [taskTypesV1.Status.PAUSING]: 'pausing',
};

export function processStatusOf(status: taskTypesV1.Status): ProcessStatus {
  return statusNames[status] ?? 'unknown';
}

function toProtoAny(any: AnyMessage): { typeUrl: string; value: Buffer } {
  return { typeUrl: any.typeUrl, value: Buffer.from(any.value) };
}

function orUndefined(value: string): string | undefined {
  return value === '' ? undefined : value;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The live link to a task's shim: its ttrpc connection, Task client and log reader. */
export interface ShimLink {
  connection: TtrpcConnection;
  client: ShimTaskClient;
  log?: ShimLog;
}

export interface ShimTaskInit {
  namespace: string;
  id: string;
  pid: number;
  bundle: Bundle;
  io: ProcessIO;
  invocation: ShimInvocation;
  /** The shim's ttrpc address. */
  address: string;
  /** Absent for a task whose shim was already gone when it was loaded. */
  link?: ShimLink;
  /** Set for a task whose shim was already gone when it was loaded. */
  exit?: DeletedProcess;
  /** Deletes the whole task (the runtime's delete), for `RuntimeTask.delete`. */
  deleteTask: () => Promise<DeletedProcess>;
}

/**
 * A task served by one v2 shim over ttrpc. Every call goes to the shim's Task
 * service; once the shim is gone (killed, crashed) the task is STOPPED with the
 * exit status its cleanup found, until it is deleted.
 */
export class ShimTask implements RuntimeTask {
  readonly execId = '';
  readonly namespace: string;
  readonly id: string;
  readonly bundle: Bundle;
  readonly invocation: ShimInvocation;
  readonly address: string;
  private currentPid: number;
  private readonly io: ProcessIO;
  private link?: ShimLink;
  private deadExit?: DeletedProcess;
  private resolveDeath!: (exit: DeletedProcess) => void;
  private readonly death: Promise<DeletedProcess>;
  /** Set when berth closes the link itself (delete, daemon shutdown), so the close is not a death. */
  private detached = false;
  /** The init exit reported by the shim's /tasks/exit event, which is truer than a cleanup's guess. */
  private reportedExit?: DeletedProcess;
  private readonly deleteTask: () => Promise<DeletedProcess>;

  constructor(init: ShimTaskInit) {
    this.namespace = init.namespace;
    this.id = init.id;
    this.currentPid = init.pid;
    this.bundle = init.bundle;
    this.io = init.io;
    this.invocation = init.invocation;
    this.address = init.address;
    this.link = init.link;
    this.deleteTask = init.deleteTask;
    this.death = new Promise((resolve) => (this.resolveDeath = resolve));
    if (init.exit) this.markDead(init.exit);
  }

  get pid(): number {
    return this.currentPid;
  }

  /** The exit found after the shim died; undefined while it lives. */
  get exitAfterDeath(): DeletedProcess | undefined {
    return this.deadExit;
  }

  /** The init exit the shim reported in a /tasks/exit event, once seen. */
  get exitReported(): DeletedProcess | undefined {
    return this.reportedExit;
  }

  /** Resolves when the link closes for a reason other than berth closing it. */
  async lost(): Promise<boolean> {
    if (!this.link) return false;
    await this.link.connection.closed;
    return !this.detached;
  }

  noteExit(exit: DeletedProcess): void {
    this.reportedExit ??= exit;
  }

  markDead(exit: DeletedProcess): void {
    this.deadExit ??= exit;
    this.link?.log?.close();
    this.link = undefined;
    this.resolveDeath(this.deadExit);
  }

  /** Drops the link without telling the shim anything: the task keeps running (daemon shutdown). */
  detach(): void {
    this.detached = true;
    this.link?.connection.close();
    this.link?.log?.close();
  }

  /**
   * Asks the shim to exit (after its Delete) and waits briefly until it has
   * closed the connection, then drops the link.
   */
  async shutdownShim(): Promise<void> {
    const link = this.link;
    this.detached = true;
    if (!link) return;
    try {
      await link.client.shutdown({ id: this.id, now: false }, { timeoutMs: SHUTDOWN_TIMEOUT_MS });
    } catch {
      // The shim may exit before answering; that is the point of Shutdown.
    }
    await Promise.race([link.connection.closed, delay(SHIM_EXIT_WAIT_MS)]);
    link.connection.close();
    link.log?.close();
    this.link = undefined;
  }

  /** The Task client, or FailedPrecondition once the shim is gone. */
  private client(): ShimTaskClient {
    if (this.link) return this.link.client;
    if (this.deadExit) {
      throw new FailedPreconditionError(
        `task ${this.namespace}/${this.id}: its shim is gone (exit status ${this.deadExit.exitStatus})`,
      );
    }
    throw new FailedPreconditionError(`task ${this.namespace}/${this.id}: not connected to its shim`);
  }

  // RuntimeProcess of the init process.

  state(): Promise<ProcessState> {
    return this.processState('');
  }

  async start(): Promise<number> {
    const pid = await this.startProcess('');
    this.currentPid = pid;
    return pid;
  }

  kill(signal: number, all = false): Promise<void> {
    return this.killProcess('', signal, all);
  }

  resizePty(width: number, height: number): Promise<void> {
    return this.resizeProcessPty('', width, height);
  }

  closeIO(): Promise<void> {
    return this.closeProcessIO('');
  }

  wait(): Promise<ExitStatus> {
    return this.waitProcess('');
  }

  delete(): Promise<DeletedProcess> {
    return this.deleteTask();
  }

  // The task as a whole.

  async pause(): Promise<void> {
    await this.client().pause({ id: this.id });
  }

  async resume(): Promise<void> {
    await this.client().resume({ id: this.id });
  }

  async pids(): Promise<ProcessInfo[]> {
    if (this.deadExit) return [];
    const response = await this.client().pids({ id: this.id });
    return response.processes.map((p) => ({ pid: p.pid, info: p.info ? { typeUrl: p.info.typeUrl, value: p.info.value } : undefined }));
  }

  async exec(execId: string, options: ExecOptions): Promise<RuntimeProcess> {
    validateIdentifier('exec id', execId);
    await this.client().exec({
      id: this.id,
      execId,
      terminal: options.io.terminal,
      stdin: options.io.stdin ?? '',
      stdout: options.io.stdout ?? '',
      stderr: options.io.stderr ?? '',
      spec: { typeUrl: OCI_PROCESS_TYPE_URL, value: Buffer.from(JSON.stringify(options.spec)) },
    });
    return new ShimExec(this, execId);
  }

  async process(execId: string): Promise<RuntimeProcess> {
    if (execId === '') return this;
    if (this.deadExit) throw new NotFoundError(`task ${this.namespace}/${this.id}: no process ${execId} (its shim is gone)`);
    await this.processState(execId); // NotFound from the shim for an unknown exec id
    return new ShimExec(this, execId);
  }

  async update(resources?: AnyMessage, annotations?: Record<string, string>): Promise<void> {
    await this.client().update({
      id: this.id,
      resources: resources ? toProtoAny(resources) : undefined,
      annotations: annotations ?? {},
    });
  }

  async stats(): Promise<AnyMessage | undefined> {
    // A task whose shim died has no cgroup left to measure; containerd would no longer list it.
    if (this.deadExit) throw new NotFoundError(`task ${this.namespace}/${this.id}: no stats, its shim is gone`);
    const response = await this.client().stats({ id: this.id });
    return response.stats ? { typeUrl: response.stats.typeUrl, value: response.stats.value } : undefined;
  }

  // Per-process operations, shared with execs.

  async processState(execId: string): Promise<ProcessState> {
    if (this.deadExit) return this.deadState(execId);
    const link = this.link;
    if (!link) this.client(); // throws the reason
    let r: shimTaskV2.StateResponse;
    try {
      r = await link!.client.state({ id: this.id, execId });
    } catch (err) {
      if (await this.failedBecauseShimDied(link!, err)) return this.deadState(execId);
      throw err;
    }
    return {
      // The shim answers an exec's id in `id`; ProcessState.id is always the container's.
      id: this.id,
      execId: r.execId || execId,
      pid: r.pid,
      status: processStatusOf(r.status),
      bundle: r.bundle || this.bundle.path,
      stdin: orUndefined(r.stdin),
      stdout: orUndefined(r.stdout),
      stderr: orUndefined(r.stderr),
      terminal: r.terminal,
      exitStatus: r.exitStatus,
      exitedAt: isUnsetTime(r.exitedAt) ? undefined : r.exitedAt,
    };
  }

  private deadState(execId: string): ProcessState {
    const exit = this.deadExit!;
    return {
      id: this.id,
      execId,
      pid: execId === '' ? exit.pid || this.currentPid : 0,
      status: 'stopped',
      bundle: this.bundle.path,
      ...(execId === '' ? this.io : { terminal: false }),
      exitStatus: exit.exitStatus,
      exitedAt: exit.exitedAt,
    };
  }

  /**
   * After a failed call: whether it failed because the shim died (the link
   * closed without berth closing it), in which case this waits until the
   * runtime has cleaned up after the shim and recorded the exit.
   */
  private async failedBecauseShimDied(link: ShimLink, err: unknown): Promise<boolean> {
    // A dropped connection fails its calls with Unavailable; anything else is the shim's answer.
    if (!isUnavailable(err)) return false;
    const closed = await Promise.race([link.connection.closed.then(() => true), delay(500).then(() => false)]);
    if (!closed || this.detached) return false;
    await this.death;
    return true;
  }

  async startProcess(execId: string): Promise<number> {
    const response = await this.client().start({ id: this.id, execId });
    return response.pid;
  }

  async killProcess(execId: string, signal: number, all: boolean): Promise<void> {
    if (this.deadExit) {
      throw new NotFoundError(`task ${this.namespace}/${this.id}: process already finished`);
    }
    await this.client().kill({ id: this.id, execId, signal, all });
  }

  async resizeProcessPty(execId: string, width: number, height: number): Promise<void> {
    await this.client().resizePty({ id: this.id, execId, width, height });
  }

  async closeProcessIO(execId: string): Promise<void> {
    await this.client().closeIO({ id: this.id, execId, stdin: true });
  }

  /** Waits for the process to exit; if the shim dies meanwhile, returns the exit its cleanup found. */
  async waitProcess(execId: string): Promise<ExitStatus> {
    if (this.deadExit) return { exitStatus: this.deadExit.exitStatus, exitedAt: this.deadExit.exitedAt };
    const link = this.link;
    if (!link) this.client(); // throws the reason
    try {
      const response = await link!.client.wait({ id: this.id, execId });
      return { exitStatus: response.exitStatus, exitedAt: isUnsetTime(response.exitedAt) ? new Date() : response.exitedAt! };
    } catch (err) {
      if (!(await this.failedBecauseShimDied(link!, err))) throw err;
      const exit = this.deadExit!;
      return { exitStatus: exit.exitStatus, exitedAt: exit.exitedAt };
    }
  }

  async deleteProcess(execId: string): Promise<DeletedProcess> {
    const state = await this.processState(execId);
    if (state.status === 'running' || state.status === 'paused' || state.status === 'pausing') {
      throw new FailedPreconditionError(
        `process ${execId} of task ${this.namespace}/${this.id} is ${state.status}; it must be stopped before deletion`,
      );
    }
    const response = await this.client().delete({ id: this.id, execId });
    return {
      pid: response.pid,
      exitStatus: response.exitStatus,
      exitedAt: isUnsetTime(response.exitedAt) ? new Date() : response.exitedAt!,
    };
  }
}

/** An exec of a ShimTask: the same shim, addressed by exec id. */
export class ShimExec implements RuntimeProcess {
  constructor(
    private readonly task: ShimTask,
    readonly execId: string,
  ) {}

  state(): Promise<ProcessState> {
    return this.task.processState(this.execId);
  }

  start(): Promise<number> {
    return this.task.startProcess(this.execId);
  }

  kill(signal: number, all = false): Promise<void> {
    return this.task.killProcess(this.execId, signal, all);
  }

  resizePty(width: number, height: number): Promise<void> {
    return this.task.resizeProcessPty(this.execId, width, height);
  }

  closeIO(): Promise<void> {
    return this.task.closeProcessIO(this.execId);
  }

  wait(): Promise<ExitStatus> {
    return this.task.waitProcess(this.execId);
  }

  delete(): Promise<DeletedProcess> {
    return this.task.deleteProcess(this.execId);
  }
}
