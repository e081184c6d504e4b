import * as path from 'path';
import { Command, Option } from 'commander';
import type { Mount, SnapshotInfo, SnapshotKind, SnapshotsApi } from '@berth/core';
import type { CommandContext } from '../cli';
import { formatLabels, parseKeyValues, printListing } from '../output';
import { formatBytes } from '../progress';

/** ctr's spelling of snapshot kinds. */
const kindNames: Record<SnapshotKind, string> = { view: 'View', active: 'Active', committed: 'Committed' };

/** The label ctr's prepare, view and commit put on what they make, so GC keeps it. */
function gcRootLabel(): Record<string, string> {
  return { 'containerd.io/gc.root': new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') };
}

/** `mount -t TYPE SOURCE TARGET -o OPTIONS`, one line per mount, as ctr prints them. */
export function mountCommands(target: string, mounts: Mount[]): string {
  return mounts.map((m) => `mount -t ${m.type} ${m.source} ${path.join(target, m.target ?? '')} -o ${m.options.join(',')}\n`).join('');
}

/** ctr's `snapshots tree`: roots first, each child under its parent, two spaces and `\_` per level. */
export function snapshotTree(infos: SnapshotInfo[]): string {
  const names = new Set(infos.map((i) => i.name));
  const children = new Map<string, string[]>();
  const roots: string[] = [];
  for (const info of [...infos].sort((a, b) => a.name.localeCompare(b.name))) {
    if (info.parent && names.has(info.parent)) {
      const list = children.get(info.parent) ?? [];
      list.push(info.name);
      children.set(info.parent, list);
    } else {
      roots.push(info.name);
    }
  }
  let out = '';
  const print = (name: string, level: number) => {
    out += `${'  '.repeat(level)}${level > 0 ? '\\_' : ''} ${name}\n`;
    for (const child of children.get(name) ?? []) print(child, level + 1);
  };
  for (const root of roots) print(root, 0);
  return out;
}

/** `snapshots info`: containerd's snapshots.Info as JSON (4-space indent, Go field names). */
function infoJson(info: SnapshotInfo): string {
  const doc: Record<string, unknown> = { Kind: kindNames[info.kind], Name: info.name };
  if (info.parent) doc.Parent = info.parent;
  if (Object.keys(info.labels).length) doc.Labels = info.labels;
  doc.Created = info.createdAt.toISOString();
  doc.Updated = info.updatedAt.toISOString();
  return `${JSON.stringify(doc, null, 4)}\n`;
}

/** The command's `--snapshotter` (on `snapshots`, as ctr has it). */
function snapshotterOf(cmd: Command): string {
  return (cmd.optsWithGlobals() as { snapshotter?: string }).snapshotter ?? '';
}

export function registerSnapshotCommands(program: Command, ctx: CommandContext): void {
  const snapshots = program
    .command('snapshots')
    .alias('snapshot')
    .description('manage snapshots')
    .addOption(
      new Option('--snapshotter <name>', 'snapshotter name (empty: the daemon\'s default)').env('BERTH_SNAPSHOTTER').default(''),
    );

  /** Runs `fn` against the chosen snapshotter of a connected client. */
  const withSnapshots = <T>(cmd: Command, fn: (s: SnapshotsApi) => Promise<T>): Promise<T> =>
    ctx.withClient((c) => fn(c.snapshots(snapshotterOf(cmd))));

  snapshots
    .command('ls')
    .alias('list')
    .description('list snapshots, optionally filtered (e.g. kind==committed)')
    .argument('[filters...]')
    .action(async (filters: string[], _opts: unknown, cmd: Command) => {
      const list = await withSnapshots(cmd, (s) => s.list(filters));
      printListing(ctx.options().format, ['KEY', 'PARENT', 'KIND'], list, (i) => [i.name, i.parent, kindNames[i.kind]]);
    });

  snapshots
    .command('tree')
    .description('display the snapshots as a tree, each under its parent')
    .action(async (_opts: unknown, cmd: Command) => {
      const list = await withSnapshots(cmd, (s) => s.list());
      process.stdout.write(snapshotTree(list));
    });

  const create = (verb: 'prepare' | 'view', description: string) =>
    snapshots
      .command(verb)
      .description(description)
      .argument('<key>')
      .argument('[parent]', 'committed snapshot to start from')
      .option('-t, --target <path>', 'print the mount commands for this mount point')
      .option('--mounts', 'print the mounts as JSON')
      .action(async (key: string, parent: string | undefined, opts: { target?: string; mounts?: boolean }, cmd: Command) => {
        const mounts = await withSnapshots(cmd, (s) => s[verb](key, parent ?? '', { labels: gcRootLabel() }));
        if (opts.target) process.stdout.write(mountCommands(opts.target, mounts));
        if (opts.mounts) process.stdout.write(`${JSON.stringify(mounts, null, 4)}\n`);
      });
  create('prepare', 'create an active (writable) snapshot from a committed one');
  create('view', 'create a read-only snapshot from a committed one');

  snapshots
    .command('commit')
    .description('commit an active snapshot under a name')
    .argument('<name>', 'name of the committed snapshot')
    .argument('<active>', 'key of the active snapshot')
    .action(async (name: string, active: string, _opts: unknown, cmd: Command) => {
      await withSnapshots(cmd, (s) => s.commit(name, active, { labels: gcRootLabel() }));
    });

  snapshots
    .command('rm')
    .aliases(['remove', 'delete', 'del'])
    .description('remove snapshots')
    .argument('<keys...>')
    .action(async (keys: string[], _opts: unknown, cmd: Command) => {
      await withSnapshots(cmd, async (s) => {
        for (const key of keys) {
          try {
            await s.remove(key);
          } catch (err) {
            throw new Error(`failed to remove ${JSON.stringify(key)}: ${(err as Error).message}`, { cause: err });
          }
        }
      });
    });

  snapshots
    .command('usage')
    .description('disk usage of snapshots (all, or the keys given)')
    .argument('[keys...]')
    .option('--b', 'sizes in bytes')
    .action(async (keys: string[], opts: { b?: boolean }, cmd: Command) => {
      const rows = await withSnapshots(cmd, async (s) => {
        const names = keys.length ? keys : (await s.list()).map((i) => i.name);
        const out = [];
        for (const key of names) out.push({ key, ...(await s.usage(key)) });
        return out;
      });
      printListing(ctx.options().format, ['KEY', 'SIZE', 'INODES'], rows, (r) => [
        r.key,
        opts.b ? String(r.size) : formatBytes(r.size),
        String(r.inodes),
      ]);
    });

  snapshots
    .command('mounts')
    .aliases(['m', 'mount'])
    .description('print the mount commands for an active snapshot or view')
    .argument('<target>', 'mount point')
    .argument('<key>')
    .action(async (target: string, key: string, _opts: unknown, cmd: Command) => {
      const mounts = await withSnapshots(cmd, (s) => s.mounts(key));
      process.stdout.write(mountCommands(target, mounts));
    });

  snapshots
    .command('info')
    .description('print a snapshot\'s info as JSON')
    .argument('<key>')
    .action(async (key: string, _opts: unknown, cmd: Command) => {
      process.stdout.write(infoJson(await withSnapshots(cmd, (s) => s.stat(key))));
    });

  snapshots
    .command('label')
    .description('set or clear labels of a snapshot (key= clears)')
    .argument('<key>')
    .argument('[labels...]')
    .action(async (key: string, labels: string[], _opts: unknown, cmd: Command) => {
      const kv = parseKeyValues(labels);
      const info = await withSnapshots(cmd, (s) => s.update({ name: key, labels: kv }, Object.keys(kv).map((k) => `labels.${k}`)));
      process.stdout.write(`${formatLabels(info.labels)}\n`);
    });
}
