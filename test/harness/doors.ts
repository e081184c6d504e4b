import * as fs from 'fs';
import * as path from 'path';
import { type Berth, connect, createBerth, type CreateBerthOptions } from '@berth/core';
import { type BerthdHandle, makeTempDir, removeDir, startBerthd } from './daemon';

/**
 * One way into berth: the in-process facade or the gRPC one to a berthd.
 * Facade suites run once per door, since both must behave the same.
 */
export interface Door {
  readonly name: string;
  open(): Promise<Berth>;
  /** Where the door keeps its root and state (mounts and leftovers live under it). */
  dir(): string;
  /** Closes the facade, stops what the door started and removes its dir. */
  close(): Promise<void>;
}

export interface InProcessDoorOptions {
  /** Test-name title of the door (default 'createBerth (in-process)'). */
  name?: string;
  /**
   * Which createBerth loads the plugins: @berth/core's (the default, core
   * plugins only) or one with more, such as @berth/builtins'. Passed in so the
   * harness does not load the built-in plugins for suites that do not need them.
   */
  createBerth?: (options: CreateBerthOptions) => Promise<Berth>;
  /** Prefix of the temp dir holding root and state. */
  tempPrefix?: string;
  /** TOML config, as berthd would read it (e.g. to run GC only when asked). */
  config?: string;
}

export interface RemoteDoorOptions {
  /** TOML config for berthd. */
  config?: string;
}

export const IN_PROCESS_DOOR_NAME = 'createBerth (in-process)';
export const REMOTE_DOOR_NAME = 'connect (gRPC to berthd)';

/** berth in this process, on a temp dir made now. */
export function inProcessDoor(options: InProcessDoorOptions = {}): Door {
  const create = options.createBerth ?? createBerth;
  const dir = makeTempDir(options.tempPrefix);
  let berth: Berth | undefined;
  return {
    name: options.name ?? IN_PROCESS_DOOR_NAME,
    async open() {
      let config: string | undefined;
      if (options.config !== undefined) {
        config = path.join(dir, 'config.toml');
        fs.writeFileSync(config, options.config);
      }
      berth = await create({ root: path.join(dir, 'root'), state: path.join(dir, 'state'), config });
      return berth;
    },
    dir: () => dir,
    async close() {
      await berth?.close();
      removeDir(dir);
    },
  };
}

/** A berthd started on open, reached over gRPC. */
export function remoteDoor(options: RemoteDoorOptions = {}): Door {
  let daemon: BerthdHandle | undefined;
  let berth: Berth | undefined;
  return {
    name: REMOTE_DOOR_NAME,
    async open() {
      daemon = await startBerthd({ config: options.config });
      berth = await connect(daemon.address);
      return berth;
    },
    // Before open there is no daemon and so nothing under it.
    dir: () => daemon?.dir ?? '/nonexistent',
    async close() {
      await berth?.close();
      await daemon?.stop();
      if (daemon) removeDir(daemon.dir);
    },
  };
}

/**
 * The two doors as `[name, makeDoor]` rows for `describe.each`; each door is
 * made when called, so a suite makes (and cleans up) its own.
 */
export function bothDoors(
  options: { inProcess?: InProcessDoorOptions; remote?: RemoteDoorOptions } = {},
): [string, () => Door][] {
  return [
    [options.inProcess?.name ?? IN_PROCESS_DOOR_NAME, () => inProcessDoor(options.inProcess)],
    [REMOTE_DOOR_NAME, () => remoteDoor(options.remote)],
  ];
}
