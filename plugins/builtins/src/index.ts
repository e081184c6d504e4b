/**
 * berth with batteries: the built-in plugins in one explicit list, and
 * `createBerth` that loads them in-process. `@berth/core` stays free of
 * implementations; this package picks them, as containerd's builtins do.
 */
import {
  Berth,
  connect,
  coreContentPlugins,
  corePlugins,
  createBerth as createCoreBerth,
  CreateBerthOptions,
  PluginRegistration,
  snapshotsServicePlugin,
  containersServicePlugin,
  tasksServicePlugin,
} from '@berth/core';
import { runtimeV2Plugin } from '@berth/runtime-v2';
import { contentPlugin } from '@berth/content-local';
import { transferServicePlugin } from '@berth/transfer';
import { overlayfsSnapshotterPlugin } from '@berth/snapshotter-overlayfs';
import { nativeSnapshotterPlugin } from '@berth/snapshotter-native';
import { walkingDifferPlugin } from '@berth/differ';

/** Built-in plugins beyond the core ones (the core adds those itself). */
export const builtinPlugins: PluginRegistration[] = [
  contentPlugin as PluginRegistration,
  ...coreContentPlugins,
  overlayfsSnapshotterPlugin as PluginRegistration,
  nativeSnapshotterPlugin as PluginRegistration,
  snapshotsServicePlugin as PluginRegistration,
  walkingDifferPlugin as PluginRegistration,
  transferServicePlugin as PluginRegistration,
  containersServicePlugin,
  runtimeV2Plugin,
  tasksServicePlugin,
];

/** Every plugin an embedded berth or berthd loads by default, core included. */
export function defaultPlugins(): PluginRegistration[] {
  return [...corePlugins, ...builtinPlugins];
}

/**
 * berth in-process with every built-in plugin (content, images, leases, GC,
 * pull/push/import/export), plus `options.plugins`.
 */
export function createBerth(options: CreateBerthOptions): Promise<Berth> {
  return createCoreBerth({ ...options, plugins: [...builtinPlugins, ...(options.plugins ?? [])] });
}

export { connect };
export {
  attachTask,
  containerSpec,
  DEFAULT_RUNTIME,
  deleteTask,
  execInContainer,
  imageRuntimeInfo,
  newContainer,
  removeContainer,
  runContainer,
  runTask,
  type ContainerSpecOptions,
  type ExecInContainerOptions,
  type ImageRuntimeInfo,
  type NewContainerOptions,
  type RunContainerOptions,
  type RunResult,
  type TaskStdioOptions,
} from './run';
export type { Berth, CreateBerthOptions };
