import { constants } from 'os';
import { Command, Option, type ParseOptionsResult } from 'commander';
import { type Berth, InvalidArgumentError } from '@berth/core';
import type { NewContainerOptions, TaskStdioOptions } from '@berth/builtins';
import type { SpecMount } from '@berth/oci';
import { packAny, runcOptionsV1 } from '@berth/proto';
import type { CommandContext } from '../cli';
import { parseKeyValues } from '../output';

/**
 * @berth/builtins loads every built-in plugin; only the commands that run
 * containers pay for that, when they run.
 */
export function loadBuiltins(): Promise<typeof import('@berth/builtins')> {
  return import('@berth/builtins');
}

/**
 * A command whose first `leadingOperands` arguments are its own and the rest
 * a command line for a container (`run IMAGE ID CMD...`, `exec ID CMD...`).
 * Options are read only up to that command line, as ctr does, so that
 * `run IMAGE ID ls -d /` passes `-d` to ls. Options of the berth program
 * itself (-a, -n, -v, --format, --timeout) are taken by the program wherever
 * they stand; put `--` before a command line that uses those letters.
 */
export class ContainerCommandLine extends Command {
  constructor(
    name: string,
    private readonly leadingOperands: number,
  ) {
    super(name);
  }

  override parseOptions(argv: string[]): ParseOptionsResult {
    // The parent hands us only what followed its first unknown option; the
    // operands before that (already in its args) count towards ours.
    const parentArgs = this.parent?.args ?? [];
    const before = parentArgs.length - 1 - argv.length;
    const tailMatches = before >= 0 && argv.every((arg, i) => parentArgs[before + 1 + i] === arg);
    let operands = tailMatches ? before : 0;
    const head: string[] = [];
    let i = 0;
    for (; i < argv.length && operands < this.leadingOperands; i++) {
      const arg = argv[i];
      if (arg === '--') break;
      if (arg.startsWith('-') && arg.length > 1) {
        const eq = arg.indexOf('=');
        const name = eq > 0 ? arg.slice(0, eq) : arg;
        const option = this.options.find((o) => o.short === name || o.long === name);
        if (option) {
          head.push(arg);
          if (option.required && eq < 0 && i + 1 < argv.length) head.push(argv[++i]);
          continue;
        }
        if (this.isShortFlagGroup(arg)) {
          head.push(arg);
          continue;
        }
        // An unknown option: commander reports it.
        head.push(arg);
        continue;
      }
      head.push(arg);
      operands++;
    }
    const parsed = super.parseOptions(head);
    const rest = argv.slice(i);
    if (rest[0] === '--') rest.shift();
    return { operands: [...parsed.operands, ...rest], unknown: parsed.unknown };
  }

  /** `-it`: boolean short options run together. */
  private isShortFlagGroup(arg: string): boolean {
    if (!/^-[A-Za-z]{2,}$/.test(arg)) return false;
    return [...arg.slice(1)].every((c) => this.options.some((o) => o.short === `-${c}` && !o.required && !o.optional));
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `type=bind,src=/a,dst=/b,options=rbind:ro`, as ctr's --mount. */
export function parseMountFlag(text: string): SpecMount {
  const mount: SpecMount = { destination: '' };
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`invalid mount ${JSON.stringify(text)}: ${JSON.stringify(part)} is not key=value`);
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    switch (key) {
      case 'type':
        mount.type = value;
        break;
      case 'src':
      case 'source':
        mount.source = value;
        break;
      case 'dst':
      case 'destination':
      case 'target':
        mount.destination = value;
        break;
      case 'options':
        mount.options = value.split(':').filter(Boolean);
        break;
      default:
        throw new InvalidArgumentError(`invalid mount ${JSON.stringify(text)}: unknown key ${JSON.stringify(key)}`);
    }
  }
  if (!mount.destination) throw new InvalidArgumentError(`invalid mount ${JSON.stringify(text)}: no dst`);
  return mount;
}

/** Flags shared by `run` and `containers create`. */
export interface ContainerFlags {
  tty?: boolean;
  env?: string[];
  mount?: string[];
  label?: string[];
  netHost?: boolean;
  readOnly?: boolean;
  privileged?: boolean;
  user?: string;
  cwd?: string;
  hostname?: string;
  runtime: string;
  runcBinary?: string;
  snapshotter?: string;
  platform?: string;
  plainHttp?: boolean;
  hostsDir?: string;
  skipVerify?: boolean;
}

function addContainerFlags(cmd: Command): Command {
  return cmd
    .option('-t, --tty', 'allocate a terminal')
    .option('--env <K=V>', 'environment variable (repeatable)', collect)
    .option('--mount <spec>', 'mount, e.g. type=bind,src=/a,dst=/b,options=rbind:ro (repeatable)', collect)
    .option('--label <K=V>', 'container label (repeatable)', collect)
    .option('--net-host', 'use the host\'s network namespace')
    .option('--read-only', 'make the root filesystem read-only')
    .option('--privileged', 'every capability, all devices, no seccomp')
    .option('--user <user>', 'user as name, uid, name:group or uid:gid')
    .option('--cwd <dir>', 'working directory')
    .option('--hostname <name>', 'hostname inside the container')
    .addOption(new Option('--runtime <name>', 'runtime name or absolute path of a v2 shim').default('io.containerd.runc.v2'))
    .option('--runc-binary <path>', 'OCI runtime binary for the runc shim (e.g. crun)')
    .addOption(new Option('--snapshotter <name>', 'snapshotter for the rootfs (default overlayfs)').env('BERTH_SNAPSHOTTER'))
    .option('--platform <os/arch>', 'platform of the image to run (default: the host\'s)')
    .option('--plain-http', 'pull a missing image over plain HTTP')
    .option('--hosts-dir <dir>', 'directory of certs.d/<host>/hosts.toml files for the pull')
    .option('-k, --skip-verify', 'skip TLS verification when pulling');
}

function containerOptions(image: string, id: string, args: string[], flags: ContainerFlags): NewContainerOptions {
  return {
    id,
    image,
    args: args.length > 0 ? args : undefined,
    env: flags.env,
    mounts: flags.mount?.map(parseMountFlag),
    labels: flags.label ? parseKeyValues(flags.label) : undefined,
    hostNetwork: flags.netHost,
    readonlyRootfs: flags.readOnly,
    privileged: flags.privileged,
    user: flags.user,
    cwd: flags.cwd,
    hostname: flags.hostname,
    terminal: flags.tty,
    runtime: flags.runtime,
    runtimeOptions: flags.runcBinary
      ? packAny(runcOptionsV1.Options, runcOptionsV1.Options.fromPartial({ binaryName: flags.runcBinary }))
      : undefined,
    snapshotter: flags.snapshotter,
    platform: flags.platform,
    pull: { registry: { plainHttp: flags.plainHttp, hostsDir: flags.hostsDir, skipVerify: flags.skipVerify } },
  };
}

const forwardedSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/**
 * Wires the terminal and signals of this CLI to task `id` while it runs:
 * raw stdin (from now on), the window size (`created`, then on SIGWINCH
 * from `started`) and signals forwarded (from `created`, held until `started`); `restore` undoes it.
 */
export function bindTerminal(
  client: Berth,
  id: string,
  options: { tty: boolean; forwardSignals: boolean; execId?: string },
): { created(): Promise<void>; started(): Promise<void>; restore(): void } {
  // Raw before the task exists, as ctr does: a ^D typed (or sent by a pty
  // proxy) before would read as EOF and close the container's terminal.
  const rawMode = options.tty && process.stdin.isTTY === true;
  if (rawMode) process.stdin.setRawMode(true);
  const handlers: [NodeJS.Signals, () => void][] = [];
  const resize = async () => {
    const { columns, rows } = process.stdout;
    if (!columns || !rows) return;
    await client.tasks.resizePty(id, columns, rows, options.execId).catch(() => undefined);
  };
  // Signals are ours from create on: one that lands between create and start
  // (the container may already print) is held and sent once the task runs.
  let running = false;
  const held: NodeJS.Signals[] = [];
  const forward = (name: NodeJS.Signals) =>
    void client.tasks.kill(id, signalNumber(name), { execId: options.execId }).catch(() => undefined);
  return {
    // Sized before start, so the process never sees a 0x0 terminal.
    async created() {
      if (options.forwardSignals) {
        for (const name of forwardedSignals) {
          const onSignal = () => (running ? forward(name) : held.push(name));
          process.on(name, onSignal);
          handlers.push([name, onSignal]);
        }
      }
      if (options.tty) await resize();
    },
    async started() {
      running = true;
      for (const name of held.splice(0)) forward(name);
      if (options.tty) {
        const onWinch = () => void resize();
        process.on('SIGWINCH', onWinch);
        handlers.push(['SIGWINCH', onWinch]);
      }
    },
    restore() {
      for (const [name, handler] of handlers) process.off(name, handler);
      if (rawMode) process.stdin.setRawMode(false);
    },
  };
}

/**
 * Starts a created container's task with this terminal's stdio (none when
 * detached), signals forwarded, and returns the exit code for the CLI.
 */
export async function startAttached(
  client: Berth,
  id: string,
  runTask: (berth: Berth, id: string, options: TaskStdioOptions) => Promise<{ exitStatus?: number }>,
  options: { tty: boolean; attachStdin: boolean; detach?: boolean; fifoDir?: string },
): Promise<number> {
  const terminal = options.detach ? undefined : bindTerminal(client, id, { tty: options.tty, forwardSignals: true });
  try {
    const result = await runTask(client, id, {
      detach: options.detach,
      fifoDir: options.fifoDir,
      stdin: options.attachStdin ? process.stdin : undefined,
      stdout: options.detach ? undefined : process.stdout,
      stderr: options.detach ? undefined : process.stderr,
      onCreated: () => terminal?.created(),
      onStarted: () => terminal?.started(),
    });
    return exitCodeOf(result.exitStatus ?? 0);
  } finally {
    terminal?.restore();
    if (options.attachStdin) releaseStdin();
  }
}

/** `9`, `KILL`, `SIGKILL`, `sigkill` → 9. */
export function signalNumber(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const upper = text.toUpperCase();
  const name = (upper.startsWith('SIG') ? upper : `SIG${upper}`) as NodeJS.Signals;
  const number = constants.signals[name];
  if (number === undefined) throw new InvalidArgumentError(`unknown signal ${JSON.stringify(text)}`);
  return number;
}

/** Lets the CLI exit once the container is done with our stdin. */
export function releaseStdin(): void {
  process.stdin.unpipe();
  process.stdin.pause();
  process.stdin.destroy();
}

/** The exit code of a process that ended with `status` (containerd reports 128+signal already). */
export function exitCodeOf(status: number): number {
  return status > 255 ? 255 : status;
}

/**
 * `berth run`: creates a container from an image (pulled when missing) and
 * runs its task attached, like `ctr run`; the CLI exits with its status.
 */
export function registerRunCommand(program: Command, ctx: CommandContext, setExitCode: (code: number) => void): void {
  const run = new ContainerCommandLine('run', 2)
    .description('run a container from an image (pulled when missing), attached unless -d')
    .argument('<image>')
    .argument('<id>')
    .argument('[command...]', 'command line, replacing the image\'s')
    .option('--rm', 'remove the container and its snapshot when it exits')
    .option('-d, --detach', 'leave it running in the background and print nothing')
    .option('-i, --interactive', 'attach stdin')
    .option('--fifo-dir <dir>', 'directory for the stdio FIFOs');
  addContainerFlags(run).action(
    async (image: string, id: string, args: string[], flags: ContainerFlags & { rm?: boolean; detach?: boolean; interactive?: boolean; fifoDir?: string }) => {
      if (flags.rm && flags.detach) throw new InvalidArgumentError('--rm and --detach cannot be used together');
      const tty = flags.tty ?? false;
      const attachStdin = !flags.detach && (flags.interactive || tty);
      const { newContainer, removeContainer, runTask } = await loadBuiltins();
      await ctx.withClient(async (client) => {
        // The container first: a pull may take a while, and ^C should stop it.
        await newContainer(client, containerOptions(image, id, args, flags));
        try {
          setExitCode(await startAttached(client, id, runTask, { tty, attachStdin, detach: flags.detach, fifoDir: flags.fifoDir }));
        } finally {
          if (flags.rm) await removeContainer(client, id, { force: true });
        }
      });
    },
  );
  program.addCommand(run);
}

/**
 * Adds `create IMAGE ID [CMD...]` (the container only, no task; `run`'s
 * flags without --rm and -d) to `parent`, e.g. `berth containers`.
 */
export function addContainerCreateCommand(parent: Command, ctx: CommandContext): Command {
  const create = new ContainerCommandLine('create', 2)
    .description('create a container from an image (pulled when missing); start it with tasks start')
    .argument('<image>')
    .argument('<id>')
    .argument('[command...]', 'command line, replacing the image\'s');
  addContainerFlags(create).action(async (image: string, id: string, args: string[], flags: ContainerFlags) => {
    const { newContainer } = await loadBuiltins();
    await ctx.withClient((client) => newContainer(client, containerOptions(image, id, args, flags)));
  });
  parent.addCommand(create);
  return create;
}
