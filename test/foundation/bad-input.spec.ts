import { BerthdHandle, removeDir, startBerthd } from '../harness/daemon';

const badNames: [string, string, RegExp][] = [
  ['path characters', '../x', /namespace "\.\.\/x": must match/],
  ['empty', '', /namespace: must not be empty/],
  ['77 characters', 'a'.repeat(77), /longer than 76/],
  ['non-ASCII', 'ñame', /namespace "ñame": must match/],
];

describe('bad namespace names are refused with one clear line, nothing created', () => {
  let d: BerthdHandle;
  beforeAll(async () => {
    d = await startBerthd();
  });
  afterAll(async () => {
    await d.stop();
    removeDir(d.dir);
  });

  it.each(badNames)('berth namespaces create: %s', async (_what, name, message) => {
    const res = await d.berth('namespaces', 'create', name);
    expect(res.code).toBe(1);
    const lines = res.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^berth: /);
    expect(lines[0]).toMatch(message);
    expect(res.stdout).toBe('');
  });

  it.each(badNames.filter(([, name]) => name !== ''))('ctr namespaces create: %s is InvalidArgument', async (_what, name) => {
    // (ctr itself refuses an empty name before calling the server)
    const res = await d.ctr('namespaces', 'create', name);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/invalid argument/);
  });

  it('a 76-character name is fine and nothing bad was stored', async () => {
    const ok = 'b'.repeat(76);
    expect((await d.berth('namespaces', 'create', ok)).code).toBe(0);
    const names = (await d.berth('namespaces', 'ls', '-q')).stdout.trim().split('\n');
    expect(names).toEqual([ok]);
  });

  it('a label over 4096 bytes is refused naming the key', async () => {
    const res = await d.berth('namespaces', 'create', 'labelled', `big=${'x'.repeat(4100)}`);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/label "big"/);
  });

  it('an unreachable daemon is one clear line, not a stack trace', async () => {
    const res = await d.berth('-a', '/nonexistent/berth.sock', '--timeout', '1', 'namespaces', 'ls');
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/^berth: cannot connect to berthd at \/nonexistent\/berth\.sock/);
  });
});
