import { constants, promises as fs } from 'fs';
import * as path from 'path';
import { AnyMessage, InvalidArgumentError, NotFoundError } from '@berth/core';
import { isAnyOf, packAny, runcOptionsV1, unpackAny } from '@berth/proto';
import type { RuntimeEntry } from './config';

/** What a runtime name resolves to. */
export interface ResolvedRuntime {
  /** The runtime name the task was created with (the default filled in). */
  name: string;
  /** Absolute path of the v2 shim binary. */
  shimPath: string;
  /** OCI runtime binary the configuration names for this runtime, if any. */
  binaryName?: string;
}

export interface RuntimeResolverOptions {
  defaultRuntime: string;
  runtimes: Readonly<Record<string, RuntimeEntry>>;
  /** The search path for shim binaries; default `process.env.PATH`. */
  searchPath?: string;
}

/**
 * The shim binary name for a runtime name, as containerd derives it: the last
 * two dot-separated parts, `io.containerd.runc.v2` → `containerd-shim-runc-v2`.
 */
export function shimBinaryName(runtime: string): string {
  const parts = runtime.split('.');
  const [name, version] = parts.slice(-2);
  if (parts.length < 2 || !name || !version || /[\s/]/.test(runtime)) {
    throw new InvalidArgumentError(
      `runtime ${JSON.stringify(runtime)}: expected a name like io.containerd.runc.v2 or an absolute path to a shim binary`,
    );
  }
  return `containerd-shim-${name}-${version}`;
}

/** Turns runtime names into shim binaries: the `runtimes` table, absolute paths, then PATH. */
export class RuntimeResolver {
  constructor(private readonly options: RuntimeResolverOptions) {}

  async resolve(requested: string | undefined): Promise<ResolvedRuntime> {
    const name = requested || this.options.defaultRuntime;
    const entry = Object.prototype.hasOwnProperty.call(this.options.runtimes, name)
      ? this.options.runtimes[name]
      : undefined;
    if (entry?.shim) {
      await requireExecutable(entry.shim, `runtime ${name}: configured shim`);
      return { name, shimPath: entry.shim, binaryName: entry.binary_name };
    }
    if (path.isAbsolute(name)) {
      await requireExecutable(name, 'runtime shim');
      return { name, shimPath: path.normalize(name), binaryName: entry?.binary_name };
    }
    if (name.includes('/')) {
      throw new InvalidArgumentError(`runtime ${JSON.stringify(name)}: a shim path must be absolute`);
    }
    const binary = shimBinaryName(name);
    const found = await searchPath(binary, this.options.searchPath ?? process.env.PATH ?? '');
    if (!found) {
      throw new NotFoundError(`runtime ${name}: shim binary ${binary} not found in PATH`);
    }
    return { name, shimPath: found, binaryName: entry?.binary_name };
  }
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) return false;
    await fs.access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function requireExecutable(file: string, what: string): Promise<void> {
  if (!(await isExecutableFile(file))) {
    throw new NotFoundError(`${what} ${file}: no such executable file`);
  }
}

async function searchPath(binary: string, searchPath: string): Promise<string | undefined> {
  for (const dir of searchPath.split(':')) {
    // Relative PATH entries would depend on the daemon's cwd; containerd's LookPath skips them too since Go 1.19.
    if (!dir || !path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, binary);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The runtime options with a configured OCI runtime binary filled in: a new
 * `containerd.runc.v1.Options` when there are none, `binary_name` set when runc
 * options leave it empty; other option types are left alone.
 */
export function withBinaryName(options: AnyMessage | undefined, binaryName: string | undefined): AnyMessage | undefined {
  if (!binaryName) return options;
  if (!options) return packAny(runcOptionsV1.Options, runcOptionsV1.Options.fromPartial({ binaryName }));
  const any = { typeUrl: options.typeUrl, value: Buffer.from(options.value) };
  if (!isAnyOf(any, runcOptionsV1.Options)) return options;
  const decoded = unpackAny(any, runcOptionsV1.Options);
  if (decoded.binaryName) return options;
  return packAny(runcOptionsV1.Options, { ...decoded, binaryName });
}
