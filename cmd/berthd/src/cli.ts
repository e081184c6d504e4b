import * as fs from 'fs';
import { Command, Option } from 'commander';
import {
  BerthConfig,
  BERTH_REVISION,
  BERTH_VERSION,
  BerthConfigSchema,
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  loadConfigFile,
  pluginDefaults,
  renderConfig,
} from '@berth/core';
import { Daemon } from './daemon';
import { publishEvent, readAll } from './publish';

interface DaemonFlags {
  config?: string;
  root?: string;
  state?: string;
  address?: string;
  logLevel?: string;
}

/** The file's config with command-line flags on top; no file at the default path is fine. */
export async function resolveConfig(flags: DaemonFlags): Promise<BerthConfig> {
  let config: BerthConfig;
  if (flags.config) config = await loadConfigFile(flags.config);
  else if (fs.existsSync(DEFAULT_CONFIG_PATH)) config = await loadConfigFile(DEFAULT_CONFIG_PATH);
  else config = defaultConfig();
  const merged = {
    ...config,
    root: flags.root ?? config.root,
    state: flags.state ?? config.state,
    grpc: { ...config.grpc, address: flags.address ?? config.grpc.address },
    debug: { ...config.debug, level: flags.logLevel ?? config.debug.level },
  };
  // Re-validate: flags are input too (relative paths, unknown levels).
  const checked = BerthConfigSchema.safeParse(merged);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new Error(`invalid option ${issue.path.join('.')}: ${issue.message}`);
  }
  return checked.data;
}

export async function runBerthd(argv: string[]): Promise<void> {
  const program = new Command('berthd')
    .description('berth daemon: serves containerd\'s v1 gRPC API on a unix socket')
    .version(`${BERTH_VERSION} (${BERTH_REVISION})`, '-v, --version')
    .option('-c, --config <file>', `config file (default ${DEFAULT_CONFIG_PATH} if it exists)`)
    .option('--root <dir>', 'persistent data directory')
    .option('--state <dir>', 'runtime state directory')
    .option('-a, --address <socket>', 'gRPC socket path')
    .addOption(
      new Option('-l, --log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    )
    .action(async (flags: DaemonFlags) => {
      const config = await resolveConfig(flags);
      const daemon = await Daemon.start(config);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const shutdown = (signal: string) => {
          if (stopping) return;
          stopping = true;
          process.stderr.write(`berthd: ${signal} received, shutting down\n`);
          daemon.stop().then(resolve, (err) => {
            process.stderr.write(`berthd: shutdown: ${(err as Error).message}\n`);
            resolve();
          });
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      });
    });

  const config = program.command('config').description('information about the daemon configuration');
  config
    .command('default')
    .description('print the default configuration, with every plugin\'s defaults')
    .action(() => {
      const defaults = defaultConfig();
      process.stdout.write(renderConfig(defaults, pluginDefaults(Daemon.registrations(defaults))));
    });
  config
    .command('dump')
    .description('print the configuration berthd would run with')
    .action(async () => {
      const flags = program.opts<DaemonFlags>();
      const resolved = await resolveConfig(flags);
      process.stdout.write(renderConfig(resolved, pluginDefaults(Daemon.registrations(resolved))));
    });

  program
    .command('publish')
    .description('publish an event (a protobuf Any read from stdin) to a running berthd; shims run this as their -publish-binary')
    .requiredOption('--topic <topic>', 'event topic, e.g. /tasks/oom')
    .requiredOption('--namespace <namespace>', 'namespace of the event')
    .action(async (opts: { topic: string; namespace: string }) => {
      // `--address` is the program's option, as in `containerd --address A publish ...`.
      const address = (await resolveConfig(program.opts<DaemonFlags>())).grpc.address;
      await publishEvent({ address, topic: opts.topic, namespace: opts.namespace, event: await readAll(process.stdin) });
    });

  await program.parseAsync(argv);
}
