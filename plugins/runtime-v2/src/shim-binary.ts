import { spawn } from 'child_process';
import {
  AnyMessage,
  BerthError,
  DeadlineExceededError,
  DeletedProcess,
  InvalidArgumentError,
  NotImplementedError,
} from '@berth/core';
import { Any, isUnsetTime, shimTaskV2 } from '@berth/proto';

/** How to invoke one task's shim binary; the flags containerd passes to every v2 shim. */
export interface ShimInvocation {
  shimPath: string;
  namespace: string;
  id: string;
  bundlePath: string;
  /** `-address`: the daemon's gRPC address (the runc shim derives its socket name from it). */
  address: string;
  /** `-publish-binary`. */
  publishBinary: string;
  /** Exported to the shim as TTRPC_ADDRESS: where it forwards its events. */
  ttrpcAddress: string;
  debug: boolean;
  /** How long `start`/`delete` may take; default 30 s. */
  timeoutMs?: number;
}

interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function commonFlags(shim: ShimInvocation): string[] {
  return ['-namespace', shim.namespace, '-address', shim.address, '-publish-binary', shim.publishBinary, '-id', shim.id];
}

function shimEnv(shim: ShimInvocation): NodeJS.ProcessEnv {
  // GOMAXPROCS=2 as containerd sets it: a shim needs little parallelism, and there is one per task.
  return { ...process.env, TTRPC_ADDRESS: shim.ttrpcAddress, GOMAXPROCS: '2' };
}

function runShimCommand(shim: ShimInvocation, args: string[], input: Uint8Array): Promise<CommandResult> {
  const timeoutMs = shim.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(shim.shimPath, args, { cwd: shim.bundlePath, env: shimEnv(shim), stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stderr = '';
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      // A grandchild may still hold the pipes open; do not wait for them.
      child.stdout.destroy();
      child.stderr.destroy();
      settle(() => reject(new DeadlineExceededError(`${describe(shim, args)}: no answer within ${timeoutMs} ms`)));
    }, timeoutMs);
    child.once('error', (err) =>
      settle(() => reject(new BerthError('unknown', `${describe(shim, args)}: ${err.message}`, { cause: err }))),
    );
    child.once('close', (code, signal) => settle(() => resolve({ code, signal, stdout: Buffer.concat(stdout), stderr })));
    child.stdin.on('error', () => undefined); // a shim that ignores its stdin must not fail the call with EPIPE
    child.stdin.end(Buffer.from(input));
  });
}

function describe(shim: ShimInvocation, args: string[]): string {
  return `shim ${args[args.length - 1]} for task ${shim.namespace}/${shim.id} (${shim.shimPath})`;
}

function failure(shim: ShimInvocation, args: string[], result: CommandResult): BerthError {
  const why = result.signal ? `killed by ${result.signal}` : `exit status ${result.code}`;
  const output = [result.stderr.trim(), result.stdout.toString('utf8').trim()].filter(Boolean).join('; ');
  return new BerthError('unknown', `${describe(shim, args)} failed (${why})${output ? `: ${output}` : ''}`);
}

/**
 * The ttrpc address a shim's `start` printed: a plain address, or the JSON
 * bootstrap `{"version":2,"address":…,"protocol":"ttrpc"}` of newer shims.
 */
export function parseShimAddress(stdout: string): string {
  const text = stdout.trim();
  if (!text) throw new InvalidArgumentError('shim start printed no address');
  if (!text.startsWith('{')) return text;
  let bootstrap: { version?: unknown; address?: unknown; protocol?: unknown };
  try {
    bootstrap = JSON.parse(text) as typeof bootstrap;
  } catch (err) {
    throw new InvalidArgumentError(`shim start printed malformed bootstrap JSON: ${text}`, { cause: err });
  }
  if (typeof bootstrap.version === 'number' && bootstrap.version > 2) {
    throw new NotImplementedError(`shim bootstrap version ${bootstrap.version} is not supported (at most 2)`);
  }
  if (bootstrap.protocol !== undefined && bootstrap.protocol !== 'ttrpc') {
    throw new NotImplementedError(`shim protocol ${JSON.stringify(bootstrap.protocol)} is not supported (only ttrpc)`);
  }
  if (typeof bootstrap.address !== 'string' || !bootstrap.address) {
    throw new InvalidArgumentError(`shim bootstrap has no address: ${text}`);
  }
  return bootstrap.address;
}

/**
 * Runs `<shim> … start` in the bundle with the runtime options on stdin and
 * returns the ttrpc address it prints. The shim daemonizes; its `start` exits.
 */
export async function startShim(shim: ShimInvocation, runtimeOptions?: AnyMessage): Promise<string> {
  const args = [...commonFlags(shim), ...(shim.debug ? ['-debug'] : []), 'start'];
  const input = runtimeOptions
    ? Any.encode({ typeUrl: runtimeOptions.typeUrl, value: Buffer.from(runtimeOptions.value) }).finish()
    : new Uint8Array(0);
  const result = await runShimCommand(shim, args, input);
  if (result.code !== 0) throw failure(shim, args, result);
  return parseShimAddress(result.stdout.toString('utf8'));
}

/**
 * Runs `<shim> … -bundle B delete`: the shim kills what is left of the task,
 * unmounts its rootfs and prints a protobuf DeleteResponse. Safe to repeat.
 */
export async function deleteShim(shim: ShimInvocation): Promise<DeletedProcess> {
  const args = [...commonFlags(shim), '-bundle', shim.bundlePath, ...(shim.debug ? ['-debug'] : []), 'delete'];
  const result = await runShimCommand(shim, args, new Uint8Array(0));
  if (result.code !== 0) throw failure(shim, args, result);
  const response = shimTaskV2.DeleteResponse.decode(result.stdout);
  return {
    pid: response.pid,
    exitStatus: response.exitStatus,
    exitedAt: isUnsetTime(response.exitedAt) ? new Date() : (response.exitedAt as Date),
  };
}
