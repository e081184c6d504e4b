import type { Readable, Writable } from 'stream';
import {
  type AnyMessage,
  type Berth,
  type Container,
  DEFAULT_SNAPSHOTTER,
  type Descriptor,
  type ExitStatus,
  FailedPreconditionError,
  hostPlatform,
  type Image,
  InvalidArgumentError,
  isIndexType,
  isManifestType,
  isNotFound,
  type Labels,
  type Mount,
  NotFoundError,
  OCI_SPEC_TYPE_URL,
  parsePlatform,
  type Platform,
  platformMatches,
  type PullOptions,
  validateIdentifier,
} from '@berth/core';
import {
  execProcessSpec,
  generateSpec,
  imageConfigLabels,
  type GenerateSpecOptions,
  type ImageRuntimeConfig,
  type RuntimeSpec,
} from '@berth/oci';
import { createProcessIO, openProcessIO, type ProcessIOHandle, removeProcessIO } from '@berth/sys';
import { chainIDs } from '@berth/transfer';

/** The runtime containers get unless told otherwise (containerd's default). */
export const DEFAULT_RUNTIME = 'io.containerd.runc.v2';

const SIGKILL = 9;

/** How long output may trail the exit before the FIFOs are closed anyway. */
const OUTPUT_GRACE_MS = 5_000;

/** How long the lease that guards a new container's snapshot lives if we die before deleting it. */
const SETUP_LEASE_TTL_MS = 10 * 60 * 1000;

/** Spec options newContainer passes to @berth/oci's generateSpec (the image and rootfs come from the image). */
export type ContainerSpecOptions = Omit<
  GenerateSpecOptions,
  'namespace' | 'id' | 'imageConfig' | 'rootfs' | 'rootfsMounts' | 'rootfsMountOptions'
>;

export interface NewContainerOptions extends ContainerSpecOptions {
  id: string;
  /** Image reference; pulled (and unpacked) when missing. */
  image: string;
  /** Default DEFAULT_SNAPSHOTTER (`overlayfs`), as ctr's. */
  snapshotter?: string;
  /** Runtime name or absolute shim path; default DEFAULT_RUNTIME. */
  runtime?: string;
  /** e.g. `containerd.runc.v1.Options` packed in an Any. */
  runtimeOptions?: AnyMessage;
  labels?: Labels;
  /** `os/arch[/variant]` of the image to run; default the host's. */
  platform?: string;
  /** Registry options etc. for the pull of a missing image. */
  pull?: Omit<PullOptions, 'unpack' | 'snapshotter' | 'platforms'>;
}

/** Where a task's stdio goes, and how it runs. */
export interface TaskStdioOptions {
  /** Piped to the process's stdin; its end closes the process's stdin. */
  stdin?: Readable;
  /** Receives the process's output (not ended by us). Without it the output is read and dropped. */
  stdout?: Writable;
  /** Receives stderr (not used with a terminal, which merges it into stdout). */
  stderr?: Writable;
  /**
   * Start the task and return without waiting. Its FIFOs stay for a later
   * attach; removeContainer / deleteTask remove them.
   */
  detach?: boolean;
  /** Parent dir of the FIFO set (default: createProcessIO's). */
  fifoDir?: string;
  /** Called between create and start: the moment to size a terminal, so the process starts with it. */
  onCreated?: (pid: number) => void | Promise<void>;
  /** Called once the task runs: forward signals, follow window size changes. */
  onStarted?: (pid: number) => void | Promise<void>;
}

export interface RunContainerOptions extends NewContainerOptions, TaskStdioOptions {
  /** Delete the container and its snapshot after the task exits (the task itself is always deleted). */
  rm?: boolean;
}

export interface RunResult {
  pid: number;
  /** The exit status (128+signal when signalled); undefined when detached. */
  exitStatus?: number;
  exitedAt?: Date;
}

export interface ExecInContainerOptions {
  /** Container id. */
  id: string;
  execId: string;
  args: string[];
  env?: string[];
  cwd?: string;
  /** A name (looked up in the running container's /etc/passwd), `uid`, `uid:gid`... */
  user?: string;
  terminal?: boolean;
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  fifoDir?: string;
  /** Called after the exec is added, before it starts (size its terminal here). */
  onCreated?: () => void | Promise<void>;
  onStarted?: (pid: number) => void | Promise<void>;
}

async function readJson(berth: Berth, digest: string): Promise<Record<string, unknown>> {
  const stream = await berth.content.read(digest);
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
}

/** The manifest of `target` for `platform`: the target itself, or an index's first match. */
async function platformManifest(berth: Berth, target: Descriptor, platform: Platform): Promise<Descriptor> {
  if (isManifestType(target.mediaType)) return target;
  if (!isIndexType(target.mediaType)) throw new InvalidArgumentError(`${target.digest}: ${target.mediaType} is not an image`);
  const index = await readJson(berth, target.digest);
  for (const child of (index.manifests as Descriptor[] | undefined) ?? []) {
    if (child.platform && !platformMatches(platform, child.platform)) continue;
    if (isManifestType(child.mediaType)) return child;
    if (isIndexType(child.mediaType) && !child.platform) return platformManifest(berth, child, platform);
  }
  const shown = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
  throw new NotFoundError(`no manifest for platform ${shown} in ${target.digest}`);
}

export interface ImageRuntimeInfo {
  /** The config's `config` section. */
  config: ImageRuntimeConfig;
  /** Name of the snapshot holding the unpacked image: the chain ID of its layers. */
  chainID: string;
}

/** What running `image` needs: its runtime config and the chain ID of its layers. */
export async function imageRuntimeInfo(berth: Berth, image: Image, platform?: string): Promise<ImageRuntimeInfo> {
  const manifest = await platformManifest(berth, image.target, platform ? parsePlatform(platform) : hostPlatform());
  const doc = await readJson(berth, manifest.digest);
  const configDesc = doc.config as Descriptor | undefined;
  if (!configDesc) throw new InvalidArgumentError(`manifest ${manifest.digest} of ${image.name} has no config`);
  const configDoc = await readJson(berth, configDesc.digest);
  const diffIDs = (configDoc.rootfs as { diff_ids?: string[] } | undefined)?.diff_ids ?? [];
  if (diffIDs.length === 0) throw new InvalidArgumentError(`image ${image.name} has no layers to run`);
  const ids = chainIDs(diffIDs);
  return { config: (configDoc.config as ImageRuntimeConfig | undefined) ?? {}, chainID: ids[ids.length - 1] };
}

/** The image, pulled when missing and re-pulled (unpacking) when its snapshot is not in `snapshotter`. */
async function ensureImage(berth: Berth, options: NewContainerOptions, snapshotter: string): Promise<{ image: Image; info: ImageRuntimeInfo }> {
  const pull = (ref: string) =>
    berth.images.pull(ref, {
      ...options.pull,
      unpack: true,
      snapshotter,
      platforms: options.platform ? [options.platform] : undefined,
    });
  let image: Image;
  try {
    image = await berth.images.get(options.image);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    image = await pull(options.image);
  }
  let info = await imageRuntimeInfo(berth, image, options.platform);
  try {
    await berth.snapshots(snapshotter).stat(info.chainID);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    image = await pull(image.name);
    info = await imageRuntimeInfo(berth, image, options.platform);
  }
  return { image, info };
}

/**
 * Makes a container from an image as `ctr run` does before its task: pulls
 * the image when missing, prepares snapshot `id` on the image's unpacked
 * layers, generates the OCI spec (user names looked up in the image) and
 * records the container. Whatever it made is removed again if a step fails.
 */
export async function newContainer(berth: Berth, options: NewContainerOptions): Promise<Container> {
  // Before anything is pulled or prepared: a bad id must not leave a snapshot behind.
  validateIdentifier('container id', options.id);
  const snapshotter = options.snapshotter || DEFAULT_SNAPSHOTTER;
  const { image, info } = await ensureImage(berth, options, snapshotter);

  // The lease keeps the new snapshot from the collector until the container references it.
  const lease = await berth.leases.create({ expiresAt: new Date(Date.now() + SETUP_LEASE_TTL_MS) });
  const snapshots = berth.withLease(lease.id).snapshots(snapshotter);
  let snapshotMade = false;
  try {
    // Writable even for a read-only rootfs: runc makes mount points (/proc, /dev...)
    // in it before remounting it read-only, and an image need not have them.
    const mounts: Mount[] = await snapshots.prepare(options.id, info.chainID);
    snapshotMade = true;

    const {
      id,
      image: _image,
      snapshotter: _snapshotter,
      runtime,
      runtimeOptions,
      labels,
      platform: _platform,
      pull: _pull,
      ...specOptions
    } = options;
    const spec = await generateSpec({
      ...specOptions,
      namespace: berth.namespace,
      id,
      imageConfig: info.config,
      rootfsMounts: mounts,
    });
    const container = await berth.containers.create({
      id,
      image: image.name,
      labels: { ...imageConfigLabels(info.config), ...labels },
      runtime: { name: runtime || DEFAULT_RUNTIME, options: runtimeOptions },
      spec: { typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) },
      snapshotter,
      snapshotKey: id,
    });
    snapshotMade = false;
    return container;
  } finally {
    if (snapshotMade) await berth.snapshots(snapshotter).remove(options.id).catch(() => undefined);
    await berth.leases.delete(lease.id).catch(() => undefined);
  }
}

/** The container's OCI spec, parsed. */
export function containerSpec(container: Container): RuntimeSpec {
  if (!container.spec) throw new FailedPreconditionError(`container ${container.id} has no spec`);
  if (container.spec.typeUrl !== OCI_SPEC_TYPE_URL) {
    throw new InvalidArgumentError(`container ${container.id}: spec is ${container.spec.typeUrl}, not an OCI runtime spec`);
  }
  return JSON.parse(Buffer.from(container.spec.value).toString('utf8')) as RuntimeSpec;
}

/** Waits for `from` to end while copying it to `to` (which stays open); drains it without one. */
function copyOutput(from: Readable | undefined, to: Writable | undefined): Promise<void> {
  if (!from) return Promise.resolve();
  return new Promise((resolve) => {
    from.once('end', resolve);
    from.once('close', resolve);
    from.once('error', () => resolve());
    if (to) from.pipe(to, { end: false });
    else from.resume();
  });
}

/**
 * Copies `from` into the process's stdin FIFO; when it ends, closes the
 * process's stdin through the task API (the shim holds the FIFO open itself).
 * Returns a function that stops the copy.
 */
function copyInput(from: Readable | undefined, handle: ProcessIOHandle, closeIO: () => Promise<void>): () => void {
  const fifo = handle.stdin;
  if (!from || !fifo) return () => undefined;
  fifo.on('error', () => undefined);
  fifo.once('finish', () => void closeIO().catch(() => undefined));
  from.pipe(fifo);
  return () => from.unpipe(fifo);
}

/** Resolves after `ms` or when `work` settles, whichever is first. */
async function atMost(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

interface AttachedProcess {
  handle: ProcessIOHandle;
  stopInput: () => void;
  outputs: Promise<void>;
}

function attach(
  handle: ProcessIOHandle,
  streams: { stdin?: Readable; stdout?: Writable; stderr?: Writable },
  closeIO: () => Promise<void>,
): AttachedProcess {
  const outputs = Promise.all([copyOutput(handle.stdout, streams.stdout), copyOutput(handle.stderr, streams.stderr)]);
  const stopInput = copyInput(streams.stdin, handle, closeIO);
  return { handle, stopInput, outputs: outputs.then(() => undefined) };
}

/** Waits for the output to drain, then stops the input and closes (or keeps) the FIFOs. */
async function detachStreams(attached: AttachedProcess): Promise<void> {
  await atMost(attached.outputs, OUTPUT_GRACE_MS);
  attached.stopInput();
  await attached.handle.close();
}

/**
 * Creates and starts the task of an existing container like `ctr tasks
 * start`: FIFO stdio piped to the given streams (a terminal when the spec's
 * process has one), then waits for the exit and deletes the task. Detached,
 * it returns once the task runs and leaves the task and its FIFOs in place.
 */
export async function runTask(berth: Berth, id: string, options: TaskStdioOptions = {}): Promise<RunResult> {
  const { stdin, stdout, stderr, detach, fifoDir, onCreated, onStarted } = options;
  const terminal = containerSpec(await berth.containers.get(id)).process?.terminal ?? false;
  // Output FIFOs always: the runc shim wants both once any stdio is set, and a
  // detached task needs them for a later attach. What nobody takes is drained.
  const handle = await createProcessIO({ id, stdin: stdin !== undefined, stdout: true, stderr: !terminal, terminal, dir: fifoDir });
  let attached: AttachedProcess | undefined;
  let taskCreated = false;
  let leftRunning = false;
  try {
    const { pid } = await berth.tasks.create(id, { io: handle.io });
    taskCreated = true;
    await onCreated?.(pid);
    if (detach) {
      await berth.tasks.start(id);
      leftRunning = true;
      await handle.release();
      await onStarted?.(pid);
      return { pid };
    }
    attached = attach(handle, { stdin, stdout, stderr }, () => berth.tasks.closeIO(id));
    // Asked before start so that an instant exit is not missed.
    const exited = berth.tasks.wait(id);
    exited.catch(() => undefined);
    await berth.tasks.start(id);
    await onStarted?.(pid);
    const status = await exited;
    await detachStreams(attached);
    await berth.tasks.delete(id);
    taskCreated = false;
    return { pid, exitStatus: status.exitStatus, exitedAt: status.exitedAt };
  } finally {
    attached?.stopInput();
    if (!leftRunning) {
      if (taskCreated) await deleteTask(berth, id, { force: true }).catch(() => undefined);
      await handle.close();
    }
  }
}

/**
 * Runs a container like `ctr run`: newContainer, then runTask. With `rm` the
 * container and its snapshot are removed after the exit, also when
 * something fails.
 */
export async function runContainer(berth: Berth, options: RunContainerOptions): Promise<RunResult> {
  const { rm, stdin, stdout, stderr, detach, fifoDir, onCreated, onStarted, ...containerOptions } = options;
  if (rm && detach) throw new InvalidArgumentError('a detached container cannot be removed on exit: use rm or detach, not both');
  const container = await newContainer(berth, containerOptions);
  try {
    return await runTask(berth, container.id, { stdin, stdout, stderr, detach, fifoDir, onCreated, onStarted });
  } finally {
    if (rm) await removeContainer(berth, container.id, { force: true }).catch(() => undefined);
  }
}

/**
 * Attaches the streams to a running task's FIFOs (as `ctr tasks attach`)
 * and resolves with its exit status; the task stays for `tasks rm`.
 */
export async function attachTask(
  berth: Berth,
  id: string,
  streams: Pick<TaskStdioOptions, 'stdin' | 'stdout' | 'stderr'> & { execId?: string },
): Promise<ExitStatus> {
  const state = await berth.tasks.get(id, streams.execId);
  // Gone already: its shim closed the FIFOs, and what they held went with them.
  if (state.status === 'stopped') return { exitStatus: state.exitStatus, exitedAt: state.exitedAt ?? new Date() };
  const exited = berth.tasks.wait(id, streams.execId);
  exited.catch(() => undefined);
  const handle = openProcessIO(state);
  const attached = attach(handle, streams, () => berth.tasks.closeIO(id, streams.execId));
  try {
    const status = await exited;
    await detachStreams(attached);
    return status;
  } finally {
    attached.stopInput();
    await handle.close();
  }
}

/**
 * Deletes a container's task and removes the FIFOs berth made for it (those
 * of a detached run). FailedPrecondition while it runs, unless `force`,
 * which kills it first. NotFound when there is no task.
 */
export async function deleteTask(berth: Berth, id: string, options: { force?: boolean } = {}): Promise<ExitStatus & { pid: number }> {
  const state = await berth.tasks.get(id);
  // A created task was never started: the shim's delete stops it, as containerd's does.
  if (state.status !== 'stopped' && state.status !== 'created') {
    if (!options.force) throw new FailedPreconditionError(`task ${id} is ${state.status}: stop it first or force the removal`);
    const exited = berth.tasks.wait(id);
    exited.catch(() => undefined);
    await berth.tasks.kill(id, SIGKILL, { all: true });
    // A frozen cgroup holds the kill back until it thaws.
    if (state.status === 'paused' || state.status === 'pausing') await berth.tasks.resume(id).catch(() => undefined);
    await atMost(exited, 10_000);
  }
  const deleted = await berth.tasks.delete(id);
  await removeProcessIO(state);
  return deleted;
}

/**
 * Removes a container the way `ctr containers rm` with snapshot cleanup does:
 * its stopped task (any task with `force`), the container, then its snapshot.
 */
export async function removeContainer(berth: Berth, id: string, options: { force?: boolean } = {}): Promise<void> {
  const container = await berth.containers.get(id);
  try {
    await deleteTask(berth, id, options);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await berth.containers.delete(id);
  if (container.snapshotKey) {
    try {
      await berth.snapshots(container.snapshotter).remove(container.snapshotKey);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

/**
 * Runs an extra process in a running container like `ctr tasks exec`: the
 * container's process spec with `args` (and env, cwd, user, terminal)
 * replaced, FIFO stdio piped to the streams; waits, deletes the exec and
 * returns its exit status.
 */
export async function execInContainer(berth: Berth, options: ExecInContainerOptions): Promise<ExitStatus & { pid: number }> {
  const container = await berth.containers.get(options.id);
  const terminal = options.terminal ?? false;
  let rootfs: string | undefined;
  if (options.user !== undefined) {
    // Names resolve in the running container's own root, as it sees it now.
    const task = await berth.tasks.get(options.id);
    rootfs = `/proc/${task.pid}/root`;
  }
  const processSpec = await execProcessSpec(containerSpec(container), {
    args: options.args,
    env: options.env,
    cwd: options.cwd,
    user: options.user,
    terminal,
    rootfs,
  });
  const handle = await createProcessIO({
    id: options.execId,
    stdin: options.stdin !== undefined,
    stdout: true,
    stderr: !terminal,
    terminal,
    dir: options.fifoDir,
  });
  let added = false;
  let attached: AttachedProcess | undefined;
  try {
    await berth.tasks.exec(options.id, options.execId, processSpec, handle.io);
    added = true;
    await options.onCreated?.();
    attached = attach(handle, options, () => berth.tasks.closeIO(options.id, options.execId));
    const exited = berth.tasks.wait(options.id, options.execId);
    exited.catch(() => undefined);
    const pid = await berth.tasks.start(options.id, options.execId);
    await options.onStarted?.(pid);
    const status = await exited;
    await detachStreams(attached);
    await berth.tasks.deleteProcess(options.id, options.execId);
    added = false;
    return { pid, exitStatus: status.exitStatus, exitedAt: status.exitedAt };
  } finally {
    attached?.stopInput();
    if (added) {
      const exited = berth.tasks.wait(options.id, options.execId);
      exited.catch(() => undefined);
      await berth.tasks.kill(options.id, SIGKILL, { execId: options.execId }).catch(() => undefined);
      await atMost(exited, 10_000);
      await berth.tasks.deleteProcess(options.id, options.execId).catch(() => undefined);
    }
    await handle.close();
  }
}
