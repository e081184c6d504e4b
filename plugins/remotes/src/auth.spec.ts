import { isInvalidArgument } from '@berth/core';
import { mergeScopes, parseWwwAuthenticate, redact, toCredentialsProvider } from './auth';

describe('WWW-Authenticate parsing', () => {
  it('reads a distribution Bearer challenge', () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
      },
    ]);
  });

  it('reads Basic, unquoted values, escapes and several challenges', () => {
    expect(parseWwwAuthenticate('Basic realm="basic-realm"')).toEqual([{ scheme: 'basic', params: { realm: 'basic-realm' } }]);
    expect(parseWwwAuthenticate('Bearer realm=http://x/t, service=svc')).toEqual([
      { scheme: 'bearer', params: { realm: 'http://x/t', service: 'svc' } },
    ]);
    expect(parseWwwAuthenticate('Basic realm="a \\"q\\"", Bearer realm="r",error="insufficient_scope"')).toEqual([
      { scheme: 'basic', params: { realm: 'a "q"' } },
      { scheme: 'bearer', params: { realm: 'r', error: 'insufficient_scope' } },
    ]);
    expect(parseWwwAuthenticate(['Basic realm="x"', 'Negotiate'])).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'negotiate', params: {} },
    ]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });
});

describe('scopes and credentials', () => {
  it('merges actions per repository', () => {
    expect(mergeScopes(['repository:a:pull', 'repository:a:push', 'repository:b:pull', 'repository:a:pull'])).toEqual([
      'repository:a:pull,push',
      'repository:b:pull',
    ]);
    expect(mergeScopes(['repository:a:pull repository:c:pull'])).toEqual(['repository:a:pull', 'repository:c:pull']);
  });

  it('parses user:password without echoing it when malformed', () => {
    expect(toCredentialsProvider('alice:s3:cret')('h')).toEqual({ username: 'alice', password: 's3:cret' });
    let caught: unknown;
    try {
      toCredentialsProvider('hunter2');
    } catch (err) {
      caught = err;
    }
    expect(isInvalidArgument(caught)).toBe(true);
    expect((caught as Error).message).not.toContain('hunter2');
  });

  it('redacts secrets from server text', () => {
    expect(redact('user alice with pw s3cret denied', { username: 'alice', password: 's3cret' })).toBe(
      'user <redacted> with pw <redacted> denied',
    );
  });
});
