import * as fs from 'fs';
import { Command } from 'commander';
import type { Berth, Image } from '@berth/core';
import type { CommandContext } from '../cli';
import { formatLabels, parseKeyValues, printListing } from '../output';
import { formatBytes, TransferProgressDisplay } from '../progress';
import { checkImage } from '../image-tree';
import { addRegistryFlags, pullOptions, RegistryFlags, registryOptions } from './registry-flags';

function mediaTypeShort(mediaType: string): string {
  return mediaType.replace(/^application\/vnd\./, '');
}

/** Pulls with a live progress display and prints one summary line. */
export async function pullWithProgress(client: Berth, ref: string, flags: RegistryFlags, verb: string): Promise<Image> {
  const display = new TransferProgressDisplay();
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    const image = await client.images.pull(ref, { ...pullOptions(flags), onProgress: (b) => display.update(b), signal: abort.signal });
    const t = display.finish();
    process.stdout.write(
      `${image.name}: ${verb} ${image.target.digest} (${t.blobs} blobs, ${formatBytes(t.bytes)}, ${formatBytes(t.fetched)} fetched) in ${t.seconds.toFixed(1)}s\n`,
    );
    return image;
  } finally {
    process.off('SIGINT', onSignal);
    display.finish();
  }
}

export function registerImageCommands(program: Command, ctx: CommandContext): void {
  const images = program.command('images').alias('image').alias('i').description('manage images');

  addRegistryFlags(images.command('pull').description('pull an image from a registry').argument('<ref>')).action(
    async (ref: string, flags: RegistryFlags) => {
      await ctx.withClient((c) => pullWithProgress(c, ref, flags, 'pulled'));
    },
  );

  images
    .command('ls')
    .alias('list')
    .description('list images, optionally filtered (e.g. name~=busybox)')
    .argument('[filters...]')
    .option('-q, --quiet', 'print only the names')
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      const list = await ctx.withClient((c) => c.images.list(filters));
      if (opts.quiet) {
        for (const i of list) process.stdout.write(`${i.name}\n`);
        return;
      }
      printListing(ctx.options().format, ['REF', 'TYPE', 'DIGEST', 'SIZE', 'LABELS'], list, (i) => [
        i.name,
        mediaTypeShort(i.target.mediaType),
        i.target.digest,
        formatBytes(i.target.size),
        formatLabels(i.labels) || '-',
      ]);
    });

  images
    .command('rm')
    .alias('remove')
    .description('remove images (their content goes at the next garbage collection)')
    .argument('<names...>')
    .option('--sync', 'wait until garbage collection has reclaimed the space')
    .action(async (names: string[], opts: { sync?: boolean }) => {
      await ctx.withClient(async (c) => {
        for (const name of names) {
          await c.images.delete(name, { sync: opts.sync });
          process.stdout.write(`${name}\n`);
        }
      });
    });

  images
    .command('tag')
    .description('give an image more names')
    .argument('<source>')
    .argument('<targets...>')
    .action(async (source: string, targets: string[]) => {
      await ctx.withClient(async (c) => {
        for (const target of targets) {
          await c.images.tag(source, target);
          process.stdout.write(`${target}\n`);
        }
      });
    });

  images
    .command('label')
    .description('set or clear labels of an image (key= clears)')
    .argument('<name>')
    .argument('[labels...]')
    .action(async (name: string, labels: string[]) => {
      const kv = parseKeyValues(labels);
      const updated = await ctx.withClient((c) =>
        c.images.update({ name, labels: kv }, Object.keys(kv).map((k) => `labels.${k}`)),
      );
      process.stdout.write(`${formatLabels(updated.labels)}\n`);
    });

  addRegistryFlags(
    images.command('push').description('push a local image to a registry').argument('<ref>', 'destination').argument('[local]', 'local image (default: ref)'),
  ).action(async (ref: string, local: string | undefined, flags: RegistryFlags) => {
    await ctx.withClient(async (c) => {
      const display = new TransferProgressDisplay();
      await c.images.push(local ?? ref, {
        ref,
        platforms: flags.platform,
        allPlatforms: flags.allPlatforms,
        registry: registryOptions(flags),
        onProgress: (b) => display.update(b),
      });
      const t = display.finish();
      process.stdout.write(`${ref}: pushed (${t.blobs} blobs, ${formatBytes(t.bytes)}) in ${t.seconds.toFixed(1)}s\n`);
    });
  });

  images
    .command('import')
    .description('import an OCI layout or docker-save tar (- for stdin)')
    .argument('<file>')
    .option('--base-name <name>', 'prefix for names without a registry')
    .option('--index-name <name>', 'name for the archive\'s whole index')
    .action(async (file: string, opts: { baseName?: string; indexName?: string }) => {
      const input = file === '-' ? process.stdin : fs.createReadStream(file);
      const imported = await ctx.withClient((c) => c.images.import(input, opts));
      for (const image of imported) process.stdout.write(`${image.name} ${image.target.digest}\n`);
    });

  images
    .command('export')
    .description('export images as an OCI layout tar (- for stdout)')
    .argument('<file>')
    .argument('<names...>')
    .option('--platform <os/arch>', 'platform to export (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--all-platforms', 'export every platform')
    .action(async (file: string, names: string[], opts: { platform?: string[]; allPlatforms?: boolean }) => {
      const tmp = file === '-' ? undefined : `${file}.partial-${process.pid}`;
      const out = tmp ? fs.createWriteStream(tmp) : process.stdout;
      try {
        await ctx.withClient((c) => c.images.export(names, out, { platforms: opts.platform, allPlatforms: opts.allPlatforms }));
        // Only a complete archive gets the asked-for name.
        if (tmp) fs.renameSync(tmp, file);
      } catch (err) {
        if (tmp) fs.rmSync(tmp, { force: true });
        throw err;
      }
    });

  images
    .command('check')
    .description('check that every blob of each image is present')
    .argument('[filters...]')
    .option('-q, --quiet', 'print only the names of complete images')
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      await ctx.withClient(async (c) => {
        const list = await c.images.list(filters);
        const rows = [];
        for (const image of list) rows.push({ image, check: await checkImage(c, image.target) });
        if (opts.quiet) {
          for (const r of rows) if (r.check.missing === 0) process.stdout.write(`${r.image.name}\n`);
          return;
        }
        printListing(ctx.options().format, ['REF', 'TYPE', 'DIGEST', 'STATUS', 'SIZE'], rows, ({ image, check }) => [
          image.name,
          mediaTypeShort(image.target.mediaType),
          image.target.digest,
          `${check.missing === 0 ? 'complete' : 'incomplete'} (${check.present}/${check.present + check.missing})`,
          `${formatBytes(check.presentBytes)}/${formatBytes(check.totalBytes)}`,
        ]);
      });
    });
}
