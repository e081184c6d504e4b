import { Command, Option } from 'commander';
import { Berth, BERTH_REVISION, BERTH_VERSION, connect, DEFAULT_GRPC_ADDRESS } from '@berth/core';
import { OutputFormat } from './output';
import { registerNamespaceCommands } from './commands/namespaces';
import { registerPluginCommands } from './commands/plugins';
import { registerEventCommands } from './commands/events';
import { registerVersionCommand } from './commands/version';
import { registerImageCommands } from './commands/images';
import { registerContentCommands } from './commands/content';
import { registerLeaseCommands } from './commands/leases';
import { registerSnapshotterCommands } from './commands/snapshotter';
import { registerSnapshotCommands } from './commands/snapshots';
import { registerContainerCommands } from './commands/containers';
import { registerRunCommand } from './commands/run';
import { registerTaskCommands } from './commands/tasks';

/** Global options every command sees (ctr's names and environment variables). */
export interface GlobalOptions {
  address: string;
  namespace: string;
  format: OutputFormat;
  timeout: number;
}

/** Gives commands a connected client and closes it afterwards. */
export interface CommandContext {
  options(): GlobalOptions;
  withClient<T>(fn: (client: Berth) => Promise<T>): Promise<T>;
}

export function buildProgram(): { program: Command; exitCode: () => number } {
  let exitCode = 0;
  const program = new Command('berth')
    .description('berth: a ctr-style client for berthd')
    .addOption(
      new Option('-a, --address <path>', 'address of berthd\'s gRPC socket')
        .env('BERTH_ADDRESS')
        .default(DEFAULT_GRPC_ADDRESS),
    )
    .addOption(new Option('-n, --namespace <name>', 'namespace to act in').env('BERTH_NAMESPACE').default('default'))
    .addOption(new Option('--format <format>', 'output format of listings').choices(['table', 'json']).default('table'))
    .addOption(new Option('--timeout <seconds>', 'connection timeout').default('10').argParser(Number))
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });
  program.version(`${BERTH_VERSION} (${BERTH_REVISION})`, '-v, --version-flag', 'print the CLI version');
  program.exitOverride();

  const ctx: CommandContext = {
    options: () => program.opts<GlobalOptions>(),
    async withClient(fn) {
      const opts = program.opts<GlobalOptions>();
      const client = await connect(opts.address, { namespace: opts.namespace, timeoutMs: opts.timeout * 1000 });
      try {
        return await fn(client);
      } finally {
        await client.close();
      }
    },
  };
  registerVersionCommand(program, ctx);
  registerNamespaceCommands(program, ctx);
  registerPluginCommands(program, ctx);
  registerEventCommands(program, ctx, (code) => (exitCode = code));
  registerImageCommands(program, ctx);
  registerContentCommands(program, ctx);
  registerLeaseCommands(program, ctx);
  registerSnapshotCommands(program, ctx);
  registerContainerCommands(program, ctx);
  registerRunCommand(program, ctx, (code) => (exitCode = code));
  registerTaskCommands(program, ctx, (code) => (exitCode = code));
  registerSnapshotterCommands(program, ctx);
  return { program, exitCode: () => exitCode };
}

/** Runs the CLI; resolves to the process exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const { program, exitCode } = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    // commander already printed usage errors and help; keep its exit code.
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return e.exitCode ?? 1;
    throw err;
  }
  return exitCode();
}
