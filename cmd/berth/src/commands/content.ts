import { Command } from 'commander';
import type { CommandContext } from '../cli';
import { formatLabels, parseKeyValues, printListing } from '../output';
import { formatBytes } from '../progress';
import { pullWithProgress } from './images';
import { addRegistryFlags, RegistryFlags } from './registry-flags';

function age(date: Date): string {
  const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (s < 60) return `${s} seconds`;
  if (s < 3600) return `${Math.round(s / 60)} minutes`;
  if (s < 86400) return `${Math.round(s / 3600)} hours`;
  return `${Math.round(s / 86400)} days`;
}

export function registerContentCommands(program: Command, ctx: CommandContext): void {
  const content = program.command('content').description('manage content (blobs)');

  content
    .command('ls')
    .alias('list')
    .description('list blobs, optionally filtered (e.g. labels."containerd.io/gc.root")')
    .argument('[filters...]')
    .option('-q, --quiet', 'print only the digests')
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      const list = await ctx.withClient((c) => c.content.list(filters));
      if (opts.quiet) {
        for (const i of list) process.stdout.write(`${i.digest}\n`);
        return;
      }
      printListing(ctx.options().format, ['DIGEST', 'SIZE', 'AGE', 'LABELS'], list, (i) => [
        i.digest,
        formatBytes(i.size),
        age(i.createdAt),
        formatLabels(i.labels) || '-',
      ]);
    });

  content
    .command('get')
    .description('write a blob to stdout')
    .argument('<digest>')
    .action(async (digest: string) => {
      await ctx.withClient(async (c) => {
        const stream = await c.content.read(digest);
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
        }
      });
    });

  addRegistryFlags(content.command('fetch').description('fetch all content of an image (no unpack)').argument('<ref>')).action(
    async (ref: string, flags: RegistryFlags) => {
      await ctx.withClient((c) => pullWithProgress(c, ref, flags, 'fetched'));
    },
  );

  content
    .command('ingest')
    .description('write stdin as a blob under an ingest ref, verified and committed')
    .argument('<ref>')
    .option('--expected-size <bytes>', 'size the data must have', Number)
    .option('--expected-digest <digest>', 'digest the data must have')
    .action(async (ref: string, opts: { expectedSize?: number; expectedDigest?: string }) => {
      const info = await ctx.withClient((c) =>
        c.content.ingest(ref, process.stdin, { expected: { size: opts.expectedSize, digest: opts.expectedDigest } }),
      );
      process.stdout.write(`${info.digest}\n`);
    });

  content
    .command('rm')
    .alias('delete')
    .description('remove blobs from this namespace')
    .argument('<digests...>')
    .action(async (digests: string[]) => {
      await ctx.withClient(async (c) => {
        for (const d of digests) {
          await c.content.delete(d);
          process.stdout.write(`${d}\n`);
        }
      });
    });

  content
    .command('active')
    .description('list ingests in progress')
    .argument('[filters...]')
    .action(async (filters: string[]) => {
      const list = await ctx.withClient((c) => c.content.active(filters));
      printListing(ctx.options().format, ['REF', 'SIZE', 'AGE'], list, (s) => [
        s.ref,
        `${formatBytes(s.offset)}/${s.total ? formatBytes(s.total) : '?'}`,
        age(s.startedAt),
      ]);
    });

  content
    .command('abort')
    .description('remove an ingest in progress')
    .argument('<refs...>')
    .action(async (refs: string[]) => {
      await ctx.withClient(async (c) => {
        for (const r of refs) await c.content.abort(r);
      });
    });

  content
    .command('label')
    .description('set or clear labels of a blob (key= clears)')
    .argument('<digest>')
    .argument('[labels...]')
    .action(async (digest: string, labels: string[]) => {
      const info = await ctx.withClient((c) => c.content.label(digest, parseKeyValues(labels)));
      process.stdout.write(`${formatLabels(info.labels)}\n`);
    });
}
