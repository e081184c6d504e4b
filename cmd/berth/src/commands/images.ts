import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import { type Berth, type Image, isAlreadyExists, isNotFound } from '@berth/core';
import { mountAll, unmountAll } from '@berth/sys';
import type { CommandContext } from '../cli';
import { formatLabels, parseKeyValues, printListing } from '../output';
import { formatBytes, TransferProgressDisplay } from '../progress';
import { checkImage } from '../image-tree';
import { imageChainID } from '../image-rootfs';
import { addRegistryFlags, pullOptions, RegistryFlags, registryOptions } from './registry-flags';

function mediaTypeShort(mediaType: string): string {
  return mediaType.replace(/^application\/vnd\./, '');
}

/** How a pull unpacks: `images pull` does (into `snapshotter`), `content fetch` does not. */
export interface UnpackFlags {
  unpack: boolean;
  snapshotter?: string;
}

/** Pulls with a live progress display and prints one summary line. */
export async function pullWithProgress(
  client: Berth,
  ref: string,
  flags: RegistryFlags,
  verb: string,
  unpack: UnpackFlags = { unpack: false },
): Promise<Image> {
  const display = new TransferProgressDisplay();
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    const image = await client.images.pull(ref, {
      ...pullOptions(flags),
      // Unset rather than true: a berth without snapshots still fetches, as before.
      unpack: unpack.unpack ? (unpack.snapshotter ? true : undefined) : false,
      snapshotter: unpack.snapshotter || undefined,
      onProgress: (b) => display.update(b),
      signal: abort.signal,
    });
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

/** How long the lease behind `images mount` keeps the snapshot (ctr's 24 h). */
const MOUNT_LEASE_TTL_MS = 24 * 60 * 60 * 1000;

/** The lease of a mount at `target` (lease ids may not hold '/'). */
function mountLeaseId(target: string): string {
  return `berth-mount-${createHash('sha256').update(target).digest('hex').slice(0, 24)}`;
}

/**
 * `images mount`, as ctr's: a view (or, with rw, an active snapshot) keyed by
 * the target path on the image's top chain ID, held by a lease that names
 * it, and mounted here (the CLI runs on the daemon's host, as root).
 */
async function mountImage(client: Berth, ref: string, target: string, opts: { snapshotter?: string; rw?: boolean; platform?: string }): Promise<void> {
  const image = await client.images.get(ref);
  const chainID = await imageChainID(client, image.target, opts.platform);
  const plain = client.snapshots(opts.snapshotter ?? '');
  try {
    await plain.stat(chainID);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    throw new Error(`image ${ref} is not unpacked in this snapshotter (no snapshot ${chainID}): pull it without --no-unpack`, { cause: err });
  }
  const leaseId = mountLeaseId(target);
  try {
    // The snapshot joins the lease, which keeps it from GC while mounted.
    await client.leases.create({ id: leaseId, expiresAt: new Date(Date.now() + MOUNT_LEASE_TTL_MS), labels: { 'berth.io/mount.target': target } });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
  const snapshots = client.withLease(leaseId).snapshots(opts.snapshotter ?? '');
  let mounts;
  let created = false;
  try {
    mounts = opts.rw ? await snapshots.prepare(target, chainID) : await snapshots.view(target, chainID);
    created = true;
  } catch (err) {
    // Mounted before (as ctr does, mount it again).
    if (!isAlreadyExists(err)) throw err;
    mounts = await snapshots.mounts(target);
  }
  try {
    await mountAll(mounts, target);
  } catch (err) {
    if (created) {
      await snapshots.remove(target).catch(() => undefined);
      await client.leases.delete(leaseId).catch(() => undefined);
    }
    throw err;
  }
}

/** `images unmount --rm`: the snapshot and lease `images mount` made for `target`. */
async function removeImageMount(client: Berth, target: string, snapshotter?: string): Promise<void> {
  try {
    await client.leases.delete(mountLeaseId(target));
  } catch (err) {
    if (!isNotFound(err)) throw new Error(`error deleting lease: ${(err as Error).message}`, { cause: err });
  }
  try {
    await client.snapshots(snapshotter ?? '').remove(target);
  } catch (err) {
    if (!isNotFound(err)) throw new Error(`error removing snapshot: ${(err as Error).message}`, { cause: err });
  }
}

export function registerImageCommands(program: Command, ctx: CommandContext): void {
  const images = program.command('images').alias('image').alias('i').description('manage images');

  addRegistryFlags(images.command('pull').description('pull an image from a registry and unpack it into snapshots').argument('<ref>'))
    .addOption(new Option('--snapshotter <name>', 'snapshotter to unpack into (default: the daemon\'s)').env('BERTH_SNAPSHOTTER'))
    .option('--no-unpack', 'only fetch the content, as content fetch does')
    .option('--print-chainid', 'print the chain ID of the unpacked image')
    .action(async (ref: string, flags: RegistryFlags & { snapshotter?: string; unpack: boolean; printChainid?: boolean }) => {
      await ctx.withClient(async (c) => {
        const image = await pullWithProgress(c, ref, flags, 'pulled', { unpack: flags.unpack, snapshotter: flags.snapshotter });
        if (flags.printChainid) {
          process.stdout.write(`image chain ID: ${await imageChainID(c, image.target, flags.platform?.[0])}\n`);
        }
      });
    });

  images
    .command('mount')
    .description('mount an unpacked image\'s rootfs (read-only unless --rw) on a directory')
    .argument('<ref>')
    .argument('<target>', 'existing directory to mount on')
    .addOption(new Option('--snapshotter <name>', 'snapshotter the image is unpacked in').env('BERTH_SNAPSHOTTER'))
    .option('--rw', 'mount a writable snapshot instead of a read-only view')
    .option('--platform <os/arch>', 'platform of a multi-platform image (default: the host\'s)')
    .action(async (ref: string, target: string, opts: { snapshotter?: string; rw?: boolean; platform?: string }) => {
      const at = path.resolve(target);
      await ctx.withClient((c) => mountImage(c, ref, at, opts));
      process.stdout.write(`${at}\n`);
    });

  images
    .command('unmount')
    .description('unmount an image mounted by images mount')
    .argument('<target>')
    .addOption(new Option('--snapshotter <name>', 'snapshotter the image is unpacked in').env('BERTH_SNAPSHOTTER'))
    .option('--rm', 'also remove the snapshot and the lease behind the mount')
    .action(async (target: string, opts: { snapshotter?: string; rm?: boolean }) => {
      const at = path.resolve(target);
      await unmountAll(at);
      if (opts.rm) await ctx.withClient((c) => removeImageMount(c, at, opts.snapshotter));
      process.stdout.write(`${at}\n`);
    });

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
    .option('--snapshotter <name>', 'snapshotter to unpack into (default: the daemon\'s)')
    .option('--no-unpack', 'store the content only, do not unpack')
    .action(async (file: string, opts: { baseName?: string; indexName?: string; snapshotter?: string; unpack: boolean }) => {
      const input = file === '-' ? process.stdin : fs.createReadStream(file);
      const imported = await ctx.withClient((c) =>
        c.images.import(input, { baseName: opts.baseName, indexName: opts.indexName, snapshotter: opts.snapshotter, unpack: opts.unpack ? undefined : false }),
      );
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
