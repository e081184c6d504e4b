import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Readable } from 'stream';
import { createProcessIO, openProcessIO, removeProcessIO, type ProcessIOHandle } from './fifo-io';

function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (out += d));
    stream.on('end', () => resolve(out));
    stream.on('error', reject);
  });
}

/** Plays the shim: a shell that opens the other ends of the FIFOs. */
function shim(script: string, env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { env: { ...process.env, ...env }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

describe('createProcessIO', () => {
  let parent: string;
  const handles: ProcessIOHandle[] = [];

  beforeEach(() => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'fifo-io-'));
  });

  afterEach(async () => {
    await Promise.all(handles.splice(0).map((h) => h.close()));
    fs.rmSync(parent, { recursive: true, force: true });
  });

  const create = async (options: Parameters<typeof createProcessIO>[0]): Promise<ProcessIOHandle> => {
    const h = await createProcessIO({ dir: parent, ...options });
    handles.push(h);
    return h;
  };

  it('makes a private dir with the FIFOs asked for, and close removes it', async () => {
    const h = await create({ id: 'c1', stdin: true, stdout: true, stderr: true });
    expect(h.dir).toBeDefined();
    const dir = h.dir!;
    expect(path.dirname(dir)).toBe(parent);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(h.io).toEqual({
      terminal: false,
      stdin: path.join(dir, 'c1-stdin'),
      stdout: path.join(dir, 'c1-stdout'),
      stderr: path.join(dir, 'c1-stderr'),
    });
    for (const p of [h.io.stdin!, h.io.stdout!, h.io.stderr!]) expect(fs.statSync(p).isFIFO()).toBe(true);
    expect(h.stdin).toBeDefined();
    expect(h.stdout).toBeDefined();
    expect(h.stderr).toBeDefined();

    await h.close();
    await h.close();
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('makes no stderr FIFO for a terminal, and only the streams asked for', async () => {
    const tty = await create({ id: 't', stdin: true, stdout: true, stderr: true, terminal: true });
    expect(tty.io.terminal).toBe(true);
    expect(tty.io.stderr).toBeUndefined();
    expect(tty.stderr).toBeUndefined();
    expect(fs.readdirSync(tty.dir!).sort()).toEqual(['t-stdin', 't-stdout']);

    const outOnly = await create({ id: 'o', stdout: true });
    expect(outOnly.io).toEqual({ terminal: false, stdout: path.join(outOnly.dir!, 'o-stdout') });
    expect(outOnly.stdin).toBeUndefined();
  });

  it('carries stdout and stderr apart and ends them when the writer closes', async () => {
    const h = await create({ id: 'p', stdout: true, stderr: true });
    const out = readAll(h.stdout!);
    const err = readAll(h.stderr!);
    // A shim holds its write ends for the process's life, as this shell does with fds 4 and 5.
    const code = await shim('exec 4>"$OUT" 5>"$ERR"; echo to-out >&4; echo to-err >&5; echo more-out >&4', {
      OUT: h.io.stdout!,
      ERR: h.io.stderr!,
    });
    expect(code).toBe(0);
    expect(await err).toBe('to-err\n');
    expect(await out).toBe('to-out\nmore-out\n');
  });

  it('keeps what is written to stdin before the reader opens, and EOF follows our end', async () => {
    const h = await create({ id: 'i', stdin: true, stdout: true });
    h.stdin!.write('line one\n');
    let out = '';
    const ended = new Promise<void>((resolve) => h.stdout!.on('end', resolve));
    const ready = new Promise<void>((resolve) =>
      h.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.startsWith('ready\n')) resolve();
      }),
    );
    const code = shim('exec 3<"$IN" 4>"$OUT"; echo ready >&4; cat <&3 >&4', { IN: h.io.stdin!, OUT: h.io.stdout! });
    // Our end may close only once the reader has opened its end (for a task: after create).
    await ready;
    h.stdin!.end('line two\n');
    expect(await code).toBe(0);
    await ended;
    expect(out).toBe('ready\nline one\nline two\n');
  });

  it('opens without a peer and without tying up the event loop or the libuv pool', async () => {
    // More unread FIFOs than libuv has pool threads: blocking opens or reads would starve fs calls.
    const sets = await Promise.all(
      Array.from({ length: 6 }, (_, i) => create({ id: `n${i}`, stdin: true, stdout: true, stderr: true })),
    );
    for (const s of sets) s.stdout!.resume();
    const started = Date.now();
    await Promise.all(Array.from({ length: 8 }, () => fs.promises.readFile(__filename)));
    await new Promise((r) => setTimeout(r, 20));
    expect(Date.now() - started).toBeLessThan(2000);
    await Promise.all(sets.map((s) => s.close()));
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('leaves nothing behind when it fails', async () => {
    await expect(createProcessIO({ id: 'a/b', stdout: true, dir: parent })).rejects.toThrow(/invalid process id/);
    // A name longer than NAME_MAX makes mkfifo fail after the dir exists.
    await expect(createProcessIO({ id: 'x'.repeat(300), stdout: true, dir: parent })).rejects.toThrow(/ENAMETOOLONG/);
    await expect(createProcessIO({ id: 'ok', stdout: true, dir: path.join(parent, 'missing') })).rejects.toThrow();
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('close works while a shim still holds the other end', async () => {
    const h = await create({ id: 'busy', stdin: true, stdout: true });
    const hold = spawn('sh', ['-c', 'exec 3<"$IN" 4>"$OUT"; sleep 5'], {
      env: { ...process.env, IN: h.io.stdin!, OUT: h.io.stdout! },
      stdio: 'ignore',
    });
    try {
      await new Promise((r) => setTimeout(r, 100));
      await h.close();
      expect(fs.existsSync(h.dir!)).toBe(false);
    } finally {
      hold.kill('SIGKILL');
    }
  });
});

describe('openProcessIO and removeProcessIO', () => {
  let parent: string;

  beforeEach(() => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'fifo-io-'));
  });

  afterEach(() => fs.rmSync(parent, { recursive: true, force: true }));

  it('attaches to FIFOs left by release, then removes them and their dir', async () => {
    const first = await createProcessIO({ id: 'd', stdin: true, stdout: true, dir: parent });
    const io = first.io;
    await first.release();
    expect(fs.statSync(io.stdout!).isFIFO()).toBe(true);

    const attached = openProcessIO(io);
    let out = '';
    const ended = new Promise<void>((resolve) => attached.stdout!.on('end', resolve));
    attached.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out === 'ready\n') attached.stdin!.end('attached input\n');
    });
    expect(await shim('exec 3<"$IN" 4>"$OUT"; echo ready >&4; cat <&3 >&4', { IN: io.stdin!, OUT: io.stdout! })).toBe(0);
    await ended;
    expect(out).toBe('ready\nattached input\n');
    await attached.close();
    // Attaching does not own the FIFOs.
    expect(fs.statSync(io.stdin!).isFIFO()).toBe(true);

    await removeProcessIO(io);
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('release leaves output nobody read in the FIFO for a later attach', async () => {
    const first = await createProcessIO({ id: 'early', stdout: true, dir: parent });
    const io = first.io;
    // The shim holds its write end for the process's life and writes before anyone attaches.
    const writer = spawn('sh', ['-c', 'exec 4>"$OUT"; echo written-while-detached >&4; sleep 1; echo later >&4'], {
      env: { ...process.env, OUT: io.stdout! },
      stdio: 'ignore',
    });
    try {
      await new Promise((r) => setTimeout(r, 300));
      await first.release();
      const attached = openProcessIO(io);
      expect(await readAll(attached.stdout!)).toBe('written-while-detached\nlater\n');
      await attached.close();
    } finally {
      writer.kill('SIGKILL');
      await removeProcessIO(io);
    }
  });

  it('leaves regular files and foreign dirs alone', async () => {
    const file = path.join(parent, 'log.txt');
    fs.writeFileSync(file, 'x');
    await removeProcessIO({ stdout: file, stderr: 'binary:///bin/logger' });
    expect(fs.existsSync(file)).toBe(true);
  });
});
