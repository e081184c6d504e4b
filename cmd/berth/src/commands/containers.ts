import { Command } from 'commander';
import {
  type AnyMessage,
  type Berth,
  type Container,
  FailedPreconditionError,
  isNotFound,
  isNotImplemented,
  OCI_SPEC_TYPE_URL,
} from '@berth/core';
import type { CommandContext } from '../cli';
import { formatLabels, parseKeyValues, printListing } from '../output';
import { addContainerCreateCommand } from './run';

/** An Any as Go's encoding/json prints containerd's: type URL and base64 bytes. */
function anyJson(any: AnyMessage): { type_url: string; value?: string } {
  // Go leaves out empty bytes (omitempty).
  if (any.value.length === 0) return { type_url: any.typeUrl };
  return { type_url: any.typeUrl, value: Buffer.from(any.value).toString('base64') };
}

/** The spec as the JSON document it carries; another type stays an Any. */
export function decodeSpec(spec: AnyMessage): unknown {
  if (spec.typeUrl !== OCI_SPEC_TYPE_URL) return anyJson(spec);
  const text = Buffer.from(spec.value).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`the container's spec is not valid JSON: ${text.slice(0, 80)}`);
  }
}

/** A container as `ctr containers info` prints it: Go field names, the spec decoded. */
export function containerJson(container: Container): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    ID: container.id,
    Labels: container.labels,
    Image: container.image,
    Runtime: {
      Name: container.runtime.name,
      Options: container.runtime.options ? anyJson(container.runtime.options) : null,
    },
  };
  if (container.spec) doc.Spec = decodeSpec(container.spec);
  doc.SnapshotKey = container.snapshotKey;
  doc.Snapshotter = container.snapshotter;
  doc.CreatedAt = container.createdAt.toISOString();
  doc.UpdatedAt = container.updatedAt.toISOString();
  doc.Extensions = Object.fromEntries(Object.entries(container.extensions).map(([name, value]) => [name, anyJson(value)]));
  if (container.sandbox) doc.SandboxID = container.sandbox;
  return doc;
}

/**
 * Deletes a container as ctr does: refused while it has a task; its rootfs
 * snapshot goes first (unless kept), then the record.
 */
async function removeContainer(client: Berth, id: string, keepSnapshot: boolean): Promise<void> {
  const container = await client.containers.get(id);
  if (await hasTask(client, id)) {
    throw new FailedPreconditionError(`container ${JSON.stringify(id)} has a task: delete the task first`);
  }
  if (!keepSnapshot && container.snapshotKey !== '') {
    if (container.snapshotter === '') {
      throw new FailedPreconditionError(`container ${JSON.stringify(id)} names snapshot ${JSON.stringify(container.snapshotKey)} but no snapshotter`);
    }
    try {
      await client.snapshots(container.snapshotter).remove(container.snapshotKey);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  await client.containers.delete(id);
}

/** Whether a task exists for the container; a daemon without tasks has none. */
async function hasTask(client: Berth, id: string): Promise<boolean> {
  try {
    await client.tasks.get(id);
    return true;
  } catch (err) {
    if (isNotFound(err) || isNotImplemented(err)) return false;
    throw err;
  }
}

export function registerContainerCommands(program: Command, ctx: CommandContext): void {
  const containers = program.command('containers').aliases(['container', 'c']).description('manage containers');
  addContainerCreateCommand(containers, ctx);

  containers
    .command('ls')
    .alias('list')
    .description('list containers, optionally filtered (e.g. image==busybox:latest, labels."k"==v)')
    .argument('[filters...]')
    .option('-q, --quiet', 'print only the ids')
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      const list = await ctx.withClient((c) => c.containers.list(filters));
      if (opts.quiet) {
        for (const container of list) process.stdout.write(`${container.id}\n`);
        return;
      }
      const { format } = ctx.options();
      // JSON as `info` prints a container: the spec decoded, not a byte dump.
      if (format === 'json') {
        process.stdout.write(`${JSON.stringify(list.map(containerJson), null, 2)}\n`);
        return;
      }
      printListing(format, ['CONTAINER', 'IMAGE', 'RUNTIME'], list, (c) => [c.id, c.image || '-', c.runtime.name]);
    });

  containers
    .command('info')
    .description('print a container\'s record as JSON, its spec decoded')
    .argument('<id>')
    .option('--spec', 'print only the OCI spec')
    .action(async (id: string, opts: { spec?: boolean }) => {
      const container = await ctx.withClient((c) => c.containers.get(id));
      const doc = opts.spec ? (container.spec ? decodeSpec(container.spec) : null) : containerJson(container);
      process.stdout.write(`${JSON.stringify(doc, null, 4)}\n`);
    });

  containers
    .command('label')
    .description('set labels on a container (key=value; key= removes it) and print its labels')
    .argument('<id>')
    .argument('<labels...>')
    .action(async (id: string, labels: string[]) => {
      const updated = await ctx.withClient((c) => c.containers.label(id, parseKeyValues(labels)));
      process.stdout.write(`${formatLabels(updated.labels)}\n`);
    });

  containers
    .command('rm')
    .aliases(['delete', 'del', 'remove'])
    .description('delete containers and their snapshots')
    .argument('<ids...>')
    .option('--keep-snapshot', 'do not remove the container\'s snapshot')
    .action(async (ids: string[], opts: { keepSnapshot?: boolean }) => {
      // As ctr: try every id, report each failure, fail at the end.
      let failed: Error | undefined;
      await ctx.withClient(async (c) => {
        for (const id of ids) {
          try {
            await removeContainer(c, id, opts.keepSnapshot ?? false);
          } catch (err) {
            const error = err instanceof Error ? err : new Error(String(err));
            process.stderr.write(`berth: failed to delete container ${JSON.stringify(id)}: ${error.message}\n`);
            failed ??= error;
          }
        }
      });
      if (failed) throw new Error(`failed to delete ${ids.length > 1 ? 'some containers' : `container ${JSON.stringify(ids[0])}`}: ${failed.message}`, { cause: failed });
    });
}
