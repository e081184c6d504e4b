import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Any, packAny, runcOptionsV1, shimTaskV2 } from '@berth/proto';
import { deleteShim, parseShimAddress, ShimInvocation, startShim } from './shim-binary';

describe('parseShimAddress', () => {
  it('takes a plain address, trimmed', () => {
    expect(parseShimAddress('unix:///run/containerd/s/abc\n')).toBe('unix:///run/containerd/s/abc');
  });

  it('takes the JSON bootstrap of version 2 ttrpc shims', () => {
    expect(parseShimAddress('{"version":2,"address":"unix:///run/x.sock","protocol":"ttrpc"}')).toBe('unix:///run/x.sock');
  });

  it.each([
    ['', 'invalid-argument'],
    ['{"version":3,"address":"unix:///x","protocol":"ttrpc"}', 'not-implemented'],
    ['{"version":2,"address":"unix:///x","protocol":"grpc"}', 'not-implemented'],
    ['{"version":2,"protocol":"ttrpc"}', 'invalid-argument'],
    ['{not json', 'invalid-argument'],
  ])('rejects %j', (output, kind) => {
    expect(() => parseShimAddress(output)).toThrow(expect.objectContaining({ kind }));
  });
});

// A stand-in shim (a shell script) that records how it was run: a real process, no mocks.
describe('startShim and deleteShim', () => {
  let dir: string;
  let bundle: string;
  let shim: ShimInvocation;

  function writeShim(body: string): void {
    writeFileSync(shim.shimPath, `#!/bin/sh\nout=${dir}\n${body}\n`);
    chmodSync(shim.shimPath, 0o755);
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-rtv2-shimbin-'));
    bundle = join(dir, 'ns', 'task1');
    mkdirSync(bundle, { recursive: true });
    shim = {
      shimPath: join(dir, 'fake-shim'),
      namespace: 'ns',
      id: 'task1',
      bundlePath: bundle,
      address: '/run/berth/berth.sock',
      publishBinary: '/usr/bin/berthd',
      ttrpcAddress: '/run/berth/berth.sock.ttrpc',
      debug: true,
      timeoutMs: 5_000,
    };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs start in the bundle with containerd flags, TTRPC_ADDRESS and the options Any on stdin', async () => {
    writeShim(`pwd > $out/cwd; printf '%s\\n' "$@" > $out/args; echo "$TTRPC_ADDRESS" > $out/ttrpc; cat > $out/stdin
echo 'unix:///run/containerd/s/feed'`);
    const options = packAny(runcOptionsV1.Options, runcOptionsV1.Options.fromPartial({ binaryName: 'crun' }));
    expect(await startShim(shim, options)).toBe('unix:///run/containerd/s/feed');
    expect(readFileSync(join(dir, 'cwd'), 'utf8').trim()).toBe(bundle);
    expect(readFileSync(join(dir, 'args'), 'utf8').trim().split('\n')).toEqual([
      '-namespace', 'ns', '-address', '/run/berth/berth.sock', '-publish-binary', '/usr/bin/berthd', '-id', 'task1', '-debug', 'start',
    ]);
    expect(readFileSync(join(dir, 'ttrpc'), 'utf8').trim()).toBe('/run/berth/berth.sock.ttrpc');
    const sent = Any.decode(readFileSync(join(dir, 'stdin')));
    expect(sent.typeUrl).toBe('containerd.runc.v1.Options');
    expect(runcOptionsV1.Options.decode(sent.value).binaryName).toBe('crun');
  });

  it('sends empty stdin without options and omits -debug when off', async () => {
    writeShim(`printf '%s\\n' "$@" > $out/args; cat | wc -c > $out/stdin-size
echo 'unix:///x'`);
    await startShim({ ...shim, debug: false });
    expect(readFileSync(join(dir, 'args'), 'utf8')).not.toContain('-debug');
    expect(readFileSync(join(dir, 'stdin-size'), 'utf8').trim()).toBe('0');
  });

  it('fails with the shim output when start fails', async () => {
    writeShim(`echo "cannot start: bad config" >&2; exit 3`);
    await expect(startShim(shim)).rejects.toThrow(/shim start for task ns\/task1 .*failed \(exit status 3\): cannot start: bad config/);
  });

  it('fails when start hangs past the timeout, even if a child keeps its output open', async () => {
    writeShim('sleep 3 & echo $! > $out/child; wait');
    const started = Date.now();
    await expect(startShim({ ...shim, timeoutMs: 200 })).rejects.toMatchObject({ kind: 'deadline-exceeded' });
    expect(Date.now() - started).toBeLessThan(2_000);
    process.kill(Number(readFileSync(join(dir, 'child'), 'utf8')), 'SIGKILL');
  });

  it('runs delete with -bundle and decodes the DeleteResponse it prints', async () => {
    const exitedAt = new Date('2024-05-06T07:08:09.010Z');
    writeFileSync(join(dir, 'response'), shimTaskV2.DeleteResponse.encode({ pid: 321, exitStatus: 137, exitedAt }).finish());
    writeShim(`pwd > $out/cwd; printf '%s\\n' "$@" > $out/args; cat $out/response`);
    expect(await deleteShim(shim)).toEqual({ pid: 321, exitStatus: 137, exitedAt });
    expect(readFileSync(join(dir, 'cwd'), 'utf8').trim()).toBe(bundle);
    expect(readFileSync(join(dir, 'args'), 'utf8').trim().split('\n')).toEqual([
      '-namespace', 'ns', '-address', '/run/berth/berth.sock', '-publish-binary', '/usr/bin/berthd', '-id', 'task1',
      '-bundle', bundle, '-debug', 'delete',
    ]);
  });

  it('fails delete when the shim does, and when the bundle is gone', async () => {
    writeShim('echo "open runtime: no such file" >&2; exit 1');
    await expect(deleteShim(shim)).rejects.toThrow(/shim delete .* failed \(exit status 1\): open runtime: no such file/);
    rmSync(bundle, { recursive: true });
    await expect(deleteShim(shim)).rejects.toThrow(/shim delete/);
  });
});
