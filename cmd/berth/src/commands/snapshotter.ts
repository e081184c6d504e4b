import * as path from 'path';
import { Argument, Command, Option } from 'commander';
import { createLogger, type Logger, type LogLevel, type Snapshotter } from '@berth/core';
import type { CommandContext } from '../cli';

interface ServeFlags {
  root: string;
  address?: string;
  logLevel: LogLevel;
  syncRemove?: boolean;
  upperdirLabel?: boolean;
  mountOption: string[];
}

const snapshotterTypes = ['overlayfs', 'native'] as const;
type SnapshotterType = (typeof snapshotterTypes)[number];

/**
 * `berth snapshotter serve <overlayfs|native> --root DIR --address SOCK`: one
 * of berth's snapshotters, in this process (no daemon), served with
 * containerd's Snapshots API for containerd's `[proxy_plugins]` or berthd's.
 */
export function registerSnapshotterCommands(program: Command, _ctx: CommandContext): void {
  const snapshotter = program.command('snapshotter').description('run berth\'s snapshotters outside the daemon');
  snapshotter
    .command('serve')
    .description(
      'serve a snapshotter on a unix socket with containerd\'s Snapshots API, e.g. for\n' +
        'containerd\'s [proxy_plugins.<name>] type = "snapshot", address = "<SOCK>"',
    )
    .addArgument(new Argument('<type>', 'snapshotter').choices(snapshotterTypes))
    .requiredOption('--root <dir>', 'directory holding the snapshots')
    // The program's own -a/--address takes the value; declared here too for --help.
    .option('-a, --address <socket>', 'unix socket to listen on (required)')
    .addOption(
      new Option('-l, --log-level <level>', 'log level (logs go to stderr)')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
        .default('info'),
    )
    .option('--sync-remove', 'overlayfs: delete a removed snapshot\'s files at once, not at cleanup')
    .option('--upperdir-label', 'overlayfs: report each snapshot\'s upper dir as a label')
    .option('--mount-option <option>', 'overlayfs: extra option for every overlay mount (repeatable)', collect, [])
    .action(async (type: SnapshotterType, flags: ServeFlags) => {
      const address = flags.address ?? (program.getOptionValueSource('address') === 'cli' ? program.opts().address : undefined);
      if (!address) throw new Error('snapshotter serve: --address <socket> is required');
      const root = path.resolve(flags.root);
      const logger = createLogger(flags.logLevel, { name: 'berth-snapshotter' });
      await serve(type, root, address, flags, logger);
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function open(type: SnapshotterType, root: string, flags: ServeFlags, logger: Logger): Promise<Snapshotter> {
  // Loaded here, not at the top: every other berth command would pay for SQLite and FFI start-up.
  if (type === 'native') {
    const { NativeSnapshotter } = await import('@berth/snapshotter-native');
    return NativeSnapshotter.open(root, { logger });
  }
  const [{ OverlaySnapshotter, checkOverlaySupport, defaultOverlayOptions }, { mountAll, unmountAll }] = await Promise.all([
    import('@berth/snapshotter-overlayfs'),
    import('@berth/sys'),
  ]);
  await checkOverlaySupport(root, { mountAll, unmountAll }, [...defaultOverlayOptions(), ...flags.mountOption]);
  return OverlaySnapshotter.open(root, {
    syncRemove: flags.syncRemove ?? false,
    upperdirLabel: flags.upperdirLabel ?? false,
    mountOptions: flags.mountOption,
    logger,
  });
}

async function serve(type: SnapshotterType, root: string, address: string, flags: ServeFlags, logger: Logger): Promise<void> {
  const { prepareSocket, serveSnapshotters } = await import('@berth/snapshotter-proxy');
  // Refuse a live socket before opening the root: its server may be using that root.
  await prepareSocket(address);
  const snapshotter = await open(type, root, flags, logger);
  let server;
  try {
    // Any name: containerd sends its proxy plugin's name, which is the user's to choose.
    server = await serveSnapshotters(address, () => snapshotter, { logger });
  } catch (err) {
    await snapshotter.close();
    throw err;
  }
  logger.info({ snapshotter: type, root, address: server.socket }, 'serving snapshotter');

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(sig);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  logger.info({ signal }, 'shutting down');
  try {
    await server.stop();
  } finally {
    await snapshotter.close();
  }
  logger.info('stopped');
}
