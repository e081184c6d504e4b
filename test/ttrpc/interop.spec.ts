// Interop with Go ttrpc: a real containerd 1.6 (events) and a real
// containerd-shim-runc-v2 (Task API). Needs root and the Debian containerd package.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NotFoundError, UnavailableError } from '@berth/core';
import { containerdEvents, eventsTtrpcV1, packAny, shimTaskV2 } from '@berth/proto';
import { TtrpcConnection } from '@berth/ttrpc';
import { describeAsRoot } from '../harness/root';


const NAMESPACE_KEY = 'containerd-namespace-ttrpc';

/** A child's output so far, kept for assertions and failure messages. */
function collect(child: ChildProcess): { text: () => string } {
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { text: () => text };
}

async function waitUntil(what: string, condition: () => boolean, timeoutMs: number, details = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${details()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Alive and not a zombie (pid 1 here may never reap re-parented shims). */
function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Running processes with `arg` among their arguments. */
function processesWithArgument(arg: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.includes(arg) && isRunning(Number(entry))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited(child);
  clearTimeout(timer);
}

describeAsRoot('ttrpc interop with Go ttrpc', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  const connections: TtrpcConnection[] = [];
  const cleanups: (() => void)[] = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ttrpc-go-'));
  });

  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.close();
    for (const cleanup of cleanups.splice(0)) cleanup();
    // Stop in reverse start order: clients (ctr, cat) before the daemon they talk to.
    for (const child of children.splice(0).reverse()) await stop(child);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('forwards an event to a real containerd over <address>.ttrpc, seen by `ctr events`', async () => {
    const address = path.join(dir, 'containerd.sock');
    const config = path.join(dir, 'config.toml');
    fs.writeFileSync(
      config,
      [
        'version = 2',
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = ${JSON.stringify(path.join(dir, 'opt'))}`,
        '',
      ].join('\n'),
    );
    const containerd = spawn(
      'containerd',
      ['--root', path.join(dir, 'root'), '--state', path.join(dir, 'state'), '--address', address, '--config', config],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(containerd);
    const daemonLog = collect(containerd);
    await waitUntil('containerd sockets', () => fs.existsSync(address) && fs.existsSync(`${address}.ttrpc`), 30_000, daemonLog.text);

    const ctr = spawn('ctr', ['-a', address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(ctr);
    const ctrOutput = collect(ctr);

    const connection = await TtrpcConnection.connect(`unix://${address}.ttrpc`);
    connections.push(connection);
    const events = connection.client(eventsTtrpcV1.EventsDefinition, {
      metadata: { [NAMESPACE_KEY]: 'berth-ttrpc' },
    });
    // `ctr events` subscribes some time after it starts; forward until it reports the event.
    const seen = () => ctrOutput.text().includes('/tasks/oom');
    for (let attempt = 0; attempt < 20 && !seen(); attempt++) {
      await events.forward(
        {
          envelope: {
            timestamp: new Date(),
            namespace: 'berth-ttrpc',
            topic: '/tasks/oom',
            event: packAny(containerdEvents.TaskOOM, { containerId: 'oom-probe' }),
          },
        },
        { timeoutMs: 5000 },
      );
      await waitUntil('ctr events output', seen, 500).catch(() => undefined);
    }
    const line = ctrOutput
      .text()
      .split('\n')
      .find((l) => l.includes('/tasks/oom'));
    expect(line).toBeDefined();
    expect(line).toContain('berth-ttrpc');
    expect(line).toContain('oom-probe');
  });

  it('drives a real containerd-shim-runc-v2: State NotFound, Connect, Shutdown', async () => {
    const bundle = path.join(dir, 'bundle');
    fs.mkdirSync(bundle);
    // The shim reads the spec's annotations to pick its group; an empty spec will do.
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2' }));
    // The shim daemon writes its log into <bundle>/log, a FIFO containerd reads.
    expect(spawnSync('mkfifo', [path.join(bundle, 'log')]).status).toBe(0);
    const logReader = spawn('cat', ['log'], { cwd: bundle, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(logReader);
    const shimLog = collect(logReader);

    const fakeAddress = path.join(dir, 'containerd.sock');
    const start = spawn(
      'containerd-shim-runc-v2',
      ['-namespace', 'berth-ttrpc', '-address', fakeAddress, '-publish-binary', '/bin/true', '-id', 't1', 'start'],
      { cwd: bundle, env: { ...process.env, TTRPC_ADDRESS: `${fakeAddress}.ttrpc` }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const startOutput = collect(start);
    const code = await new Promise<number | null>((resolve) => start.once('exit', resolve));

    // Whatever happens next, the daemonized shim must not outlive the test. It
    // is the process whose arguments name our (unique) fake containerd address.
    const shimAddress = startOutput.text().trim();
    cleanups.push(() => {
      for (const pid of processesWithArgument(fakeAddress)) process.kill(pid, 'SIGKILL');
      if (shimAddress.startsWith('unix://')) fs.rmSync(shimAddress.slice('unix://'.length), { force: true });
    });
    expect({ code, output: startOutput.text() }).toMatchObject({ code: 0 });
    expect(shimAddress).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    const [shimPid, ...others] = processesWithArgument(fakeAddress);
    expect(others).toEqual([]);

    const connection = await TtrpcConnection.connect(shimAddress, { timeoutMs: 5000 });
    connections.push(connection);
    const task = connection.client(shimTaskV2.TaskDefinition, { metadata: { [NAMESPACE_KEY]: 'berth-ttrpc' } });

    const notFound = await task.state({ id: 'nope' }).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(NotFoundError);

    const connected = await task.connect({ id: 't1' });
    expect(connected.shimPid).toBe(shimPid);
    expect(isRunning(shimPid)).toBe(true);

    // The shim may exit before its answer leaves; a closed connection is fine here.
    await task.shutdown({ id: 't1', now: true }).catch((err: unknown) => {
      if (!(err instanceof UnavailableError)) throw err;
    });
    await waitUntil(`shim pid ${shimPid} to exit`, () => !isRunning(shimPid), 10_000, shimLog.text);
    await connection.closed;
  });
});
