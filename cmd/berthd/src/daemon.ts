import * as fs from 'fs';
import * as grpc from '@grpc/grpc-js';
import {
  BerthConfig,
  createContainer,
  createLogger,
  GrpcService,
  loadPlugins,
  Logger,
  LogLevel,
  PluginRecords,
  PluginRegistration,
  PluginSet,
  PluginType,
  resolveTtrpcAddress,
  validatePluginUris,
} from '@berth/core';
import { proxySnapshotterPlugins } from '@berth/snapshotter-proxy';
import { builtinPlugins } from './builtins';
import { loadPluginModules } from './external-plugins';
import { prepareSocket, secureSocket } from './socket';

/**
 * The daemon: plugins loaded in dependency order, every `io.berth.grpc.v1`
 * plugin's service on one gRPC server on a unix socket.
 */
export class Daemon {
  private constructor(
    readonly config: BerthConfig,
    readonly plugins: PluginSet,
    private readonly server: grpc.Server,
    readonly socket: string,
    private readonly logger: Logger,
  ) {}

  /** Every registration berthd would load with `config` (builtins + plugin_modules). */
  static registrations(config: BerthConfig): PluginRegistration[] {
    return [...builtinPlugins, ...loadPluginModules(config.plugin_modules, process.cwd()), ...proxySnapshotterPlugins(config)];
  }

  static async start(config: BerthConfig, logger?: Logger): Promise<Daemon> {
    const log = logger ?? createLogger(config.debug.level as LogLevel, { name: 'berthd' });
    const registrations = Daemon.registrations(config);
    validatePluginUris(config, registrations.map((r) => `${r.type}.${r.id}`));

    fs.mkdirSync(config.root, { recursive: true, mode: 0o711 });
    fs.mkdirSync(config.state, { recursive: true, mode: 0o711 });
    // Refuse early, before plugins touch state, if another daemon owns the socket.
    const socket = await prepareSocket(config.grpc.address);

    const container = createContainer();
    let set: PluginSet | undefined;
    container.bind<PluginRecords>(PluginRecords).toConstantValue(() => set?.records() ?? []);
    set = await loadPlugins({
      registrations,
      config,
      container,
      logger: log,
      address: socket,
      ttrpcAddress: resolveTtrpcAddress(config),
    });
    for (const r of set.records()) {
      if (r.status === 'ok') log.debug({ plugin: r.uri }, 'plugin loaded');
      else log.warn({ plugin: r.uri, status: r.status, reason: r.error }, 'plugin not loaded');
    }

    const server = new grpc.Server({
      'grpc.max_receive_message_length': 16 << 20,
      'grpc.max_send_message_length': 16 << 20,
    });
    for (const [id, service] of set.getByType<GrpcService>(PluginType.GRPC)) {
      service.register(server);
      log.debug({ service: id }, 'grpc service registered');
    }
    try {
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      await set.closeAll();
      throw err;
    }
    secureSocket(socket, config.grpc.uid || undefined, config.grpc.gid || undefined);
    log.info({ address: socket, root: config.root, state: config.state }, 'berthd serving');
    return new Daemon(config, set, server, socket, log);
  }

  /** Stops accepting calls, ends streams, closes plugins and removes the socket. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    await this.plugins.closeAll();
    fs.rmSync(this.socket, { force: true });
    this.logger.info('berthd stopped');
  }
}
