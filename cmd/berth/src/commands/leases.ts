import { Command } from 'commander';
import type { CommandContext } from '../cli';
import { formatLabels, parseKeyValues, printListing } from '../output';

/** `24h`, `30m`, `90s` → milliseconds. */
function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`invalid duration ${JSON.stringify(text)}: use e.g. 90s, 30m, 24h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

export function registerLeaseCommands(program: Command, ctx: CommandContext): void {
  const leases = program.command('leases').alias('lease').description('manage leases');

  leases
    .command('ls')
    .alias('list')
    .description('list leases')
    .argument('[filters...]')
    .option('-q, --quiet', 'print only the ids')
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      const list = await ctx.withClient((c) => c.leases.list(filters));
      if (opts.quiet) {
        for (const l of list) process.stdout.write(`${l.id}\n`);
        return;
      }
      printListing(ctx.options().format, ['ID', 'CREATED AT', 'LABELS'], list, (l) => [
        l.id,
        l.createdAt.toISOString(),
        formatLabels(l.labels) || '-',
      ]);
    });

  leases
    .command('create')
    .description('create a lease')
    .argument('[labels...]')
    .option('--id <id>', 'lease id (generated if absent)')
    .option('-x, --expires <duration>', 'expiry, e.g. 24h (0 for none)', '24h')
    .action(async (labels: string[], opts: { id?: string; expires: string }) => {
      const ms = opts.expires === '0' ? 0 : parseDuration(opts.expires);
      const lease = await ctx.withClient((c) =>
        c.leases.create({ id: opts.id, labels: parseKeyValues(labels), expiresAt: ms ? new Date(Date.now() + ms) : undefined }),
      );
      process.stdout.write(`${lease.id}\n`);
    });

  leases
    .command('rm')
    .alias('delete')
    .description('remove leases')
    .argument('<ids...>')
    .option('--sync', 'wait for garbage collection')
    .action(async (ids: string[], opts: { sync?: boolean }) => {
      await ctx.withClient(async (c) => {
        for (const id of ids) {
          await c.leases.delete(id, { sync: opts.sync });
          process.stdout.write(`${id}\n`);
        }
      });
    });
}
