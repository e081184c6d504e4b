import { execFile, spawn } from 'child_process';
import type { RunResult } from '../harness/process';

/** A mount command as ctr prints it: `mount -t <type> <source> <target> -o <options>`. */
export interface PrintedMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export function parseMountCommands(stdout: string): PrintedMount[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('mount '))
    .map((line) => {
      const m = /^mount -t (\S+) (\S+) (\S+) -o (\S+)$/.exec(line.trim());
      if (!m) throw new Error(`unexpected mount line: ${line}`);
      return { type: m[1], source: m[2], target: m[3], options: m[4].split(',') };
    });
}

/** Runs what ctr printed with util-linux's mount(8): nothing of berth is involved. */
export async function mountWithMount8(printed: PrintedMount): Promise<void> {
  // mount(8) takes bind mounts as an option (`rbind`), not as a type.
  const args = [
    ...(printed.type === 'bind' ? [] : ['-t', printed.type]),
    '-o',
    printed.options.join(','),
    printed.source,
    printed.target,
  ];
  const result = await host('mount', args);
  if (result.code !== 0) throw new Error(`mount ${args.join(' ')} failed: ${result.stderr}`);
}

/** Runs ctr and keeps its stdout as bytes (for tar output). */
export function ctrBytes(address: string, args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ctr', ['-a', address, ...args], {
      env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

export async function umount(target: string): Promise<void> {
  const result = await host('umount', [target]);
  if (result.code !== 0) throw new Error(`umount ${target} failed: ${result.stderr}`);
}

/**
 * Runs a host tool (mount, umount, tar) with no stdin: the harness's run()
 * writes to stdin, which races a tool that exits at once (EPIPE).
 */
export function host(command: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      if (err && typeof err.code === 'string') reject(err);
      else resolve({ code, signal: null, stdout, stderr });
    });
  });
}

export function ok(result: RunResult): string {
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** `ctr snapshots ls` rows: KEY PARENT KIND (parent may be empty). */
export function parseList(stdout: string): { key: string; parent: string; kind: string }[] {
  const [header, ...lines] = stdout.trimEnd().split('\n');
  expect(header).toMatch(/^KEY\s+PARENT\s+KIND\s*$/);
  const parentAt = header.indexOf('PARENT');
  const kindAt = header.indexOf('KIND');
  return lines.map((line) => ({
    key: line.slice(0, parentAt).trim(),
    parent: line.slice(parentAt, kindAt).trim(),
    kind: line.slice(kindAt).trim(),
  }));
}
