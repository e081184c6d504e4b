import { promises as fs } from 'fs';
import * as path from 'path';
import { AlreadyExistsError, InternalError, validateIdentifier } from '@berth/core';
import { mkfifo, mountPoints, unmountAll } from '@berth/sys';

/** Where a task's bundle lives: `<state>/<namespace>/<id>`, its work dir `<root>/<namespace>/<id>`. */
export interface BundleLocation {
  stateDir: string;
  rootDir: string;
  namespace: string;
  id: string;
}

/** An exit recorded for a task whose shim died, so it survives a daemon restart. */
export interface RecordedExit {
  pid: number;
  exitStatus: number;
  exitedAt: Date;
}

const DIR_MODE = 0o711;

/** Checks a namespace and a task id against containerd's identifier rules (InvalidArgument). */
export function validateTaskName(namespace: string, id: string): void {
  validateIdentifier('namespace', namespace);
  validateIdentifier('task id', id);
}

/**
 * A task's OCI bundle as containerd lays it out for a v2 shim: config.json,
 * an empty rootfs/ the shim mounts on, `work` → the persistent work dir, the
 * `log` FIFO the shim writes to, `address` and `shim-binary-path`. berth adds
 * `exit.json` once a dead shim has been cleaned up.
 */
export class Bundle {
  readonly namespace: string;
  readonly id: string;
  /** The bundle directory, `<state>/<namespace>/<id>`. */
  readonly path: string;
  /** The persistent work directory the `work` symlink points at. */
  readonly workDir: string;

  private constructor(location: BundleLocation) {
    validateTaskName(location.namespace, location.id);
    this.namespace = location.namespace;
    this.id = location.id;
    this.path = path.join(location.stateDir, location.namespace, location.id);
    this.workDir = path.join(location.rootDir, location.namespace, location.id);
  }

  /** The bundle of an existing task (recovery); nothing is checked on disk. */
  static at(location: BundleLocation): Bundle {
    return new Bundle(location);
  }

  /**
   * Creates the bundle. AlreadyExists when the directory is there already (a
   * task of that id exists, or an old one was not cleaned up).
   */
  static async create(location: BundleLocation, spec: Record<string, unknown>, shimPath: string): Promise<Bundle> {
    const bundle = new Bundle(location);
    await fs.mkdir(path.dirname(bundle.path), { recursive: true, mode: DIR_MODE });
    try {
      await fs.mkdir(bundle.path, { mode: DIR_MODE });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new AlreadyExistsError(`task ${bundle.namespace}/${bundle.id}: bundle ${bundle.path} already exists`);
      }
      throw err;
    }
    try {
      await fs.writeFile(bundle.configPath, JSON.stringify(spec));
      await fs.mkdir(bundle.rootfsPath, { mode: DIR_MODE });
      await fs.mkdir(bundle.workDir, { recursive: true, mode: DIR_MODE });
      await fs.symlink(bundle.workDir, path.join(bundle.path, 'work'));
      mkfifo(bundle.logPath, 0o700);
      // Written before the shim starts, so recovery can always run its `delete`.
      await fs.writeFile(bundle.shimBinaryPathFile, shimPath);
    } catch (err) {
      await bundle.remove().catch(() => undefined);
      throw err;
    }
    return bundle;
  }

  get configPath(): string {
    return path.join(this.path, 'config.json');
  }
  get rootfsPath(): string {
    return path.join(this.path, 'rootfs');
  }
  get logPath(): string {
    return path.join(this.path, 'log');
  }
  private get addressFile(): string {
    return path.join(this.path, 'address');
  }
  private get shimBinaryPathFile(): string {
    return path.join(this.path, 'shim-binary-path');
  }
  private get exitFile(): string {
    return path.join(this.path, 'exit.json');
  }

  /** The shim's ttrpc address, once it has started. */
  readAddress(): Promise<string | undefined> {
    return readOptional(this.addressFile);
  }

  writeAddress(address: string): Promise<void> {
    return writeAtomic(this.addressFile, address);
  }

  readShimBinaryPath(): Promise<string | undefined> {
    return readOptional(this.shimBinaryPathFile);
  }

  async readExit(): Promise<RecordedExit | undefined> {
    const text = await readOptional(this.exitFile);
    if (text === undefined) return undefined;
    try {
      const parsed = JSON.parse(text) as { pid: number; exitStatus: number; exitedAt: string };
      return { pid: parsed.pid, exitStatus: parsed.exitStatus, exitedAt: new Date(parsed.exitedAt) };
    } catch {
      return undefined;
    }
  }

  writeExit(exit: RecordedExit): Promise<void> {
    return writeAtomic(
      this.exitFile,
      JSON.stringify({ pid: exit.pid, exitStatus: exit.exitStatus, exitedAt: exit.exitedAt.toISOString() }),
    );
  }

  /** Mount points at or below the bundle, deepest first. */
  mountsUnder(): string[] {
    const prefix = this.path + path.sep;
    return mountPoints()
      .filter((p) => p === this.path || p.startsWith(prefix))
      .sort((a, b) => b.length - a.length);
  }

  /** Unmounts whatever is still mounted in the bundle (a shim that died before unmounting its rootfs). */
  async unmountLeftovers(): Promise<void> {
    for (const point of this.mountsUnder()) {
      try {
        await unmountAll(point);
      } catch {
        await unmountAll(point, { detach: true });
      }
    }
  }

  /**
   * Removes the bundle and the work dir. Refuses while anything is mounted
   * below the bundle: a recursive delete would walk into the container's
   * rootfs source.
   */
  async remove(): Promise<void> {
    await this.unmountLeftovers();
    const left = this.mountsUnder();
    if (left.length > 0) {
      throw new InternalError(`bundle ${this.path}: still mounted at ${left.join(', ')}; not removing it`);
    }
    await fs.rm(this.path, { recursive: true, force: true });
    await fs.rm(this.workDir, { recursive: true, force: true });
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeAtomic(file: string, content: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(temp, content);
  await fs.rename(temp, file);
}
