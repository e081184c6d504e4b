import type { interfaces } from 'inversify';
import type { ZodType, ZodTypeDef } from 'zod';
import type { Logger } from '../log';

/**
 * Plugin types: reverse-DNS with a version. A breaking change to an interface
 * gets a new `.vN` type rather than an edit. Third-party plugins may copy these
 * strings instead of importing them.
 */
export const PluginType = {
  Internal: 'io.berth.internal.v1',
  Metadata: 'io.berth.metadata.v1',
  Event: 'io.berth.event.v1',
  Content: 'io.berth.content.v1',
  Snapshotter: 'io.berth.snapshotter.v1',
  Differ: 'io.berth.differ.v1',
  Lease: 'io.berth.lease.v1',
  GC: 'io.berth.gc.v1',
  Service: 'io.berth.service.v1',
  Transfer: 'io.berth.transfer.v1',
  GRPC: 'io.berth.grpc.v1',
  TTRPC: 'io.berth.ttrpc.v1',
  Runtime: 'io.berth.runtime.v2',
  CRI: 'io.berth.cri.v1',
} as const;

/** Static facts a plugin reports about itself (shown by introspection). */
export interface PluginMeta {
  /** OCI platforms the plugin supports, e.g. `linux/amd64`. */
  platforms: string[];
  /** Key/value facts for clients, e.g. a snapshotter's root. */
  exports: Record<string, string>;
  capabilities: string[];
}

/**
 * A plugin: a plain record, registered once. `requires` names plugin *types*
 * (not ids); `['*']` alone means "after every other plugin".
 */
export interface PluginRegistration<Config = unknown, Instance = unknown> {
  type: string;
  id: string;
  requires?: string[];
  /**
   * Schema of the plugin's `[plugins."<type>.<id>"]` config table. Its defaults
   * (the result of parsing `{}`) are what `berthd config default` prints.
   */
  config?: ZodType<Config, ZodTypeDef, unknown>;
  /** Bindings this plugin contributes to the shared inversify container. */
  module?: interfaces.ContainerModule;
  /** Builds the instance. Throw `PluginSkipError` when the host cannot run it. */
  init(ctx: InitContext<Config>): Instance | Promise<Instance>;
}

/** Everything a plugin gets from the host while it initialises. */
export interface InitContext<Config = unknown> {
  readonly type: string;
  readonly id: string;
  /** `<type>.<id>` */
  readonly uri: string;
  /** `<root>/<uri>`, created before init: persistent data. */
  readonly root: string;
  /** `<state>/<uri>`, created before init: runtime state (tmpfs-like). */
  readonly state: string;
  readonly config: Config;
  /** The daemon's gRPC address (empty when embedded without a server). */
  readonly address: string;
  /** `<address>.ttrpc` (empty when embedded). */
  readonly ttrpcAddress: string;
  readonly logger: Logger;
  /** The one shared inversify container. */
  readonly container: interfaces.Container;
  /** Filled in by the plugin during init; reported by introspection. */
  readonly meta: PluginMeta;
  /** The instance of the single initialised plugin of `type`; NotFound otherwise. */
  getSingle<T>(type: string): T;
  /** The instance of plugin `type`.`id`; NotFound if it is not initialised. */
  getById<T>(type: string, id: string): T;
  /** Every initialised plugin of `type`, by id. */
  getByType<T>(type: string): Map<string, T>;
}

export type PluginStatus = 'ok' | 'skipped' | 'error' | 'disabled';

/** What introspection shows about one plugin after loading. */
export interface PluginRecord {
  type: string;
  id: string;
  uri: string;
  requires: string[];
  status: PluginStatus;
  /** Why it was skipped or failed. */
  error?: string;
  meta: PluginMeta;
  instance?: unknown;
}
