import { familiarDockerTag, normalizeDockerReference, ociReferenceName, translateRefName } from './references';
import { archivePath } from './tar-reader';
import { parsePlatform, platformMatches } from './platforms';

describe('image names', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox:1', 'docker.io/library/busybox:1'],
    ['me/app:v1', 'docker.io/me/app:v1'],
    ['index.docker.io/me/app', 'docker.io/me/app:latest'],
    ['localhost/app:dev', 'localhost/app:dev'],
    ['example.com:5000/team/app:v2', 'example.com:5000/team/app:v2'],
    [`app@sha256:${'a'.repeat(64)}`, `docker.io/library/app@sha256:${'a'.repeat(64)}`],
  ])('normalizes docker reference %s', (short, full) => {
    expect(normalizeDockerReference(short)).toBe(full);
  });

  it.each(['Upper:1', 'me/Upper:1', 'app:bad tag', 'app:', '', 'app@sha256:zz'])('refuses the docker reference %p', (bad) => {
    expect(() => normalizeDockerReference(bad)).toThrow(/invalid image reference/);
  });

  it.each([
    ['docker.io/library/busybox:latest', 'busybox:latest'],
    ['docker.io/me/app:v1', 'me/app:v1'],
    ['example.com/app', 'example.com/app:latest'],
    [`example.com/app@sha256:${'a'.repeat(64)}`, undefined],
    ['not a name', undefined],
  ])('gives docker RepoTags %s as %p', (name, tag) => {
    expect(familiarDockerTag(name)).toBe(tag);
  });

  it.each([
    ['docker.io/library/busybox:latest', 'latest'],
    ['localhost:5000/app:v1', 'v1'],
    [`example.com/app@sha256:${'a'.repeat(64)}`, `@sha256:${'a'.repeat(64)}`],
    [`example.com/app:v1@sha256:${'a'.repeat(64)}`, `v1@sha256:${'a'.repeat(64)}`],
    ['example.com/app', ''],
    ['busybox:latest', 'busybox:latest'],
  ])('takes the OCI ref name of %s as %p, as containerd does', (name, ref) => {
    expect(ociReferenceName(name)).toBe(ref);
  });

  it('translates OCI ref names as ctr --base-name does', () => {
    expect(translateRefName('v1', 'example.com/app', true)).toBe('example.com/app:v1');
    expect(translateRefName('example.com/app:v2', 'example.com/app', true)).toBe('example.com/app:v2');
    expect(translateRefName('example.com/application:v2', 'example.com/app', true)).toBeUndefined();
    expect(translateRefName('docker.io/library/nginx:1', 'nginx', true)).toBe('docker.io/library/nginx:1');
    expect(translateRefName('quay.io/x:1', 'import-2024-01-01', false)).toBe('quay.io/x:1');
    expect(translateRefName('', 'p', false)).toBeUndefined();
  });
});

describe('archive member names', () => {
  it.each([
    ['index.json', 'index.json'],
    ['./index.json', 'index.json'],
    ['./blobs//sha256/./abc', 'blobs/sha256/abc'],
    ['./', ''],
    ['dir/', 'dir'],
  ])('takes %p as %p', (raw, path) => {
    expect(archivePath(raw)).toBe(path);
  });

  it.each(['../x', 'a/../../x', 'a/..', '/etc/passwd', '//x', 'C:\\x', 'a\0b'])('refuses %p', (raw) => {
    expect(() => archivePath(raw)).toThrow(/absolute|\.\.|NUL/);
  });
});

describe('platforms', () => {
  it('parses and matches os/arch[/variant], treating baseline variants as none', () => {
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('Linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(() => parsePlatform('linux')).toThrow(/os\/arch/);
    const wanted = [parsePlatform('linux/arm64')];
    expect(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, wanted)).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, wanted)).toBe(false);
    // containerd's matcher: an arm/v7 platform also runs arm/v6 images, not the reverse
    expect(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, [parsePlatform('linux/arm/v7')])).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, [parsePlatform('linux/arm/v6')])).toBe(false);
  });
});
