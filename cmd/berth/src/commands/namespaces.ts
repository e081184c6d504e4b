import { Command } from 'commander';
import type { CommandContext } from '../cli';
import { formatLabels, parseKeyValues, printListing } from '../output';

export function registerNamespaceCommands(program: Command, ctx: CommandContext): void {
  const ns = program.command('namespaces').alias('namespace').alias('ns').description('manage namespaces');

  ns.command('create')
    .description('create a namespace')
    .argument('<name>')
    .argument('[labels...]', 'labels as key=value')
    .action(async (name: string, labels: string[]) => {
      await ctx.withClient((c) => c.namespaces.create(name, parseKeyValues(labels)));
    });

  ns.command('ls')
    .alias('list')
    .description('list namespaces')
    .option('-q, --quiet', 'print only the names')
    .action(async (opts: { quiet?: boolean }) => {
      const list = await ctx.withClient((c) => c.namespaces.list());
      if (opts.quiet) {
        for (const n of list) process.stdout.write(`${n.name}\n`);
        return;
      }
      printListing(ctx.options().format, ['NAME', 'LABELS'], list, (n) => [n.name, formatLabels(n.labels)]);
    });

  ns.command('label')
    .description('set or clear labels of a namespace (key= clears)')
    .argument('<name>')
    .argument('[labels...]', 'labels as key=value')
    .action(async (name: string, labels: string[]) => {
      await ctx.withClient((c) => c.namespaces.label(name, parseKeyValues(labels)));
    });

  ns.command('rm')
    .alias('remove')
    .description('remove namespaces (they must be empty)')
    .argument('<names...>')
    .action(async (names: string[]) => {
      await ctx.withClient(async (c) => {
        for (const name of names) {
          await c.namespaces.delete(name);
          process.stdout.write(`${name}\n`);
        }
      });
    });
}
