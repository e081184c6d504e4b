import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeAsRoot } from '../harness/root';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, generateSpec } from '@berth/oci';

/** The /proc/<pid>/status hex mask of a capability set. */
function capabilityMask(caps: readonly string[]): string {
  const bits = caps.reduce((mask, cap) => mask | (1n << BigInt(ALL_CAPABILITIES.indexOf(cap))), 0n);
  return bits.toString(16).padStart(16, '0');
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describeAsRoot('generated spec under runc (root)', () => {
  let bundle: string;
  let runcRoot: string;
  let containerId: string;

  beforeEach(() => {
    bundle = mkdtempSync(join(tmpdir(), 'berth-oci-bundle-'));
    // runc state of our own, so nothing here touches other users' containers.
    runcRoot = join(bundle, 'runc-state');
    containerId = `berth-oci-e2e-${process.pid}-${randomBytes(4).toString('hex')}`;
  });

  afterEach(() => {
    spawnSync('runc', ['--root', runcRoot, 'delete', '-f', containerId], { stdio: 'ignore', timeout: 30_000 });
    rmSync(bundle, { recursive: true, force: true });
  });

  it('runs a busybox rootfs as the named user, with default seccomp, caps and mounts', async () => {
    const rootfs = join(bundle, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    mkdirSync(join(rootfs, 'etc'));
    copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
    for (const applet of ['sh', 'echo', 'id', 'cat']) symlinkSync('busybox', join(rootfs, 'bin', applet));
    writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nberth:x:1234:2345::/:/bin/sh\n');
    writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nberth:x:2345:\nextra:x:3456:berth\n');

    const spec = await generateSpec({
      namespace: 'berth-test',
      id: containerId,
      imageConfig: { Env: ['PATH=/bin'], Cmd: ['/bin/false'] },
      // /proc/self/status shows what the spec's seccomp, capabilities and no_new_privs did.
      args: ['/bin/sh', '-c', 'id; echo ok; cat /proc/self/status'],
      user: 'berth',
      rootfs,
      // A top-level cgroup, which `runc delete` removes entirely.
      cgroupsPath: `/${containerId}`,
    });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));

    const result = await run('runc', ['--root', runcRoot, 'run', '--bundle', bundle, containerId], 60_000);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^uid=1234\(berth\) gid=2345\(berth\) groups=2345\(berth\),3456\(extra\)$/);
    expect(lines[1]).toBe('ok');
    const status = result.stdout;
    expect(status).toMatch(/^Seccomp:\s+2$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(new RegExp(`^CapBnd:\\s+${capabilityMask(DEFAULT_CAPABILITIES)}$`, 'm'));
    // A non-root user keeps none of them in effect.
    expect(status).toMatch(/^CapEff:\s+0{16}$/m);
  });
});
