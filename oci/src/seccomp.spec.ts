import { readFileSync } from 'node:fs';
import { DEFAULT_CAPABILITIES } from './capabilities';
import { defaultSeccompProfile, seccompSupported } from './seccomp';
import type { SpecSeccomp } from './types';

function allowedNames(profile: SpecSeccomp): string[] {
  return (profile.syscalls ?? []).filter((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args).flatMap((s) => s.names);
}

describe('default seccomp profile', () => {
  it('reports seccomp support from /proc/self/status', () => {
    expect(seccompSupported()).toBe(/^Seccomp:/m.test(readFileSync('/proc/self/status', 'utf8')));
  });

  it('denies by default with EPERM and allows an explicit list once each', () => {
    const profile = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'x64');
    expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(profile.defaultErrnoRet).toBe(1);
    expect(profile.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const names = allowedNames(profile);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(['read', 'write', 'openat', 'execve', 'arch_prctl', 'chroot']));
    for (const dangerous of ['mount', 'umount2', 'kexec_load', 'init_module', 'reboot', 'setns', 'unshare', 'bpf', 'keyctl', 'add_key']) {
      expect(names).not.toContain(dangerous);
    }
  });

  it('lets clone create no namespaces and makes clone3 fail with ENOSYS without CAP_SYS_ADMIN', () => {
    const profile = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'x64');
    const clone = profile.syscalls?.find((s) => s.names.includes('clone'));
    expect(clone).toEqual({
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    });
    expect(profile.syscalls?.find((s) => s.names.includes('clone3'))).toEqual({
      names: ['clone3'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: 38,
    });
    const personality = profile.syscalls?.filter((s) => s.names.includes('personality')) ?? [];
    expect(personality.map((s) => s.args?.[0].value)).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff]);
  });

  it('widens the list for capabilities the container holds', () => {
    const admin = defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN'], 'x64');
    expect(allowedNames(admin)).toEqual(expect.arrayContaining(['mount', 'clone', 'clone3', 'unshare', 'setns']));
    expect(admin.syscalls?.some((s) => s.names.includes('clone') && s.args)).toBe(false);
    expect(allowedNames(defaultSeccompProfile(['CAP_SYS_MODULE'], 'x64'))).toContain('finit_module');
    expect(allowedNames(defaultSeccompProfile([], 'x64'))).not.toContain('chroot');
  });

  it('covers the compat architectures of the host and adds arch-only syscalls', () => {
    const arm = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'arm64');
    expect(arm.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(allowedNames(arm)).toContain('set_tls');
    expect(allowedNames(arm)).not.toContain('arch_prctl');
    expect(defaultSeccompProfile(DEFAULT_CAPABILITIES, 's390x').syscalls?.find((s) => s.names[0] === 'clone')?.args?.[0].index).toBe(1);
  });
});
