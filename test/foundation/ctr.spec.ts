import { spawn } from 'child_process';
import { once } from 'events';
import { berthBin, BerthdHandle, removeDir, startBerthd } from '../harness/daemon';

// containerd's own ctr 1.6 against berthd: the proof that the split holds.
describe('real ctr against berthd', () => {
  let daemon: BerthdHandle;

  beforeAll(async () => {
    daemon = await startBerthd();
  });
  afterAll(async () => {
    await daemon.stop();
    removeDir(daemon.dir);
  });

  it('ctr version shows the server version and the uuid berth reports', async () => {
    const out = await daemon.ctr('version');
    // ctr warns that its own version differs from the server's; nothing else may go wrong.
    expect(out.stderr.trim().split('\n').filter((l) => !/^WARNING: (version|revision) mismatch$/.test(l))).toEqual([]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/Server:\s+Version:\s+0\.1\.0\s+Revision:\s+\S+\s+UUID:\s+[0-9a-f-]{36}/);
    const uuid = /UUID:\s+(\S+)/.exec(out.stdout)![1];
    const ours = await daemon.berth('version');
    expect(ours.stdout).toContain(`UUID:     ${uuid}`);
  });

  it('ctr namespaces create, ls, label and remove', async () => {
    expect((await daemon.ctr('namespaces', 'create', 'team-a', 'owner=alice')).code).toBe(0);
    let ls = await daemon.ctr('namespaces', 'ls');
    expect(ls.stdout).toMatch(/^NAME\s+LABELS\s*$/m);
    expect(ls.stdout).toMatch(/^team-a\s+owner=alice\s*$/m);

    expect((await daemon.ctr('namespaces', 'label', 'team-a', 'tier=gold')).code).toBe(0);
    ls = await daemon.ctr('namespaces', 'ls');
    expect(ls.stdout).toMatch(/^team-a\s+owner=alice,tier=gold\s*$/m);
    // berth sees what ctr wrote
    const ours = await daemon.berth('--format', 'json', 'namespaces', 'ls');
    expect(JSON.parse(ours.stdout)).toContainEqual({ name: 'team-a', labels: { owner: 'alice', tier: 'gold' } });

    expect((await daemon.ctr('namespaces', 'label', 'team-a', 'owner=')).code).toBe(0);
    expect((await daemon.ctr('namespaces', 'ls')).stdout).toMatch(/^team-a\s+tier=gold\s*$/m);

    const rm = await daemon.ctr('namespaces', 'remove', 'team-a');
    expect(rm.code).toBe(0);
    expect(rm.stdout.trim()).toBe('team-a');
    expect((await daemon.ctr('namespaces', 'ls', '-q')).stdout).not.toMatch(/^team-a$/m);
  });

  it('removing a missing namespace is NotFound on the wire', async () => {
    // ctr 1.6 treats NotFound on remove as done; berth's CLI shows the server's answer.
    const rm = await daemon.berth('namespaces', 'rm', 'never-made');
    expect(rm.code).toBe(1);
    expect(rm.stderr.trim()).toBe('berth: namespace "never-made": not found');
  });

  it('ctr plugins ls lists berth\'s plugins with their status', async () => {
    const out = await daemon.ctr('plugins', 'ls');
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^TYPE\s+ID\s+PLATFORMS\s+STATUS\s*$/m);
    for (const [type, id] of [
      ['io.berth.metadata.v1', 'sqlite'],
      ['io.berth.event.v1', 'exchange'],
      ['io.berth.grpc.v1', 'namespaces'],
      ['io.berth.grpc.v1', 'introspection'],
      ['io.berth.grpc.v1', 'events'],
      ['io.berth.grpc.v1', 'version'],
    ]) {
      expect(out.stdout).toMatch(new RegExp(`^${type.replace(/\./g, '\\.')}\\s+${id}\\s+-\\s+ok\\s*$`, 'm'));
    }
    const filtered = await daemon.ctr('plugins', 'ls', 'type==io.berth.grpc.v1');
    expect(filtered.stdout).not.toMatch(/io\.berth\.metadata\.v1/);
    expect(filtered.stdout).toMatch(/io\.berth\.grpc\.v1\s+namespaces/);
  });

  it('ctr events receives an event published through berth', async () => {
    const events = spawn('ctr', ['-a', daemon.address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    events.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    events.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    try {
      // Publish until ctr's subscription is in place (it connects asynchronously).
      const deadline = Date.now() + 15_000;
      let n = 0;
      while (!output.includes('/namespaces/create') && Date.now() < deadline) {
        const made = await daemon.berth('namespaces', 'create', `evt-${n++}`, 'via=berth');
        expect(made.code).toBe(0);
        await new Promise((r) => setTimeout(r, 200));
      }
      const line = output.split('\n').find((l) => l.includes('/namespaces/create'));
      expect(line).toBeDefined();
      // ctr prints Go's time format (with spaces), the namespace, the topic and the event as JSON.
      expect(line).toMatch(/ evt-\d+ \/namespaces\/create \{"name":"evt-\d+","labels":\{"via":"berth"\}\}$/);
    } finally {
      events.kill('SIGINT');
    }
  });

  it('berth events receives what ctr does, filtered', async () => {
    const events = spawn(process.execPath, [berthBin, '-a', daemon.address, 'events', 'topic=="/namespaces/update"'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    events.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    events.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    try {
      expect((await daemon.ctr('namespaces', 'create', 'watched')).code).toBe(0);
      const deadline = Date.now() + 15_000;
      while (!output.includes('/namespaces/update') && Date.now() < deadline) {
        expect((await daemon.ctr('namespaces', 'label', 'watched', `n=${Date.now()}`)).code).toBe(0);
        await new Promise((r) => setTimeout(r, 200));
      }
      const lines = output.trim().split('\n');
      expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z watched \/namespaces\/update \{"name":"watched","labels":\{"n":"\d+"\}\}$/);
      expect(output).not.toContain('/namespaces/create');
    } finally {
      events.kill('SIGINT');
    }
    const [code] = await once(events, 'exit');
    expect(code).toBe(0);
  });
});
