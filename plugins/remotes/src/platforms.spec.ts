import { isInvalidArgument } from '@berth/core';
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from './platforms';

describe('platforms', () => {
  it('parses and normalises aliases', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/aarch64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/arm')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('linux/armhf')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(formatPlatform(parsePlatform('linux/arm/v6'))).toBe('linux/arm/v6');
  });

  it('rejects malformed specs', () => {
    for (const bad of ['linux', 'linux/', 'a/b/c/d', 'linux/amd 64']) {
      expect(() => parsePlatform(bad)).toThrow(/expected os\/arch/);
      try {
        parsePlatform(bad);
      } catch (err) {
        expect(isInvalidArgument(err)).toBe(true);
      }
    }
  });

  it('matches by os, arch and variant', () => {
    const amd64 = parsePlatform('linux/amd64');
    expect(platformMatches(amd64, { os: 'linux', architecture: 'amd64' })).toBe(true);
    expect(platformMatches(amd64, { os: 'linux', architecture: 'amd64', variant: 'v1' })).toBe(true);
    expect(platformMatches(amd64, { os: 'linux', architecture: 'arm64' })).toBe(false);
    expect(platformMatches(amd64, { os: 'windows', architecture: 'amd64' })).toBe(false);
    expect(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm/v6'), { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(false);
  });

  it('knows the host', () => {
    const host = hostPlatform();
    expect(host.os).toBe(process.platform === 'win32' ? 'windows' : process.platform);
    if (process.arch === 'x64') expect(host.architecture).toBe('amd64');
  });
});
