import * as fs from 'fs';
import { Writable } from 'stream';
import { type Berth, connect } from '@berth/core';
import { runContainer } from '@berth/builtins';
import { berthBin } from '../harness/daemon';
import { run, type RunResult } from '../harness/process';
import { describeAsRoot } from '../harness/root';
import {
  type AcceptanceSetup,
  chainIds,
  DEFAULT_FIFO_ROOT,
  entries,
  distinctEvents,
  eventually,
  EventsWatcher,
  fifosOf,
  mountsUnder,
  ok,
  parseSnapshotTable,
  parseTaskTable,
  runtimeRootDir,
  runtimeStateDir,
  shimPids,
  shimSocketPath,
  startSetup,
  teardown,
  uniqueName,
} from './helpers';

const NS = uniqueName('acc-load');
const FACADE_COUNT = 50;
const CLI_COUNT = 10;
// Ids unique to this run: teardown looks for FIFOs by these names in the shared default FIFO root.
const suffix = NS.slice(NS.lastIndexOf('-') + 1);
const facadeIds = Array.from({ length: FACADE_COUNT }, (_, i) => `l${i}-${suffix}`);
const cliIds = Array.from({ length: CLI_COUNT }, (_, i) => `cli${i}-${suffix}`);
// Generous: node processes and shims share 2 cores (the harness's berth() stops at 30 s).
const CLI_TIMEOUT_MS = 120_000;

/** A Writable that keeps what it is given. */
function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

interface Outcome {
  id: string;
  exitStatus?: number;
  stdout: string;
  stderr: string;
  error?: string;
}

// Many containers at once through one daemon: every one runs to completion
// with its own output, and once they are done the host is as it was before.
describeAsRoot('acceptance: load', () => {
  let setup: AcceptanceSetup;
  let client: Berth;
  let watcher: EventsWatcher | undefined;

  beforeAll(async () => {
    setup = await startSetup([NS]);
    client = await connect(setup.daemon.address, { namespace: NS });
    watcher = await EventsWatcher.start(setup.daemon.address, NS, ['/tasks/exit'], client);
  }, 120_000);

  afterAll(async () => {
    watcher?.stop();
    await client?.close().catch(() => undefined);
    await teardown(setup ?? {}, [NS], [...facadeIds, ...cliIds]);
  }, 180_000);

  const berth = (...args: string[]) => setup.daemon.berth('-n', NS, ...args);

  /** Every run of `ids` published its exit with status 0, and nothing of any of them is left. */
  async function expectCleanAfter(ids: string[]): Promise<void> {
    await eventually(`${ids.length} /tasks/exit events`, () => ids.every((id) => watcher!.on('/tasks/exit').some((e) => e.event.containerId === id)), 20_000);
    const exits = distinctEvents(watcher!.on('/tasks/exit').filter((e) => ids.includes(e.event.containerId as string)));
    expect(exits.map((e) => e.event.containerId).sort()).toEqual([...ids].sort());
    expect(exits.filter((e) => (e.event.exitStatus ?? 0) !== 0)).toEqual([]);

    expect(parseTaskTable(ok(await berth('tasks', 'ls')))).toEqual([]);
    expect(ok(await berth('containers', 'ls', '-q'))).toBe('');
    const snapshots = parseSnapshotTable(ok(await berth('snapshots', 'ls')));
    expect(snapshots.map((s) => s.key).sort()).toEqual(chainIds(setup.fixtures.busybox.diffIds).sort());
    expect(snapshots.every((s) => s.kind === 'Committed')).toBe(true);

    await eventually('every shim of the namespace to exit', () => shimPids(NS).length === 0, 20_000);
    expect(mountsUnder(setup.daemon.dir)).toEqual([]);
    expect(entries(setup.fifoRoot)).toEqual([]);
    expect(fifosOf(DEFAULT_FIFO_ROOT, ids)).toEqual([]);
    expect(ids.map((id) => shimSocketPath(setup.daemon.address, NS, id)).filter((socket) => fs.existsSync(socket))).toEqual([]);
    expect(entries(runtimeStateDir(setup.daemon, NS))).toEqual([]);
    expect(entries(runtimeRootDir(setup.daemon, NS))).toEqual([]);
    expect(setup.daemon.process.exitCode).toBeNull();
  }

  it(`${FACADE_COUNT} containers at once through the remote facade (runContainer --rm): all exit 0 with their own output; nothing leaks`, async () => {
    const started = Date.now();
    const outcomes: Outcome[] = await Promise.all(
      facadeIds.map(async (id, i) => {
        const stdout = collector();
        const stderr = collector();
        try {
          const result = await runContainer(client, {
            id,
            image: setup.image,
            args: ['sh', '-c', `echo ${id} $((${i}*${i}))`],
            rm: true,
            stdout: stdout.stream,
            stderr: stderr.stream,
            fifoDir: setup.fifoRoot,
          });
          return { id, exitStatus: result.exitStatus, stdout: stdout.text(), stderr: stderr.text() };
        } catch (err) {
          return { id, stdout: stdout.text(), stderr: stderr.text(), error: String(err) };
        }
      }),
    );
    process.stdout.write(`${FACADE_COUNT} concurrent runContainer: ${Date.now() - started} ms\n`);
    const wrong = outcomes.filter((o, i) => o.error !== undefined || o.exitStatus !== 0 || o.stdout !== `${o.id} ${i * i}\n` || o.stderr !== '');
    expect(wrong).toEqual([]);
    await expectCleanAfter(facadeIds);
  }, 180_000);

  it(`${CLI_COUNT} berth run --rm processes at once: all exit 0 with their own output; nothing leaks`, async () => {
    const started = Date.now();
    const results: RunResult[] = await Promise.all(
      cliIds.map((id, i) =>
        run(
          process.execPath,
          [berthBin, '-a', setup.daemon.address, '-n', NS, 'run', '--rm', '--fifo-dir', setup.fifoRoot, setup.image, id, 'sh', '-c', `echo ${id} $((${i}*${i}))`],
          { timeoutMs: CLI_TIMEOUT_MS },
        ),
      ),
    );
    process.stdout.write(`${CLI_COUNT} concurrent berth run --rm: ${Date.now() - started} ms\n`);
    const wrong = results.map((r, i) => ({ id: cliIds[i]!, ...r })).filter((r, i) => r.code !== 0 || r.stdout !== `${r.id} ${i * i}\n` || r.stderr !== '');
    expect(wrong).toEqual([]);
    await expectCleanAfter(cliIds);
  }, 180_000);
});
