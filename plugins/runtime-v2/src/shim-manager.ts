import { promises as fs } from 'fs';
import * as net from 'net';
import * as path from 'path';
import {
  AlreadyExistsError,
  CreateTaskOptions,
  DeletedProcess,
  EventEnvelope,
  EventExchange,
  FailedPreconditionError,
  isNotFound,
  Logger,
  NotFoundError,
  RuntimeTask,
  TaskRuntime,
  TaskTopics,
} from '@berth/core';
import { containerdEvents, packAny, shimTaskV2, typeNameFromUrl } from '@berth/proto';
import { TtrpcConnection } from '@berth/ttrpc';
import { Bundle, validateTaskName } from './bundle';
import { RuntimeEntry } from './config';
import { ShimEventsServer } from './events-server';
import { RuntimeResolver, withBinaryName } from './runtime-resolver';
import { deleteShim, ShimInvocation, startShim } from './shim-binary';
import { ShimLog } from './shim-log';
import { SHIM_NAMESPACE_METADATA_KEY, ShimLink, ShimTask } from './shim-task';
import { socketPathOf } from './socket-path';

export interface ShimManagerOptions {
  /** The plugin URI, reported as TaskRuntime.id. */
  id: string;
  /** Bundles live in `<stateDir>/<namespace>/<id>`. */
  stateDir: string;
  /** Work dirs live in `<rootDir>/<namespace>/<id>`. */
  rootDir: string;
  /** The daemon's gRPC address, given to shims as `-address`. */
  address: string;
  /** Where this manager serves the ttrpc Events service; shims get it as TTRPC_ADDRESS. */
  ttrpcAddress: string;
  publishBinary: string;
  defaultRuntime: string;
  runtimes: Readonly<Record<string, RuntimeEntry>>;
  shimDebug: boolean;
  exchange: EventExchange;
  logger: Logger;
  /** Shim binary search path; default `process.env.PATH`. */
  searchPath?: string;
}

const SHIM_CONNECT_TIMEOUT_MS = 10_000;
/** A shim that does not accept a connection this fast at recovery counts as gone. */
const RECOVERY_CONNECT_TIMEOUT_MS = 3_000;
const RECOVERY_STATE_TIMEOUT_MS = 10_000;
/** What containerd reports when a dead shim's cleanup cannot tell how the task ended. */
const UNKNOWN_EXIT_STATUS = 255;

function taskKey(namespace: string, id: string): string {
  return `${namespace}/${id}`;
}

/**
 * containerd's runtime v2 task manager: starts one shim per task, drives it
 * over ttrpc, forwards the shims' events to the exchange, cleans up after
 * shims that die, and finds running shims again after a daemon restart.
 */
export class ShimManager implements TaskRuntime {
  readonly id: string;
  private readonly tasksByKey = new Map<string, ShimTask>();
  private readonly creating = new Set<string>();
  private readonly deleting = new Map<string, Promise<DeletedProcess>>();
  private readonly deathCleanups = new Set<Promise<void>>();
  private readonly resolver: RuntimeResolver;
  private eventsServer?: ShimEventsServer;
  private closing = false;

  private constructor(private readonly options: ShimManagerOptions) {
    this.id = options.id;
    this.resolver = new RuntimeResolver({
      defaultRuntime: options.defaultRuntime,
      runtimes: options.runtimes,
      searchPath: options.searchPath,
    });
  }

  /** Serves the events socket, then reloads every task whose bundle is in the state dir. */
  static async open(options: ShimManagerOptions): Promise<ShimManager> {
    const manager = new ShimManager(options);
    manager.eventsServer = await ShimEventsServer.listen(options.ttrpcAddress, (envelope) => manager.onShimEvent(envelope));
    try {
      await manager.recover();
    } catch (err) {
      await manager.close();
      throw err;
    }
    return manager;
  }

  async create(namespace: string, id: string, options: CreateTaskOptions): Promise<RuntimeTask> {
    validateTaskName(namespace, id);
    this.assertOpen();
    const key = taskKey(namespace, id);
    if (this.tasksByKey.has(key) || this.creating.has(key)) {
      throw new AlreadyExistsError(`task ${key}: already exists`);
    }
    this.creating.add(key);
    try {
      const task = await this.createTask(namespace, id, options);
      this.tasksByKey.set(key, task);
      return task;
    } finally {
      this.creating.delete(key);
    }
  }

  async get(namespace: string, id: string): Promise<RuntimeTask> {
    const task = this.tasksByKey.get(taskKey(namespace, id));
    if (!task) throw new NotFoundError(`task ${taskKey(namespace, id)}: not found`);
    return task;
  }

  async tasks(namespace?: string): Promise<RuntimeTask[]> {
    const all = [...this.tasksByKey.values()];
    return namespace === undefined ? all : all.filter((t) => t.namespace === namespace);
  }

  delete(namespace: string, id: string): Promise<DeletedProcess> {
    const key = taskKey(namespace, id);
    const running = this.deleting.get(key);
    if (running) return running;
    const task = this.tasksByKey.get(key);
    if (!task) return Promise.reject(new NotFoundError(`task ${key}: not found`));
    const deletion = this.deleteTask(task).finally(() => this.deleting.delete(key));
    this.deleting.set(key, deletion);
    return deletion;
  }

  /**
   * Daemon shutdown: drops every shim connection and the events socket. Shims
   * and their containers keep running for the next daemon to find.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const task of this.tasksByKey.values()) task.detach();
    await Promise.allSettled([...this.deathCleanups]);
    await this.eventsServer?.close();
  }

  private assertOpen(): void {
    if (this.closing) throw new FailedPreconditionError(`runtime ${this.id} is closed`);
  }

  private invocation(bundle: Bundle, shimPath: string): ShimInvocation {
    return {
      shimPath,
      namespace: bundle.namespace,
      id: bundle.id,
      bundlePath: bundle.path,
      address: this.options.address,
      publishBinary: this.options.publishBinary,
      ttrpcAddress: this.options.ttrpcAddress,
      debug: this.options.shimDebug,
    };
  }

  private taskLogger(namespace: string, id: string): Logger {
    return this.options.logger.child({ namespace, task: id });
  }

  private async createTask(namespace: string, id: string, options: CreateTaskOptions): Promise<ShimTask> {
    const runtime = await this.resolver.resolve(options.runtime);
    const runtimeOptions = withBinaryName(options.runtimeOptions, runtime.binaryName);
    const taskOptions = withBinaryName(options.taskOptions ?? options.runtimeOptions, runtime.binaryName);
    const bundle = await Bundle.create(
      { stateDir: this.options.stateDir, rootDir: this.options.rootDir, namespace, id },
      options.spec,
      runtime.shimPath,
    );
    const invocation = this.invocation(bundle, runtime.shimPath);
    const logger = this.taskLogger(namespace, id);
    let log: ShimLog | undefined;
    let started = false;
    let link: ShimLink | undefined;
    let address: string | undefined;
    try {
      log = ShimLog.open(bundle.logPath, logger);
      address = await startShim(invocation, runtimeOptions);
      started = true;
      await bundle.writeAddress(address);
      link = await this.connect(address, namespace, SHIM_CONNECT_TIMEOUT_MS, log);
      const created = await link.client.create({
        id,
        bundle: bundle.path,
        rootfs: options.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options })),
        terminal: options.io.terminal,
        stdin: options.io.stdin ?? '',
        stdout: options.io.stdout ?? '',
        stderr: options.io.stderr ?? '',
        options: taskOptions ? { typeUrl: taskOptions.typeUrl, value: Buffer.from(taskOptions.value) } : undefined,
      });
      const task = new ShimTask({
        namespace,
        id,
        pid: created.pid,
        bundle,
        io: { ...options.io },
        invocation,
        address,
        link,
        deleteTask: () => this.delete(namespace, id),
      });
      this.watch(task);
      return task;
    } catch (err) {
      logger.warn({ err }, 'task create failed; cleaning up its shim and bundle');
      if (!link && address) {
        // The shim started but we never reached it (a starved event loop, say): its
        // `delete` would not stop the shim process, a Shutdown does.
        link = await this.connect(address, namespace, SHIM_CONNECT_TIMEOUT_MS).catch(() => undefined);
      }
      if (link) {
        await link.client.shutdown({ id, now: true }, { timeoutMs: 2_000 }).catch(() => undefined);
        link.connection.close();
      }
      if (started) {
        await deleteShim(invocation).catch((cleanupErr: unknown) =>
          logger.debug({ err: cleanupErr }, 'shim delete after a failed create'),
        );
      }
      log?.close();
      await bundle.remove().catch((cleanupErr: unknown) => logger.warn({ err: cleanupErr }, 'removing bundle'));
      throw err;
    }
  }

  private async connect(address: string, namespace: string, timeoutMs: number, log?: ShimLog): Promise<ShimLink> {
    const connection = await TtrpcConnection.connect(address, { timeoutMs });
    const client = connection.client(shimTaskV2.TaskDefinition, {
      metadata: { [SHIM_NAMESPACE_METADATA_KEY]: namespace },
    });
    return { connection, client, log };
  }

  /** Cleans up after the shim if its connection closes while berth did not close it. */
  private watch(task: ShimTask): void {
    void task.lost().then((unexpected) => {
      if (!unexpected || this.closing) return;
      const cleanup = this.cleanUpDeadShim(task).finally(() => this.deathCleanups.delete(cleanup));
      this.deathCleanups.add(cleanup);
    });
  }

  /**
   * A shim died: its `delete` kills what is left of the container and
   * unmounts the rootfs; the task stays, STOPPED, until it is deleted.
   */
  private async cleanUpDeadShim(task: ShimTask): Promise<void> {
    const logger = this.taskLogger(task.namespace, task.id);
    logger.warn('shim disconnected; cleaning up after it');
    let exit: DeletedProcess;
    try {
      exit = await deleteShim(task.invocation);
    } catch (err) {
      logger.warn({ err }, 'shim delete after the shim died failed');
      exit = { pid: task.pid, exitStatus: UNKNOWN_EXIT_STATUS, exitedAt: new Date() };
    }
    if (!exit.pid) exit = { ...exit, pid: task.pid };
    const reported = task.exitReported;
    if (reported) exit = reported;
    await task.bundle.unmountLeftovers().catch((err: unknown) => logger.warn({ err }, 'unmounting the bundle'));
    await removeDeadSocket(task.address).catch((err: unknown) => logger.debug({ err }, 'removing the shim socket'));
    await task.bundle.writeExit(exit).catch((err: unknown) => logger.warn({ err }, 'recording the exit'));
    task.markDead(exit);
    if (!reported) await this.publishExit(task, exit);
  }

  private async publishExit(task: ShimTask, exit: DeletedProcess): Promise<void> {
    const event = packAny(containerdEvents.TaskExit, {
      containerId: task.id,
      id: task.id,
      pid: exit.pid,
      exitStatus: exit.exitStatus,
      exitedAt: exit.exitedAt,
    });
    await this.options.exchange.publish(task.namespace, TaskTopics.exit, event).catch((err: unknown) =>
      this.options.logger.warn({ err }, 'publishing /tasks/exit'),
    );
  }

  private async publishDelete(task: ShimTask, exit: DeletedProcess): Promise<void> {
    const event = packAny(containerdEvents.TaskDelete, {
      containerId: task.id,
      id: task.id,
      pid: exit.pid,
      exitStatus: exit.exitStatus,
      exitedAt: exit.exitedAt,
    });
    await this.options.exchange.publish(task.namespace, TaskTopics.delete, event).catch((err: unknown) =>
      this.options.logger.warn({ err }, 'publishing /tasks/delete'),
    );
  }

  private async deleteTask(task: ShimTask): Promise<DeletedProcess> {
    const key = taskKey(task.namespace, task.id);
    // Asking for the state first also waits out the cleanup of a shim that is just dying.
    const state = await task.state();
    const dead = task.exitAfterDeath;
    if (dead) {
      await task.bundle.remove();
      this.tasksByKey.delete(key);
      await this.publishDelete(task, dead);
      return dead;
    }
    if (state.status === 'running' || state.status === 'paused' || state.status === 'pausing') {
      throw new FailedPreconditionError(`task ${key} is ${state.status}; it must be stopped before deletion`);
    }
    // The shim publishes /tasks/delete itself.
    const deleted = await task.deleteProcess('');
    await task.shutdownShim();
    await task.bundle.remove();
    this.tasksByKey.delete(key);
    return deleted;
  }

  /** Passes shim events on to the exchange, noting init exits on the way. */
  private async onShimEvent(envelope: EventEnvelope): Promise<void> {
    if (envelope.topic === TaskTopics.exit && typeNameFromUrl(envelope.event.typeUrl) === containerdEvents.TaskExit.$type) {
      try {
        const exit = containerdEvents.TaskExit.decode(envelope.event.value);
        if (exit.id === exit.containerId) {
          this.tasksByKey.get(taskKey(envelope.namespace, exit.containerId))?.noteExit({
            pid: exit.pid,
            exitStatus: exit.exitStatus,
            exitedAt: exit.exitedAt ?? envelope.timestamp,
          });
        }
      } catch {
        // A malformed payload is still forwarded; the exchange does not decode.
      }
    }
    await this.options.exchange.forward(envelope);
  }

  /** Reloads the tasks of every bundle in the state dir (daemon restart). */
  private async recover(): Promise<void> {
    const bundles: Bundle[] = [];
    for (const namespace of await subdirectories(this.options.stateDir)) {
      for (const id of await subdirectories(path.join(this.options.stateDir, namespace))) {
        try {
          bundles.push(Bundle.at({ stateDir: this.options.stateDir, rootDir: this.options.rootDir, namespace, id }));
        } catch {
          // Not a name berth would have created; leave it alone.
        }
      }
    }
    await Promise.all(
      bundles.map((bundle) =>
        this.recoverTask(bundle).catch((err: unknown) =>
          this.taskLogger(bundle.namespace, bundle.id).warn({ err }, 'could not reload task'),
        ),
      ),
    );
  }

  private async recoverTask(bundle: Bundle): Promise<void> {
    const { namespace, id } = bundle;
    const logger = this.taskLogger(namespace, id);
    const shimPath = await bundle.readShimBinaryPath();
    const invocation = this.invocation(bundle, shimPath ?? '');
    const address = await bundle.readAddress();
    const base = {
      namespace,
      id,
      bundle,
      invocation,
      address: address ?? '',
      deleteTask: () => this.delete(namespace, id),
    };

    const recorded = await bundle.readExit();
    if (recorded) {
      this.tasksByKey.set(taskKey(namespace, id), new ShimTask({ ...base, pid: recorded.pid, io: { terminal: false }, exit: recorded }));
      return;
    }

    if (address) {
      const link = await this.connect(address, namespace, RECOVERY_CONNECT_TIMEOUT_MS).catch(() => undefined);
      if (link) {
        try {
          const state = await link.client.state({ id }, { timeoutMs: RECOVERY_STATE_TIMEOUT_MS });
          link.log = ShimLog.open(bundle.logPath, logger);
          const task = new ShimTask({
            ...base,
            pid: state.pid,
            io: {
              stdin: state.stdin || undefined,
              stdout: state.stdout || undefined,
              stderr: state.stderr || undefined,
              terminal: state.terminal,
            },
            link,
          });
          this.tasksByKey.set(taskKey(namespace, id), task);
          this.watch(task);
          logger.info({ pid: state.pid }, 'reconnected to shim');
          return;
        } catch (err) {
          if (isNotFound(err)) {
            // A live shim without the task: the daemon died between the shim's start and Create.
            await link.client.shutdown({ id, now: true }, { timeoutMs: 2_000 }).catch(() => undefined);
            link.connection.close();
            await deleteShim(invocation).catch(() => undefined);
            await bundle.remove();
            return;
          }
          link.connection.close();
          logger.warn({ err }, 'shim answered, but not its task state; treating it as dead');
        }
      }
    }

    if (!shimPath || !address) {
      // The daemon died before the shim was started (or had printed its address): no task was ever created.
      if (shimPath) await deleteShim(invocation).catch(() => undefined);
      await bundle.remove();
      return;
    }

    const task = new ShimTask({ ...base, pid: 0, io: { terminal: false } });
    this.tasksByKey.set(taskKey(namespace, id), task);
    await this.cleanUpDeadShim(task);
  }
}

async function subdirectories(dir: string): Promise<string[]> {
  try {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Removes a dead shim's socket file, unless something still listens on it. */
async function removeDeadSocket(address: string): Promise<void> {
  if (!address) return;
  const socketPath = socketPathOf(address);
  if (!path.isAbsolute(socketPath)) return; // abstract sockets have no file
  const stat = await fs.lstat(socketPath).catch(() => undefined);
  if (!stat?.isSocket()) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection({ path: socketPath });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!live) await fs.rm(socketPath, { force: true });
}
