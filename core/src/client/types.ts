import type { AnyMessage, EventEnvelope } from '../events/types';
import type { Labels, Namespace } from '../metadata/types';
import type { PluginMeta, PluginStatus } from '../plugin/types';

/** What the daemon (or the embedded core) reports about itself. */
export interface VersionInfo {
  version: string;
  revision: string;
}

/** One plugin as introspection reports it. */
export interface PluginInfo extends PluginMeta {
  type: string;
  id: string;
  requires: string[];
  status: Exclude<PluginStatus, 'disabled'> | 'disabled';
  /** Why the plugin was skipped or failed. */
  error?: string;
}

export interface NamespacesApi {
  list(): Promise<Namespace[]>;
  /** NotFound if absent. */
  get(name: string): Promise<Namespace>;
  create(name: string, labels?: Labels): Promise<Namespace>;
  /** Sets labels; an empty value removes that label. */
  label(name: string, labels: Labels): Promise<Namespace>;
  /** FailedPrecondition while the namespace still holds resources. */
  delete(name: string): Promise<void>;
}

export interface EventsApi {
  /** Publishes in the facade's namespace. */
  publish(topic: string, event: AnyMessage): Promise<void>;
  /** Events matching any filter (containerd syntax); ends when `signal` aborts. */
  subscribe(filters?: string[], signal?: AbortSignal): AsyncIterable<EventEnvelope>;
}

export interface IntrospectionApi {
  plugins(filters?: string[]): Promise<PluginInfo[]>;
  /** The server's identity, stable across restarts. */
  server(): Promise<{ uuid: string }>;
}

/**
 * The one typed API over berth, in-process (`createBerth`) or remote
 * (`connect`). Calls act in `namespace` (default `default`).
 */
export interface Berth {
  readonly namespace: string;
  readonly namespaces: NamespacesApi;
  readonly events: EventsApi;
  readonly introspection: IntrospectionApi;
  version(): Promise<VersionInfo>;
  /** The same facade acting in another namespace (shares the connection). */
  withNamespace(namespace: string): Berth;
  close(): Promise<void>;
}
