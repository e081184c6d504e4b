import { Command } from 'commander';
import type { AnyMessage, ProcessInfo, TaskMetric } from '@berth/core';
import { cgroupsV1Metrics, cgroupsV2Metrics, isAnyOf, runcOptionsV1, unpackAny } from '@berth/proto';
import type { CommandContext } from '../cli';
import { formatTable, printListing } from '../output';
import { bindTerminal, ContainerCommandLine, exitCodeOf, loadBuiltins, releaseStdin, signalNumber, startAttached } from './run';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The exec id a runc shim reports for a pid, or '' for the init process or other shims. */
function execIdOf(info: AnyMessage | undefined): string {
  if (!info || !isAnyOf({ typeUrl: info.typeUrl, value: Buffer.from(info.value) }, runcOptionsV1.ProcessDetails)) return '';
  return unpackAny({ typeUrl: info.typeUrl, value: Buffer.from(info.value) }, runcOptionsV1.ProcessDetails).execId;
}

/** The cgroup figures ctr shows for a task, by name; undefined for a payload we cannot decode. */
export function metricRows(data: AnyMessage | undefined): [string, string][] | undefined {
  if (!data) return undefined;
  const any = { typeUrl: data.typeUrl, value: Buffer.from(data.value) };
  if (isAnyOf(any, cgroupsV1Metrics.Metrics)) {
    const m = unpackAny(any, cgroupsV1Metrics.Metrics);
    return [
      ['memory.usage_in_bytes', String(m.memory?.usage?.usage ?? 0)],
      ['memory.limit_in_bytes', String(m.memory?.usage?.limit ?? 0)],
      ['memory.stat.cache', String(m.memory?.totalCache ?? 0)],
      ['cpuacct.usage', String(m.cpu?.usage?.total ?? 0)],
      ['cpuacct.usage_percpu', `[${(m.cpu?.usage?.perCpu ?? []).join(' ')}]`],
      ['pids.current', String(m.pids?.current ?? 0)],
      ['pids.limit', String(m.pids?.limit ?? 0)],
    ];
  }
  if (isAnyOf(any, cgroupsV2Metrics.Metrics)) {
    const m = unpackAny(any, cgroupsV2Metrics.Metrics);
    return [
      ['pids.current', String(m.pids?.current ?? 0)],
      ['pids.limit', String(m.pids?.limit ?? 0)],
      ['cpu.usage_usec', String(m.cpu?.usageUsec ?? 0)],
      ['cpu.user_usec', String(m.cpu?.userUsec ?? 0)],
      ['cpu.system_usec', String(m.cpu?.systemUsec ?? 0)],
      ['memory.usage', String(m.memory?.usage ?? 0)],
      ['memory.usage_limit', String(m.memory?.usageLimit ?? 0)],
      ['memory.swap_usage', String(m.memory?.swapUsage ?? 0)],
      ['memory.swap_limit', String(m.memory?.swapLimit ?? 0)],
    ];
  }
  return undefined;
}

/** `--format json` of a metric: the decoded cgroup message where we know it. */
function metricJson(metric: TaskMetric): Record<string, unknown> {
  const base = { id: metric.id, timestamp: metric.timestamp.toISOString(), type: metric.data?.typeUrl ?? '' };
  if (!metric.data) return base;
  const any = { typeUrl: metric.data.typeUrl, value: Buffer.from(metric.data.value) };
  if (isAnyOf(any, cgroupsV1Metrics.Metrics)) return { ...base, data: cgroupsV1Metrics.Metrics.toJSON(unpackAny(any, cgroupsV1Metrics.Metrics)) };
  if (isAnyOf(any, cgroupsV2Metrics.Metrics)) return { ...base, data: cgroupsV2Metrics.Metrics.toJSON(unpackAny(any, cgroupsV2Metrics.Metrics)) };
  return { ...base, size: metric.data.value.length };
}

/** ctr's `tasks` commands: list, start, attach, kill, exec, pause, resume, ps, metrics, rm. */
export function registerTaskCommands(program: Command, ctx: CommandContext, setExitCode: (code: number) => void): void {
  const tasks = program.command('tasks').aliases(['task', 't']).description('manage tasks');

  tasks
    .command('ls')
    .alias('list')
    .description('list tasks, optionally filtered')
    .argument('[filters...]')
    .option('-q, --quiet', 'print only the task ids')
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      const list = await ctx.withClient((c) => c.tasks.list(filters));
      if (opts.quiet) {
        for (const t of list) process.stdout.write(`${t.id}\n`);
        return;
      }
      printListing(ctx.options().format, ['TASK', 'PID', 'STATUS'], list, (t) => [t.id, String(t.pid), t.status.toUpperCase()]);
    });

  tasks
    .command('start')
    .description('start the task of a created container, attached unless -d')
    .argument('<id>')
    .option('-d, --detach', 'leave it running in the background')
    .option('-i, --interactive', 'attach stdin')
    .option('--fifo-dir <dir>', 'directory for the stdio FIFOs')
    .action(async (id: string, opts: { detach?: boolean; interactive?: boolean; fifoDir?: string }) => {
      const { containerSpec, runTask } = await loadBuiltins();
      await ctx.withClient(async (client) => {
        const tty = containerSpec(await client.containers.get(id)).process?.terminal ?? false;
        const attachStdin = !opts.detach && (opts.interactive || tty);
        setExitCode(await startAttached(client, id, runTask, { tty, attachStdin, detach: opts.detach, fifoDir: opts.fifoDir }));
      });
    });

  tasks
    .command('attach')
    .description('attach to the stdio of a running task and wait for it')
    .argument('<id>')
    .option('-i, --interactive', 'attach stdin (always with a terminal)')
    .action(async (id: string, opts: { interactive?: boolean }) => {
      const { attachTask } = await loadBuiltins();
      await ctx.withClient(async (client) => {
        const state = await client.tasks.get(id);
        const attachStdin = (opts.interactive || state.terminal) && Boolean(state.stdin);
        const terminal = bindTerminal(client, id, { tty: state.terminal, forwardSignals: true });
        try {
          await terminal.created();
          await terminal.started();
          const status = await attachTask(client, id, {
            stdin: attachStdin ? process.stdin : undefined,
            stdout: process.stdout,
            stderr: process.stderr,
          });
          setExitCode(exitCodeOf(status.exitStatus));
        } finally {
          terminal.restore();
          if (attachStdin) releaseStdin();
        }
      });
    });

  tasks
    .command('kill')
    .description('signal a task (SIGTERM unless -s)')
    .argument('<id>')
    .option('-s, --signal <signal>', 'signal name or number', 'SIGTERM')
    .option('-a, --all', 'signal every process of the container')
    .option('--exec-id <id>', 'signal this exec instead of the init process')
    .action(async (id: string, opts: { signal: string; all?: boolean; execId?: string }) => {
      const signal = signalNumber(opts.signal);
      await ctx.withClient((c) => c.tasks.kill(id, signal, { all: opts.all, execId: opts.execId }));
    });

  const exec = new ContainerCommandLine('exec', 1)
    .description('run another process in a running task and exit with its status')
    .argument('<id>')
    .argument('<command...>')
    .requiredOption('--exec-id <id>', 'id of the new process')
    .option('-t, --tty', 'allocate a terminal')
    .option('-i, --interactive', 'attach stdin')
    .option('--cwd <dir>', 'working directory')
    .option('--user <user>', 'user as name, uid, name:group or uid:gid')
    .option('--env <K=V>', 'environment variable (repeatable)', collect)
    .option('--fifo-dir <dir>', 'directory for the stdio FIFOs')
    .action(
      async (
        id: string,
        args: string[],
        opts: { execId: string; tty?: boolean; interactive?: boolean; cwd?: string; user?: string; env?: string[]; fifoDir?: string },
      ) => {
        const tty = opts.tty ?? false;
        const attachStdin = opts.interactive || tty;
        const { execInContainer } = await loadBuiltins();
        await ctx.withClient(async (client) => {
          const terminal = bindTerminal(client, id, { tty, forwardSignals: true, execId: opts.execId });
          try {
            const status = await execInContainer(client, {
              id,
              execId: opts.execId,
              args,
              env: opts.env,
              cwd: opts.cwd,
              user: opts.user,
              terminal: tty,
              fifoDir: opts.fifoDir,
              stdin: attachStdin ? process.stdin : undefined,
              stdout: process.stdout,
              stderr: process.stderr,
              onCreated: () => terminal.created(),
              onStarted: () => terminal.started(),
            });
            setExitCode(exitCodeOf(status.exitStatus));
          } finally {
            terminal.restore();
            if (attachStdin) releaseStdin();
          }
        });
      },
    );
  tasks.addCommand(exec);

  tasks
    .command('pause')
    .description('freeze every process of a task')
    .argument('<id>')
    .action(async (id: string) => {
      await ctx.withClient((c) => c.tasks.pause(id));
    });

  tasks
    .command('resume')
    .description('thaw a paused task')
    .argument('<id>')
    .action(async (id: string) => {
      await ctx.withClient((c) => c.tasks.resume(id));
    });

  tasks
    .command('ps')
    .description('list the processes of a task')
    .argument('<id>')
    .action(async (id: string) => {
      const pids = await ctx.withClient((c) => c.tasks.pids(id));
      printListing(ctx.options().format, ['PID', 'INFO'], pids.map((p: ProcessInfo) => ({ pid: p.pid, execId: execIdOf(p.info) })), (p) => [
        String(p.pid),
        p.execId || '-',
      ]);
    });

  tasks
    .command('metrics')
    .alias('metric')
    .description('print a task\'s cgroup figures: memory, cpu, pids')
    .argument('<id>')
    .action(async (id: string) => {
      const metrics = await ctx.withClient((c) => c.tasks.metrics([`id==${id}`]));
      const metric = metrics.find((m) => m.id === id) ?? metrics[0];
      if (!metric) throw new Error(`no metrics for task ${id}`);
      if (ctx.options().format === 'json') {
        process.stdout.write(`${JSON.stringify(metricJson(metric), null, 2)}\n`);
        return;
      }
      let out = formatTable(['ID', 'TIMESTAMP'], [[metric.id, metric.timestamp.toISOString()]]) + '\n';
      const rows = metricRows(metric.data);
      if (rows) out += formatTable(['METRIC', 'VALUE'], rows);
      else out += `${metric.data ? `${metric.data.typeUrl} (${metric.data.value.length} bytes)` : 'no data'}\n`;
      process.stdout.write(out);
    });

  tasks
    .command('rm')
    .aliases(['delete', 'del', 'remove'])
    .description('delete a stopped task (and its FIFOs); -f kills a running one first')
    .argument('<id>')
    .option('-f, --force', 'kill the task if it runs')
    .option('--exec-id <id>', 'delete this stopped exec instead')
    .action(async (id: string, opts: { force?: boolean; execId?: string }) => {
      const { deleteTask } = await loadBuiltins();
      await ctx.withClient(async (client) => {
        if (opts.execId) await client.tasks.deleteProcess(id, opts.execId);
        else await deleteTask(client, id, { force: opts.force });
      });
    });
}
