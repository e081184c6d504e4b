import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { berthBin, BerthdHandle, makeTempDir, removeDir, startBerthd } from '../harness/daemon';
import { run, type RunResult } from '../harness/process';
import { type RegistryHandle, startRegistry } from '../harness/registry';
import { describeAsRoot } from '../harness/root';
import { cleanupNamespace, cmdlineOf, ctrIn, parseTaskList, uniqueName, waitFor } from '../tasks/helpers';
import { DEFAULT_FIFO_ROOT, interfaceNames, leftoverFifos } from './helpers';

// `berth run` and `berth tasks` against a real berthd: FIFO stdio made by the
// CLI, the runc shim behind the daemon, exit codes handed through.
describeAsRoot('berth run and berth tasks through berthd', () => {
  const ns = uniqueName('run-cli');
  let registry: RegistryHandle;
  let daemon: BerthdHandle;
  let work: string;
  let image: string;
  /** Every container id a test used, for the FIFO leak check. */
  const ids: string[] = [];

  const id = (name: string): string => {
    const unique = `${name}-${ids.length}`;
    ids.push(unique);
    return unique;
  };
  const berthArgs = (...args: string[]): string[] => [berthBin, '-a', daemon.address, '-n', ns, ...args];
  const berth = (args: string[], input?: string): Promise<RunResult> => run(process.execPath, berthArgs(...args), { input, timeoutMs: 60_000 });
  const must = (r: RunResult): string => {
    if (r.code !== 0) throw new Error(`berth failed (${r.code}):\n${r.stderr}${r.stdout}\n--- berthd:\n${daemon.output.slice(-4000)}`);
    return r.stdout;
  };
  const containerIds = async (): Promise<string[]> => must(await berth(['containers', 'ls', '-q'])).split('\n').filter(Boolean);
  const taskRows = async () => parseTaskList(must(await berth(['tasks', 'ls'])));
  const snapshotKeys = async (): Promise<string[]> =>
    must(await berth(['snapshots', 'ls']))
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/)[0]!)
      .filter(Boolean);

  beforeAll(async () => {
    registry = await startRegistry();
    daemon = await startBerthd();
    work = makeTempDir('berth-run-');
    image = registry.ref('busybox:latest');
    must(await berth(['images', 'pull', '--plain-http', image]));
  });

  afterAll(async () => {
    if (daemon) {
      await cleanupNamespace(daemon.address, ns, daemon.dir);
      await daemon.stop();
      removeDir(daemon.dir);
    }
    await registry?.stop();
    if (work) removeDir(work);
  });

  it('run --rm pulls a missing image, prints the output, exits 0 and leaves nothing behind', async () => {
    const c = id('hello');
    // Not pulled before, and in Docker's media types.
    const r = await berth(['run', '--rm', '--plain-http', registry.ref('busybox-docker:latest'), c, 'echo', 'hello', 'world']);
    expect(must(r)).toBe('hello world\n');
    expect(r.stderr).toBe('');
    expect(await containerIds()).not.toContain(c);
    expect(await snapshotKeys()).not.toContain(c);
    expect((await taskRows()).map((t) => t.id)).not.toContain(c);
    expect(leftoverFifos(DEFAULT_FIFO_ROOT, [c])).toEqual([]);
  });

  it("exits with the container's status: 0, 1, a shell's 137, and 137 when SIGKILL ends it", async () => {
    const [ok0, fails1, shell137] = await Promise.all([
      berth(['run', '--rm', image, id('true'), 'true']),
      berth(['run', '--rm', image, id('false'), 'false']),
      // sh is the container's init, which its own `kill -9` cannot end; a child can be.
      berth(['run', '--rm', image, id('shell137'), 'sh', '-c', "sh -c 'kill -9 $$'; exit $?"]),
    ]);
    expect([ok0.code, fails1.code, shell137.code]).toEqual([0, 1, 137]);

    const c = id('killed');
    const running = berth(['run', '--rm', image, c, 'sleep', '300']);
    await waitFor(`${c} to run`, async () => ((await taskRows()).find((t) => t.id === c)?.status === 'RUNNING' ? true : undefined));
    must(await berth(['tasks', 'kill', '-s', 'SIGKILL', c]));
    const r = await running;
    expect(r.code).toBe(137);
    expect(await containerIds()).not.toContain(c);
  });

  it('forwards SIGTERM sent to the attached CLI to the container', async () => {
    const c = id('term');
    const script = 'trap "echo got TERM; exit 9" TERM; echo ready; while true; do sleep 0.1; done';
    const child = spawn(process.execPath, berthArgs('run', '--rm', image, c, 'sh', '-c', script), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(`${c} to trap TERM`, () => (stdout.includes('ready') ? true : undefined), 30_000);
      child.kill('SIGTERM');
      expect(await exited).toBe(9);
      expect(stdout).toBe('ready\ngot TERM\n');
      expect(await containerIds()).not.toContain(c);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('keeps stdout and stderr apart, and takes options after the image as the command\'s', async () => {
    const r = await berth(['run', '--rm', image, id('streams'), 'sh', '-c', 'echo to-out; echo to-err >&2; echo more-out']);
    expect(must(r)).toBe('to-out\nmore-out\n');
    expect(r.stderr).toBe('to-err\n');
    // -d is ls's here, not run's --detach.
    expect(must(await berth(['run', '--rm', image, id('lsd'), 'ls', '-d', '/etc']))).toBe('/etc\n');
  });

  it('pipes stdin with -i, and closes it at its end', async () => {
    const r = await berth(['run', '--rm', '-i', image, id('stdin'), 'sh', '-c', 'wc -l; cat /etc/berth-fixture'], 'one\ntwo\nthree\n');
    expect(must(r).split('\n').map((l) => l.trim())).toEqual(['3', 'hello from a berth fixture image', '']);
    const echo = await berth(['run', '--rm', '-i', image, id('cat'), 'cat'], 'data through the FIFO\n');
    expect(must(echo)).toBe('data through the FIFO\n');
  });

  it('sets env, cwd and the user by name and by uid:gid', async () => {
    const [env, cwd, byName, byUid] = await Promise.all([
      berth(['run', '--rm', '--env', 'GREETING=hi there', '--env', 'EMPTY=', image, id('env'), 'env']),
      berth(['run', '--rm', '--cwd', '/etc', image, id('cwd'), 'sh', '-c', 'echo $PWD']),
      berth(['run', '--rm', '--user', 'nobody', image, id('byname'), 'id']),
      berth(['run', '--rm', '--user', '1234:5678', image, id('byuid'), 'id']),
    ]);
    expect(must(env).split('\n')).toEqual(expect.arrayContaining(['GREETING=hi there', 'EMPTY=', expect.stringMatching(/^PATH=/)]));
    expect(must(cwd)).toBe('/etc\n');
    expect(must(byName)).toMatch(/^uid=65534\(nobody\) gid=65534\(nogroup\)/);
    expect(must(byUid)).toMatch(/^uid=1234 gid=5678/);
  });

  it('bind-mounts a host dir (read-only enforced) and makes the rootfs read-only with --read-only', async () => {
    const shared = path.join(work, 'shared');
    fs.mkdirSync(shared);
    fs.writeFileSync(path.join(shared, 'note.txt'), 'from the host\n');
    const mount = `type=bind,src=${shared},dst=/data,options=rbind:ro`;
    const rw = `type=bind,src=${shared},dst=/data,options=rbind:rw`;
    const [read, write, written, ro, rootRw] = await Promise.all([
      berth(['run', '--rm', '--mount', mount, image, id('bind'), 'cat', '/data/note.txt']),
      berth(['run', '--rm', '--mount', mount, image, id('bindro'), 'touch', '/data/new']),
      berth(['run', '--rm', '--mount', rw, image, id('bindrw'), 'touch', '/data/written']),
      berth(['run', '--rm', '--read-only', image, id('rootro'), 'touch', '/etc/new']),
      berth(['run', '--rm', image, id('rootrw'), 'sh', '-c', 'touch /etc/new && echo written']),
    ]);
    expect(must(read)).toBe('from the host\n');
    expect(write.code).toBe(1);
    expect(write.stderr).toMatch(/Read-only file system/);
    must(written);
    expect(fs.readdirSync(shared).sort()).toEqual(['note.txt', 'written']);
    expect(ro.code).toBe(1);
    expect(ro.stderr).toMatch(/Read-only file system/);
    expect(must(rootRw)).toBe('written\n');
  });

  it("shares the host's network with --net-host, and has only lo without it", async () => {
    const hostInterfaces = interfaceNames(fs.readFileSync('/proc/net/dev', 'utf8'));
    const inHost = interfaceNames(must(await berth(['run', '--rm', '--net-host', image, id('nethost'), 'cat', '/proc/net/dev'])));
    expect(inHost).toEqual(hostInterfaces);
    const own = interfaceNames(must(await berth(['run', '--rm', image, id('netown'), 'cat', '/proc/net/dev'])));
    expect(own).toEqual(['lo']);
  });

  it('a detached task: tasks ls, exec, ps, pause/resume, metrics, kill, rm (with its FIFOs)', async () => {
    const c = id('bg');
    const detached = await berth(['run', '-d', image, c, 'sleep', '300']);
    expect(must(detached)).toBe('');
    expect(detached.stderr).toBe('');
    try {
      const row = (await taskRows()).find((t) => t.id === c);
      expect(row).toMatchObject({ id: c, status: 'RUNNING' });
      const pid = row!.pid;
      await waitFor(`pid ${pid} to run sleep`, () => (cmdlineOf(pid)?.[0] === 'sleep' ? true : undefined));
      const listed = JSON.parse(must(await berth(['--format', 'json', 'tasks', 'ls']))) as { id: string; pid: number; status: string; stdout?: string }[];
      const mine = listed.find((t) => t.id === c);
      expect(mine).toMatchObject({ id: c, pid, status: 'running' });
      // The detached run left its output FIFOs for a later attach.
      expect(fs.statSync(mine!.stdout!).isFIFO()).toBe(true);

      const exec = await berth(['tasks', 'exec', '--exec-id', `${c}-e1`, c, 'sh', '-c', 'echo from-exec; echo exec-err >&2; exit 5']);
      expect(exec.code).toBe(5);
      expect(exec.stdout).toBe('from-exec\n');
      expect(exec.stderr).toBe('exec-err\n');
      expect(must(await berth(['tasks', 'exec', '--user', 'nobody', '--cwd', '/tmp', '--exec-id', `${c}-e2`, c, 'sh', '-c', 'id -u; pwd']))).toBe(
        '65534\n/tmp\n',
      );
      expect(leftoverFifos(DEFAULT_FIFO_ROOT, [`${c}-e1`, `${c}-e2`])).toEqual([]);

      const ps = must(await berth(['tasks', 'ps', c])).trimEnd().split('\n');
      expect(ps[0]).toMatch(/^PID\s+INFO$/);
      expect(ps.slice(1).map((l) => Number(l.split(/\s+/)[0]))).toEqual([pid]);

      must(await berth(['tasks', 'pause', c]));
      expect((await taskRows()).find((t) => t.id === c)).toEqual({ id: c, pid, status: 'PAUSED' });
      must(await berth(['tasks', 'resume', c]));
      expect((await taskRows()).find((t) => t.id === c)).toEqual({ id: c, pid, status: 'RUNNING' });

      const metrics = must(await berth(['tasks', 'metrics', c])).split('\n');
      expect(metrics[0]).toMatch(/^ID\s+TIMESTAMP$/);
      expect(metrics[1]).toMatch(new RegExp(`^${c}\\s+\\d{4}-\\d\\d-\\d\\dT`));
      const values = new Map(
        metrics
          .slice(metrics.findIndex((l) => /^METRIC\s+VALUE$/.test(l)) + 1)
          .map((l) => l.split(/\s+/))
          .filter((cols) => cols.length >= 2)
          .map(([k, v]) => [k!, v!]),
      );
      expect(values.get('pids.current')).toBe('1');
      const memory = values.get('memory.usage_in_bytes') ?? values.get('memory.usage');
      expect(Number(memory)).toBeGreaterThan(0);
      const asJson = JSON.parse(must(await berth(['--format', 'json', 'tasks', 'metrics', c]))) as { id: string; type: string; data: { pids?: { current?: string | number } } };
      expect(asJson.id).toBe(c);
      expect(asJson.type).toMatch(/^io\.containerd\.cgroups\.v[12]\.Metrics$/);
      expect(Number(asJson.data.pids?.current)).toBe(1);

      const refused = await berth(['tasks', 'rm', c]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/running/);

      must(await berth(['tasks', 'kill', '-s', 'KILL', c]));
      await waitFor(`${c} to stop`, async () => ((await taskRows()).find((t) => t.id === c)?.status === 'STOPPED' ? true : undefined));
      must(await berth(['tasks', 'rm', c]));
      expect((await taskRows()).map((t) => t.id)).not.toContain(c);
      expect(fs.existsSync(path.dirname(mine!.stdout!))).toBe(false);
    } finally {
      await berth(['tasks', 'rm', '-f', c]);
      await berth(['containers', 'rm', c]);
    }
    expect(await containerIds()).not.toContain(c);
  });

  it('tasks attach reads what a detached task wrote before and after, and exits with its status', async () => {
    const c = id('attach');
    const gate = path.join(work, 'gate');
    fs.mkdirSync(gate);
    const script = 'echo early; while [ ! -e /gate/go ]; do sleep 0.1; done; echo late >&2; exit 7';
    must(await berth(['run', '-d', '--mount', `type=bind,src=${gate},dst=/gate,options=rbind`, image, c, 'sh', '-c', script]));
    const child = spawn(process.execPath, berthArgs('tasks', 'attach', c), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const listed = JSON.parse(must(await berth(['--format', 'json', 'tasks', 'ls']))) as { id: string; stderr?: string }[];
      const stderrFifo = listed.find((t) => t.id === c)!.stderr!;
      // Let the task go on once attach holds the FIFO it will write to.
      await waitFor('attach to open the FIFOs', () => {
        try {
          return fs.readdirSync(`/proc/${child.pid}/fd`).some((fd) => fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`) === stderrFifo) ? true : undefined;
        } catch {
          return undefined;
        }
      }, 30_000);
      fs.writeFileSync(path.join(gate, 'go'), '');
      expect(await exited).toBe(7);
      expect(stdout).toBe('early\n');
      expect(stderr).toBe('late\n');
      expect((await taskRows()).find((t) => t.id === c)?.status).toBe('STOPPED');
      // Attaching to a task that has stopped gives its status at once.
      expect((await berth(['tasks', 'attach', c])).code).toBe(7);
      must(await berth(['tasks', 'rm', c]));
    } finally {
      child.kill('SIGKILL');
      await berth(['tasks', 'rm', '-f', c]);
      await berth(['containers', 'rm', c]);
    }
  });

  it('tasks start runs the task of a container ctr created, attached', async () => {
    const c = id('started');
    const created = await ctrIn(daemon.address, ns, ['containers', 'create', image, c, '--', 'sh', '-c', 'echo started by berth; exit 2']);
    if (created.code !== 0) throw new Error(`ctr containers create failed: ${created.stderr}`);
    try {
      const r = await berth(['tasks', 'start', c]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('started by berth\n');
      // The task is deleted after its exit, as ctr's tasks start does; the container stays.
      expect((await taskRows()).map((t) => t.id)).not.toContain(c);
      expect(await containerIds()).toContain(c);
    } finally {
      await berth(['containers', 'rm', c]);
    }
  });

  it('-t gives the container a real terminal sized like ours, and restores our terminal', async () => {
    const c = id('tty');
    const script = path.join(work, 'tty.sh');
    const berthLine = berthArgs('run', '--rm', '-t', image, c, 'sh', '-c', 'busybox tty; busybox stty size; exit 3')
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    fs.writeFileSync(
      script,
      [
        'stty rows 33 cols 111',
        'before=$(stty -g)',
        `'${process.execPath}' ${berthLine}`,
        'echo "exit=$?"',
        'after=$(stty -g)',
        '[ "$before" = "$after" ] && echo "terminal restored"',
        '',
      ].join('\n'),
    );
    // script(1) makes the pty; its stdin stays open so that it sends no EOF into the terminal.
    const child = spawn('script', ['-qfec', `sh ${script}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c2) => resolve(c2)));
    clearTimeout(timer);
    child.stdin.destroy();
    const lines = out.split(/\r?\n/).map((l) => l.replace(/\r/g, ''));
    expect(code).toBe(0);
    expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^\/dev\/pts\/\d+$/), '33 111', 'exit=3', 'terminal restored']));
    expect(await containerIds()).not.toContain(c);
  });

  it('refuses bad flags with a clear message and creates nothing', async () => {
    const [nodst, both2] = [id('nodst'), id('both')];
    const noDst = await berth(['run', '--rm', '--mount', `type=bind,src=${work}`, image, nodst, 'true']);
    expect(noDst.code).toBe(1);
    expect(noDst.stderr).toMatch(/invalid mount .*no dst/);
    const both = await berth(['run', '--rm', '-d', image, both2, 'true']);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--rm and --detach/);
    const badSignal = await berth(['tasks', 'kill', '-s', 'SIGNOPE', 'whatever']);
    expect(badSignal.code).toBe(1);
    expect(badSignal.stderr).toMatch(/unknown signal "SIGNOPE"/);
    const left = await containerIds();
    expect(left).not.toContain(nodst);
    expect(left).not.toContain(both2);
  });

  it('left no FIFO dirs behind', () => {
    expect(leftoverFifos(DEFAULT_FIFO_ROOT, ids)).toEqual([]);
  });
});
