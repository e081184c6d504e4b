import { isInvalidArgument } from '@berth/core';
import { formatReference, manifestLocator, normalizeReference, parseReference } from './reference';

const digest = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['someuser/app', 'docker.io/someuser/app:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
    ['127.0.0.1:5000/a/b/c:v1.2-rc_3', '127.0.0.1:5000/a/b/c:v1.2-rc_3'],
    ['registry.example.com/team/app', 'registry.example.com/team/app:latest'],
    [`busybox@${digest}`, `docker.io/library/busybox@${digest}`],
    [`127.0.0.1:5000/busybox:1@${digest}`, `127.0.0.1:5000/busybox:1@${digest}`],
    ['[::1]:5000/app', '[::1]:5000/app:latest'],
    ['a.b/x__y/z-1.2', 'a.b/x__y/z-1.2:latest'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeReference(input)).toBe(expected);
  });

  it('splits host, path, tag and digest', () => {
    const ref = parseReference(`127.0.0.1:5000/team/app:v1@${digest}`);
    expect(ref).toEqual({ domain: '127.0.0.1:5000', path: 'team/app', tag: 'v1', digest });
    expect(manifestLocator(ref)).toBe(digest);
    expect(manifestLocator(parseReference('app:v2'))).toBe('v2');
    expect(formatReference(ref)).toBe(`127.0.0.1:5000/team/app:v1@${digest}`);
  });

  it('keeps a digest-only reference without a tag', () => {
    expect(parseReference(`app@${digest}`).tag).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    [' busybox', /whitespace/],
    ['Busybox', /lowercase/],
    ['docker.io/Library/busybox', /lowercase/],
    ['busybox:', /tag ""/],
    ['busybox:-x', /tag "-x"/],
    [`busybox:${'t'.repeat(129)}`, /tag/],
    ['busybox@sha256:abc', /sha256:<64/],
    [`busybox@sha512:${'a'.repeat(128)}`, /unsupported algorithm/],
    ['bad_host.com:99999/app', /registry host/],
    ['127.0.0.1:5000/', /repository name is empty/],
    ['a//b', /path component ""/],
    ['host.io/a..b', /path component "a..b"/],
    ['/app', /path component/],
    [`h.io/${'a'.repeat(300)}`, /longer than 255/],
  ])('rejects %j', (input, why) => {
    let caught: unknown;
    try {
      parseReference(input);
    } catch (err) {
      caught = err;
    }
    expect(isInvalidArgument(caught)).toBe(true);
    expect((caught as Error).message).toMatch(why);
    expect((caught as Error).message).toContain('invalid image reference');
  });
});
