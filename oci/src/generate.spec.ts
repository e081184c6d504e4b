import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isInvalidArgument } from '@berth/core';
import { currentCapabilities, DEFAULT_CAPABILITIES } from './capabilities';
import { DEFAULT_PATH_ENV, defaultSpec, OCI_VERSION } from './defaults';
import { execProcessSpec, generateSpec, imageConfigLabels, type GenerateSpecOptions } from './generate';
import { loadSpecValidator } from './test-fixtures/schema';
import type { ImageRuntimeConfig, RuntimeSpec } from './types';

const IMAGE: ImageRuntimeConfig = {
  Env: ['PATH=/opt/app/bin:/usr/bin:/bin', 'LANG=C.UTF-8', 'APP_MODE=prod'],
  Entrypoint: ['/docker-entrypoint.sh'],
  Cmd: ['nginx', '-g', 'daemon off;'],
  WorkingDir: '/srv',
  User: 'app',
  StopSignal: 'SIGQUIT',
};

const kernelHasSeccomp = /^Seccomp:/m.test(readFileSync('/proc/self/status', 'utf8'));

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('OCI spec generation', () => {
  let validate: (spec: unknown) => void;
  let dir: string;
  let rootfs: string;

  beforeAll(() => {
    validate = loadSpecValidator();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-oci-gen-'));
    rootfs = join(dir, 'rootfs');
    mkdirSync(join(rootfs, 'etc'), { recursive: true });
    writeFileSync(
      join(rootfs, 'etc/passwd'),
      'root:x:0:0:root:/root:/bin/sh\napp:x:101:102::/srv:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n',
    );
    writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\napp:x:102:\nlogs:x:4:app\nnogroup:x:65534:\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Generates, checks against the schema, and round-trips through JSON as config.json would. */
  async function generate(options: Partial<GenerateSpecOptions> = {}): Promise<RuntimeSpec> {
    const spec = await generateSpec({ namespace: 'default', id: 'web', rootfs, ...options });
    validate(spec);
    return JSON.parse(JSON.stringify(spec)) as RuntimeSpec;
  }

  it('rejects what the schema rejects (the validator can fail)', () => {
    const spec = defaultSpec('default', 'web') as Record<string, unknown>;
    expect(() => validate({ ...spec, ociVersion: 102 })).toThrow(/ociVersion/);
    expect(() => validate({ ...spec, process: { user: { uid: 0, gid: 0 } } })).toThrow(/cwd/);
    expect(() =>
      validate({ ...spec, linux: { namespaces: [{ type: 'time' }] } }),
    ).toThrow(/namespaces/);
  });

  it('builds containerd\'s default Linux spec', () => {
    const spec = defaultSpec('ns1', 'c1');
    validate(spec);
    expect(spec.ociVersion).toBe(OCI_VERSION);
    expect(spec.root).toEqual({ path: 'rootfs' });
    expect(spec.process).toMatchObject({
      terminal: false,
      cwd: '/',
      env: [DEFAULT_PATH_ENV],
      user: { uid: 0, gid: 0 },
      noNewPrivileges: true,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
    });
    expect(spec.process?.capabilities?.bounding).toEqual(DEFAULT_CAPABILITIES);
    expect(spec.process?.capabilities?.effective).toEqual(DEFAULT_CAPABILITIES);
    expect(spec.process?.capabilities?.permitted).toEqual(DEFAULT_CAPABILITIES);
    expect(spec.process?.capabilities?.inheritable).toBeUndefined();
    expect(spec.mounts?.map((m) => m.destination)).toEqual([
      '/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/run',
    ]);
    expect(spec.linux?.namespaces?.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(spec.linux?.cgroupsPath).toBe('/ns1/c1');
    const devices = spec.linux?.resources?.devices ?? [];
    expect(devices[0]).toEqual({ allow: false, access: 'rwm' });
    expect(devices).toContainEqual({ allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' });
    expect(devices).toContainEqual({ allow: true, type: 'c', major: 136, access: 'rwm' });
    expect(spec.linux?.maskedPaths).toContain('/proc/kcore');
    expect(spec.linux?.readonlyPaths).toContain('/proc/sys');
  });

  it('matches the default spec containerd\'s own ctr prints', () => {
    let ctrSpec: RuntimeSpec;
    try {
      ctrSpec = JSON.parse(execFileSync('ctr', ['oci', 'spec'], { encoding: 'utf8', timeout: 10_000 })) as RuntimeSpec;
    } catch (err) {
      throw new Error(`ctr (containerd 1.6) must be installed for this comparison: ${(err as Error).message}`);
    }
    const ours = defaultSpec('default', 'x');
    expect(ours.ociVersion).toBe(ctrSpec.ociVersion);
    expect(ours.root).toEqual(ctrSpec.root);
    expect(ours.mounts).toEqual(ctrSpec.mounts);
    expect(ours.process?.capabilities).toEqual(ctrSpec.process?.capabilities);
    expect(ours.process?.rlimits).toEqual(ctrSpec.process?.rlimits);
    expect(ours.process?.noNewPrivileges).toBe(ctrSpec.process?.noNewPrivileges);
    expect(ours.process?.cwd).toBe(ctrSpec.process?.cwd);
    expect(ours.linux?.namespaces).toEqual(ctrSpec.linux?.namespaces);
    expect(ours.linux?.maskedPaths).toEqual(ctrSpec.linux?.maskedPaths);
    expect(ours.linux?.readonlyPaths).toEqual(ctrSpec.linux?.readonlyPaths);
    // ctr's first device rule is the deny-all one; `ctr run` then allows the standard devices.
    expect(ours.linux?.resources?.devices?.[0]).toEqual(ctrSpec.linux?.resources?.devices?.[0]);
  });

  it('rejects a missing namespace or id', async () => {
    expect(isInvalidArgument(await rejection(generateSpec({ namespace: '', id: 'x' })))).toBe(true);
    expect(isInvalidArgument(await rejection(generateSpec({ namespace: 'ns', id: '' })))).toBe(true);
  });

  it('applies the image config: env, entrypoint + cmd, working dir, user and its groups', async () => {
    const spec = await generate({ imageConfig: IMAGE });
    expect(spec.process?.env).toEqual(IMAGE.Env);
    expect(spec.process?.args).toEqual(['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;']);
    expect(spec.process?.cwd).toBe('/srv');
    expect(spec.process?.user).toEqual({ uid: 101, gid: 102, additionalGids: [102, 4] });
  });

  it('carries the image stop signal as containerd\'s container label, not in the spec', async () => {
    expect(imageConfigLabels(IMAGE)).toEqual({ 'io.containerd.image.config.stop-signal': 'SIGQUIT' });
    expect(imageConfigLabels({})).toEqual({});
    expect(JSON.stringify(await generate({ imageConfig: IMAGE }))).not.toContain('SIGQUIT');
  });

  it('gives an image without Env the default PATH, and without User root with its groups', async () => {
    const spec = await generate({ imageConfig: { Cmd: ['/bin/true'] } });
    expect(spec.process?.env).toEqual([DEFAULT_PATH_ENV]);
    expect(spec.process?.cwd).toBe('/');
    expect(spec.process?.user).toEqual({ uid: 0, gid: 0, additionalGids: [0] });
  });

  it('replaces entrypoint and cmd with the given args, as ctr run does', async () => {
    const spec = await generate({ imageConfig: IMAGE, args: ['/bin/sh', '-c', 'echo hi'] });
    expect(spec.process?.args).toEqual(['/bin/sh', '-c', 'echo hi']);
    const noArgs = await generate({ imageConfig: { ...IMAGE, Entrypoint: null, Cmd: null } });
    expect(noArgs.process?.args).toBeUndefined();
  });

  it('layers env over the image env by name', async () => {
    const spec = await generate({ imageConfig: IMAGE, env: ['APP_MODE=dev', 'NEW=1', 'LANG'] });
    expect(spec.process?.env).toEqual(['PATH=/opt/app/bin:/usr/bin:/bin', 'APP_MODE=dev', 'NEW=1']);
  });

  it('overrides the working dir, and rejects relative ones', async () => {
    expect((await generate({ imageConfig: IMAGE, cwd: '/tmp' })).process?.cwd).toBe('/tmp');
    const err = await rejection(generateSpec({ namespace: 'default', id: 'web', cwd: 'tmp' }));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain('"tmp"');
  });

  it('resolves an explicit user over the image one', async () => {
    expect((await generate({ imageConfig: IMAGE, user: 'nobody' })).process?.user).toEqual({
      uid: 65534,
      gid: 65534,
      additionalGids: [65534],
    });
    expect((await generate({ imageConfig: IMAGE, user: 'app:nogroup' })).process?.user).toEqual({
      uid: 101,
      gid: 65534,
      additionalGids: [65534, 4],
    });
    expect((await generate({ user: '1234:5678', rootfs: undefined })).process?.user).toEqual({
      uid: 1234,
      gid: 5678,
      additionalGids: [5678],
    });
  });

  it('fails for a user the image does not have, naming it', async () => {
    const err = await rejection(generateSpec({ namespace: 'default', id: 'web', rootfs, imageConfig: { ...IMAGE, User: 'ghost' } }));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain('"ghost"');
  });

  it('shares the host network with its hosts and resolv.conf read-only', async () => {
    const spec = await generate({ hostNetwork: true });
    expect(spec.linux?.namespaces?.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount']);
    expect(spec.mounts).toContainEqual({ destination: '/etc/hosts', type: 'bind', source: '/etc/hosts', options: ['rbind', 'ro'] });
    expect(spec.mounts).toContainEqual({
      destination: '/etc/resolv.conf',
      type: 'bind',
      source: '/etc/resolv.conf',
      options: ['rbind', 'ro'],
    });
    expect((await generate()).mounts?.some((m) => m.destination === '/etc/hosts')).toBe(false);
  });

  it('makes the rootfs read-only and sets the root path', async () => {
    expect((await generate({ readonlyRootfs: true })).root).toEqual({ path: 'rootfs', readonly: true });
    expect((await generate({ rootPath: '/run/x/rootfs' })).root).toEqual({ path: '/run/x/rootfs' });
    expect((await generate()).root?.readonly).toBeUndefined();
  });

  it('adds mounts, a mount at a default destination replacing it', async () => {
    const spec = await generate({
      mounts: [
        { destination: '/data', type: 'bind', source: '/var/data', options: ['rbind', 'rw'] },
        { destination: '/dev/shm/', type: 'tmpfs', source: 'shm', options: ['size=1g'] },
      ],
    });
    const shm = spec.mounts?.filter((m) => m.destination.startsWith('/dev/shm')) ?? [];
    expect(shm).toEqual([{ destination: '/dev/shm/', type: 'tmpfs', source: 'shm', options: ['size=1g'] }]);
    expect(spec.mounts).toContainEqual({ destination: '/data', type: 'bind', source: '/var/data', options: ['rbind', 'rw'] });
    expect(spec.mounts?.map((m) => m.destination)).toEqual([
      '/proc', '/dev', '/dev/pts', '/dev/mqueue', '/sys', '/run', '/data', '/dev/shm/',
    ]);
  });

  it('drops the default /dev submounts when /dev itself is replaced', async () => {
    const spec = await generate({ mounts: [{ destination: '/dev', type: 'bind', source: '/dev', options: ['rbind'] }] });
    expect(spec.mounts?.map((m) => m.destination)).toEqual(['/proc', '/sys', '/run', '/dev']);
  });

  it('lets a user mount replace the host network files', async () => {
    const spec = await generate({
      hostNetwork: true,
      mounts: [{ destination: '/etc/hosts', type: 'bind', source: '/tmp/myhosts', options: ['rbind', 'ro'] }],
    });
    expect(spec.mounts?.filter((m) => m.destination === '/etc/hosts').map((m) => m.source)).toEqual(['/tmp/myhosts']);
  });

  it('rejects a relative mount destination', async () => {
    const err = await rejection(generateSpec({ namespace: 'd', id: 'x', mounts: [{ destination: 'data', source: '/x' }] }));
    expect(isInvalidArgument(err)).toBe(true);
  });

  it('sets up a terminal with TERM unless the env has one', async () => {
    const spec = await generate({ imageConfig: IMAGE, terminal: true });
    expect(spec.process?.terminal).toBe(true);
    expect(spec.process?.env).toContain('TERM=xterm');
    const own = await generate({ imageConfig: IMAGE, terminal: true, env: ['TERM=vt100'] });
    expect(own.process?.env?.filter((e) => e.startsWith('TERM='))).toEqual(['TERM=vt100']);
  });

  it('includes the default seccomp profile when the kernel has seccomp, unless turned off', async () => {
    const spec = await generate();
    if (kernelHasSeccomp) {
      expect(spec.linux?.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');
      const allowed = spec.linux?.seccomp?.syscalls?.find((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args);
      expect(allowed?.names).toEqual(expect.arrayContaining(['read', 'write', 'execve', 'exit_group']));
      expect(allowed?.names).not.toContain('mount');
    } else {
      expect(spec.linux?.seccomp).toBeUndefined();
    }
    expect((await generate({ seccomp: false })).linux?.seccomp).toBeUndefined();
  });

  it('runs privileged: every held capability, no masked paths, writable sysfs, all devices, no seccomp', async () => {
    const spec = await generate({ privileged: true });
    expect(spec.process?.capabilities?.bounding).toEqual(currentCapabilities());
    expect(spec.process?.capabilities?.bounding).toEqual(expect.arrayContaining(['CAP_SYS_ADMIN', 'CAP_NET_ADMIN']));
    expect(spec.linux?.maskedPaths).toBeUndefined();
    expect(spec.linux?.readonlyPaths).toBeUndefined();
    expect(spec.mounts?.find((m) => m.type === 'sysfs')?.options).toEqual(['nosuid', 'noexec', 'nodev', 'rw']);
    expect(spec.linux?.resources?.devices).toEqual([{ allow: true, access: 'rwm' }]);
    expect(spec.linux?.seccomp).toBeUndefined();
  });

  it('adds and drops capabilities by any spelling, with ALL', async () => {
    const spec = await generate({ capAdd: ['net_admin', 'CAP_SYS_TIME'], capDrop: ['MKNOD', 'cap_net_raw'] });
    const caps = spec.process?.capabilities?.bounding ?? [];
    expect(caps).toEqual(expect.arrayContaining(['CAP_NET_ADMIN', 'CAP_SYS_TIME', 'CAP_CHOWN']));
    expect(caps).not.toContain('CAP_MKNOD');
    expect(caps).not.toContain('CAP_NET_RAW');
    expect(spec.process?.capabilities?.effective).toEqual(caps);
    expect(spec.process?.capabilities?.permitted).toEqual(caps);

    const minimal = await generate({ capDrop: ['ALL'], capAdd: ['NET_BIND_SERVICE'] });
    expect(minimal.process?.capabilities?.bounding).toEqual(['CAP_NET_BIND_SERVICE']);
    const everything = await generate({ capAdd: ['ALL'] });
    expect(everything.process?.capabilities?.bounding).toEqual(currentCapabilities());

    const err = await rejection(generateSpec({ namespace: 'd', id: 'x', capAdd: ['CAP_FLY'] }));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain('CAP_FLY');
  });

  it('allows the syscalls of added capabilities through seccomp', async () => {
    if (!kernelHasSeccomp) return;
    const names = (s: RuntimeSpec): string[] => (s.linux?.seccomp?.syscalls ?? []).flatMap((c) => (c.args ? [] : c.names));
    expect(names(await generate())).not.toContain('settimeofday');
    expect(names(await generate({ capAdd: ['SYS_TIME'] }))).toContain('settimeofday');
    expect(names(await generate({ capAdd: ['SYS_ADMIN'] }))).toContain('mount');
  });

  it('sets rlimits, replacing one of the same type', async () => {
    const spec = await generate({
      rlimits: [
        { type: 'RLIMIT_NOFILE', soft: 4096, hard: 8192 },
        { type: 'RLIMIT_NPROC', soft: 100, hard: 100 },
      ],
    });
    expect(spec.process?.rlimits).toEqual([
      { type: 'RLIMIT_NOFILE', soft: 4096, hard: 8192 },
      { type: 'RLIMIT_NPROC', soft: 100, hard: 100 },
    ]);
    for (const bad of [{ type: 'NOFILE', soft: 1, hard: 1 }, { type: 'RLIMIT_CORE', soft: 2, hard: 1 }]) {
      expect(isInvalidArgument(await rejection(generateSpec({ namespace: 'd', id: 'x', rlimits: [bad] })))).toBe(true);
    }
  });

  it('sets hostname, annotations, cgroups path and resources', async () => {
    const spec = await generate({
      hostname: 'web-1',
      annotations: { 'org.example/owner': 'team-a' },
      cgroupsPath: '/custom/web',
      memoryLimit: 256 * 1024 * 1024,
      cpuShares: 512,
    });
    expect(spec.hostname).toBe('web-1');
    expect(spec.annotations).toEqual({ 'org.example/owner': 'team-a' });
    expect(spec.linux?.cgroupsPath).toBe('/custom/web');
    expect(spec.linux?.resources?.memory).toEqual({ limit: 268435456 });
    expect(spec.linux?.resources?.cpu).toEqual({ shares: 512 });
    expect(spec.linux?.resources?.devices?.[0]).toEqual({ allow: false, access: 'rwm' });
    expect((await generate()).linux?.cgroupsPath).toBe('/default/web');
    expect(isInvalidArgument(await rejection(generateSpec({ namespace: 'd', id: 'x', memoryLimit: -1 })))).toBe(true);
  });

  it('combines many options into one valid spec', async () => {
    await generate({
      imageConfig: IMAGE,
      args: ['/bin/sh'],
      env: ['A=1'],
      user: 'app',
      hostname: 'h',
      terminal: true,
      hostNetwork: true,
      readonlyRootfs: true,
      mounts: [{ destination: '/data', type: 'bind', source: '/data', options: ['rbind'] }],
      capAdd: ['SYS_PTRACE'],
      rlimits: [{ type: 'RLIMIT_NPROC', soft: 10, hard: 10 }],
      annotations: { a: 'b' },
      memoryLimit: 1 << 30,
      cpuShares: 1024,
    });
  });

  describe('exec process', () => {
    async function validExec(spec: RuntimeSpec, process: RuntimeSpec['process']): Promise<void> {
      validate({ ...spec, process });
    }

    it('keeps the container process but replaces command, terminal, env, cwd and user', async () => {
      const spec = await generate({ imageConfig: IMAGE, capAdd: ['SYS_PTRACE'] });
      const exec = await execProcessSpec(spec, {
        args: ['/bin/sh', '-c', 'ps'],
        terminal: true,
        env: ['APP_MODE=debug'],
        cwd: '/tmp',
        user: 'nobody',
        rootfs,
      });
      await validExec(spec, exec);
      expect(exec.args).toEqual(['/bin/sh', '-c', 'ps']);
      expect(exec.terminal).toBe(true);
      expect(exec.cwd).toBe('/tmp');
      expect(exec.env).toEqual(['PATH=/opt/app/bin:/usr/bin:/bin', 'LANG=C.UTF-8', 'APP_MODE=debug']);
      expect(exec.user).toEqual({ uid: 65534, gid: 65534, additionalGids: [65534] });
      expect(exec.capabilities).toEqual(spec.process?.capabilities);
      expect(exec.rlimits).toEqual(spec.process?.rlimits);
      // The container's own spec is untouched.
      expect(spec.process?.args).toEqual(['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;']);
      expect(spec.process?.user.uid).toBe(101);
    });

    it('inherits what is not given, and takes a resolved user as is', async () => {
      const spec = await generate({ imageConfig: IMAGE, terminal: true });
      const exec = await execProcessSpec(spec, { args: ['id'], terminal: false, user: { uid: 5, gid: 6 } });
      await validExec(spec, exec);
      expect(exec.terminal).toBe(false);
      expect(exec.cwd).toBe('/srv');
      expect(exec.env).toEqual(spec.process?.env);
      expect(exec.user).toEqual({ uid: 5, gid: 6 });
      const inherited = await execProcessSpec(spec, { args: ['id'], terminal: false });
      expect(inherited.user).toEqual(spec.process?.user);
    });

    it('rejects an empty command and a spec without a process', async () => {
      const spec = await generate({ imageConfig: IMAGE });
      expect(isInvalidArgument(await rejection(execProcessSpec(spec, { args: [], terminal: false })))).toBe(true);
      const { process: _process, ...bare } = spec;
      expect(isInvalidArgument(await rejection(execProcessSpec(bare, { args: ['id'], terminal: false })))).toBe(true);
    });
  });
});
