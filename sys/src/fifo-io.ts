import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import type { Readable, Writable } from 'stream';
import { InvalidArgumentError, type ProcessIO } from '@berth/core';
import { mkfifo } from './process';

/** Where FIFO sets go by default when this process may write there (root, as ctr's /run/containerd/fifo). */
export const DEFAULT_FIFO_ROOT = '/run/berth/fifo';

/** Prefix of every FIFO set dir, so cleanup removes only dirs this module made. */
const FIFO_DIR_PREFIX = 'berth-fifo-';

export interface CreateProcessIOOptions {
  /** Process name used in the FIFO names (`<id>-stdout`); a container or exec id. */
  id: string;
  stdin?: boolean;
  stdout?: boolean;
  /** Ignored with `terminal`: a console merges stderr into stdout. */
  stderr?: boolean;
  terminal?: boolean;
  /** Parent of the fresh FIFO dir; default DEFAULT_FIFO_ROOT when writable, else the OS temp dir. */
  dir?: string;
}

/**
 * The client ends of a process's stdio FIFOs. `io` is what the task API
 * takes; the streams are ours: write to `stdin`, read `stdout`/`stderr`.
 */
export interface ProcessIOHandle {
  io: ProcessIO;
  /** The dir holding the FIFOs (absent for attached sets we did not make). */
  dir?: string;
  /**
   * End it only after the shim has opened its end (tasks.create / exec have
   * returned): a FIFO's buffered data is dropped once no one holds it open.
   */
  stdin?: Writable;
  /**
   * Ends when the shim closes its write end (the process and its copy are
   * done). Made on first use: it starts reading then, so a detached run that
   * never touches it leaves the output in the FIFO for a later attach.
   */
  stdout?: Readable;
  stderr?: Readable;
  /** Closes our ends and removes the FIFOs and their dir (if we made them). Idempotent. */
  close(): Promise<void>;
  /**
   * Closes our ends but leaves the FIFOs in place, for a detached task whose
   * shim keeps them open; a later `openProcessIO` attaches to them and
   * `removeProcessIO` deletes them after the task is gone. The first of
   * close and release wins; the other then does nothing more.
   */
  release(): Promise<void>;
}

/** The FIFO root to use: DEFAULT_FIFO_ROOT if it can be made and written, else the OS temp dir. */
function defaultFifoRoot(): string {
  try {
    fs.mkdirSync(DEFAULT_FIFO_ROOT, { recursive: true, mode: 0o700 });
    fs.accessSync(DEFAULT_FIFO_ROOT, fs.constants.W_OK | fs.constants.X_OK);
    return DEFAULT_FIFO_ROOT;
  } catch {
    return os.tmpdir();
  }
}

function validateId(id: string): void {
  if (!id || id.includes('/') || id === '.' || id === '..' || id.includes('\0')) {
    throw new InvalidArgumentError(`invalid process id ${JSON.stringify(id)} for FIFO names`);
  }
}

/**
 * Opens the reading end of a FIFO without blocking: O_NONBLOCK succeeds with
 * no writer yet, and the kernel reports neither data nor hangup until a writer
 * has come and gone, so the stream ends only when the shim closes its end.
 */
function openFifoReader(fifo: string): number {
  return fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
}

/**
 * Opens the writing end of a FIFO without blocking: O_RDWR never waits for a
 * reader (O_WRONLY would block, O_WRONLY|O_NONBLOCK fails with ENXIO), and it
 * keeps the pipe alive so what we write before the shim opens its end waits
 * in the pipe buffer.
 */
function openFifoWriter(fifo: string): number {
  return fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
}

/** Closes a socket over a FIFO fd and resolves when the fd is closed. */
function closeSocket(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.on('error', () => undefined);
    socket.destroy();
  });
}

function isFifo(p: string): boolean {
  try {
    return fs.lstatSync(p).isFIFO();
  } catch {
    return false;
  }
}

type StreamName = 'stdin' | 'stdout' | 'stderr';

/**
 * Our ends of a FIFO set. The fds are opened at once (so the shim's opens
 * do not wait); a stream over an fd is made on first use, because a socket
 * starts reading when made, and a detached run that never looks at its
 * output must not swallow what a later attach should see.
 */
class FifoSet implements ProcessIOHandle {
  private readonly fds = new Map<StreamName, number>();
  private readonly sockets = new Map<StreamName, net.Socket>();
  private closing?: Promise<void>;

  constructor(
    readonly io: ProcessIO,
    readonly dir: string | undefined,
  ) {}

  /** Opens our end of every FIFO in `io`; on failure closes what it opened. */
  open(): void {
    try {
      // Readers first: the shim opens stdout/stderr for writing and blocks until a reader exists.
      if (this.io.stdout) this.fds.set('stdout', openFifoReader(this.io.stdout));
      if (this.io.stderr) this.fds.set('stderr', openFifoReader(this.io.stderr));
      if (this.io.stdin) this.fds.set('stdin', openFifoWriter(this.io.stdin));
    } catch (err) {
      for (const fd of this.fds.values()) fs.closeSync(fd);
      this.fds.clear();
      throw err;
    }
  }

  private socket(name: StreamName): net.Socket | undefined {
    const existing = this.sockets.get(name);
    if (existing) return existing;
    const fd = this.fds.get(name);
    if (fd === undefined || this.closing) return undefined;
    // net.Socket watches the fd with epoll instead of parking a libuv pool thread in a blocking read.
    const socket = name === 'stdin' ? new net.Socket({ fd, readable: false, writable: true }) : new net.Socket({ fd, readable: true, writable: false });
    // A FIFO write end that fails must not crash the process; the caller sees the stream end.
    if (name === 'stdin') socket.on('error', () => undefined);
    this.fds.delete(name);
    this.sockets.set(name, socket);
    return socket;
  }

  get stdin(): Writable | undefined {
    return this.socket('stdin');
  }

  get stdout(): Readable | undefined {
    return this.socket('stdout');
  }

  get stderr(): Readable | undefined {
    return this.socket('stderr');
  }

  private async closeEnds(): Promise<void> {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
    await Promise.all([...this.sockets.values()].map(closeSocket));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.closeEnds();
      if (this.dir) await fs.promises.rm(this.dir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  release(): Promise<void> {
    this.closing ??= this.closeEnds();
    return this.closing;
  }
}

/**
 * Makes a fresh 0700 dir with `<id>-stdin`, `<id>-stdout` and `<id>-stderr`
 * FIFOs (the ones asked for) and opens our ends of them, as containerd's cio
 * does for ctr. Nothing is left behind if this throws.
 */
export async function createProcessIO(options: CreateProcessIOOptions): Promise<ProcessIOHandle> {
  validateId(options.id);
  const terminal = options.terminal ?? false;
  const parent = options.dir ?? defaultFifoRoot();
  const dir = await fs.promises.mkdtemp(path.join(parent, FIFO_DIR_PREFIX));
  try {
    await fs.promises.chmod(dir, 0o700);
    const io: ProcessIO = { terminal };
    const make = (name: 'stdin' | 'stdout' | 'stderr'): string => {
      const fifo = path.join(dir, `${options.id}-${name}`);
      mkfifo(fifo, 0o600);
      return fifo;
    };
    if (options.stdin) io.stdin = make('stdin');
    if (options.stdout) io.stdout = make('stdout');
    if (options.stderr && !terminal) io.stderr = make('stderr');
    const set = new FifoSet(io, dir);
    set.open();
    return set;
  } catch (err) {
    await fs.promises.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Attaches to the FIFOs of a running process (paths from the task's state),
 * e.g. one started detached. Only FIFOs that exist are opened; close() leaves
 * them in place.
 */
export function openProcessIO(io: ProcessIO): ProcessIOHandle {
  const existing: ProcessIO = { terminal: io.terminal };
  if (io.stdin && isFifo(io.stdin)) existing.stdin = io.stdin;
  if (io.stdout && isFifo(io.stdout)) existing.stdout = io.stdout;
  if (io.stderr && isFifo(io.stderr)) existing.stderr = io.stderr;
  const set = new FifoSet(existing, undefined);
  set.open();
  return set;
}

/**
 * Removes the FIFOs of a finished process and their dir when it is one
 * createProcessIO made and nothing else is in it. Paths that are not FIFOs
 * (files, `binary://` URIs) are left alone.
 */
export async function removeProcessIO(io: Pick<ProcessIO, 'stdin' | 'stdout' | 'stderr'>): Promise<void> {
  const dirs = new Set<string>();
  for (const p of [io.stdin, io.stdout, io.stderr]) {
    if (!p || !path.isAbsolute(p) || !isFifo(p)) continue;
    await fs.promises.rm(p, { force: true });
    dirs.add(path.dirname(p));
  }
  for (const dir of dirs) {
    if (!path.basename(dir).startsWith(FIFO_DIR_PREFIX)) continue;
    try {
      await fs.promises.rmdir(dir);
    } catch {
      // Not empty: another process's FIFOs share it (an exec), or something not ours.
    }
  }
}
