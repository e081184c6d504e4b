import type { BerthConfig } from '../config';
import { defaultConfig, loadConfigFile } from '../config';
import { PluginRecords, corePlugins } from '../builtins';
import type { EventExchange } from '../events/types';
import { IntrospectionService } from '../introspection/introspection-service';
import { silentLogger, type Logger } from '../log';
import type { NamespacesService } from '../namespaces/namespaces-service';
import { createContainer, loadPlugins, type PluginSet } from '../plugin';
import { PluginRegistration, PluginType } from '../plugin/types';
import { BERTH_REVISION, BERTH_VERSION, DEFAULT_NAMESPACE } from '../version';
import { NamespacedContentStore } from '../content/types';
import { ImageStore } from '../images/types';
import { GarbageCollector, LeaseManager } from '../leases/types';
import { TransferService } from '../transfer/types';
import { SnapshotService } from '../snapshots/types';
import type { interfaces } from 'inversify';
import { ContainerStore } from '../containers/types';
import { TaskService } from '../runtime/types';
import { LocalContainers } from './local-containers';
import { LocalTasks } from './local-tasks';
import { LocalContent, LocalImages, LocalLeases, LocalSnapshots, LocalStores } from './local-apis';
import type { Berth, ContainersApi, TasksApi, ContentApi, EventsApi, ImagesApi, LeasesApi, SnapshotsApi, VersionInfo } from './types';

export interface CreateBerthOptions {
  /** Persistent data (like /var/lib/berth). */
  root: string;
  /** Runtime state (like /run/berth). */
  state: string;
  /** A parsed config, or the path of a TOML file. Its root/state are overridden by the options. */
  config?: BerthConfig | string;
  /** Plugins beyond the core ones (snapshotters, runtimes, third-party). */
  plugins?: PluginRegistration[];
  namespace?: string;
  logger?: Logger;
}

class LocalEvents implements EventsApi {
  constructor(
    private readonly exchange: EventExchange,
    private readonly namespace: string,
  ) {}

  publish(topic: string, event: { typeUrl: string; value: Uint8Array }): Promise<void> {
    return this.exchange.publish(this.namespace, topic, event);
  }

  subscribe(filters: string[] = [], signal?: AbortSignal) {
    return this.exchange.subscribe(filters, signal);
  }
}

function optional<T>(container: interfaces.Container, token: symbol): T | undefined {
  return container.isBound(token) ? container.get<T>(token) : undefined;
}

/** The stores other plugins bound in the shared container, where present. */
function localStores(container: interfaces.Container): LocalStores {
  return {
    content: optional(container, NamespacedContentStore),
    images: optional(container, ImageStore),
    leases: optional(container, LeaseManager),
    gc: optional(container, GarbageCollector),
    transfer: optional(container, TransferService),
    snapshots: optional(container, SnapshotService),
    containers: optional(container, ContainerStore),
    tasks: optional(container, TaskService),
  };
}

class LocalBerth implements Berth {
  readonly events: EventsApi;
  readonly images: ImagesApi;
  readonly content: ContentApi;
  readonly leases: LeasesApi;
  readonly containers: ContainersApi;
  readonly tasks: TasksApi;
  private readonly stores: LocalStores;

  constructor(
    private readonly plugins: PluginSet,
    readonly namespace: string,
    private readonly owner: boolean,
    readonly lease?: string,
  ) {
    this.events = new LocalEvents(plugins.getSingle<EventExchange>(PluginType.Event), namespace);
    const stores = localStores(plugins.container);
    this.stores = stores;
    this.images = new LocalImages(stores, namespace);
    this.content = new LocalContent(stores, namespace, lease);
    this.leases = new LocalLeases(stores, namespace);
    this.containers = new LocalContainers(stores, namespace);
    this.tasks = new LocalTasks(stores, namespace);
  }

  snapshots(snapshotter = ''): SnapshotsApi {
    return new LocalSnapshots(this.stores, this.namespace, snapshotter, this.lease);
  }

  get namespaces(): NamespacesService {
    return this.plugins.getById<NamespacesService>(PluginType.Service, 'namespaces');
  }

  get introspection(): IntrospectionService {
    return this.plugins.getById<IntrospectionService>(PluginType.Service, 'introspection');
  }

  async version(): Promise<VersionInfo> {
    return { version: BERTH_VERSION, revision: BERTH_REVISION };
  }

  withNamespace(namespace: string): Berth {
    return new LocalBerth(this.plugins, namespace, false, this.lease);
  }

  withLease(id: string): Berth {
    return new LocalBerth(this.plugins, this.namespace, false, id);
  }

  async close(): Promise<void> {
    if (this.owner) await this.plugins.closeAll();
  }
}

/**
 * berth in-process: loads the core plugins plus `plugins` into this process and
 * returns the same facade `connect` gives over gRPC. No daemon, no socket.
 */
export async function createBerth(options: CreateBerthOptions): Promise<Berth> {
  const base =
    typeof options.config === 'string' ? loadConfigFile(options.config) : (options.config ?? defaultConfig());
  const config: BerthConfig = { ...base, root: options.root, state: options.state };
  const container = createContainer();
  let set: PluginSet | undefined;
  container.bind<PluginRecords>(PluginRecords).toConstantValue(() => set?.records() ?? []);
  set = await loadPlugins({
    registrations: [...corePlugins, ...(options.plugins ?? [])],
    config,
    container,
    logger: options.logger ?? silentLogger(),
    address: '',
    ttrpcAddress: '',
  });
  return new LocalBerth(set, options.namespace ?? DEFAULT_NAMESPACE, true);
}
