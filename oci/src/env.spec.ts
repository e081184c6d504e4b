import { isInvalidArgument } from '@berth/core';
import { envKey, mergeEnv } from './env';

describe('mergeEnv', () => {
  it('replaces by name in place and appends new names', () => {
    expect(mergeEnv(['PATH=/bin', 'HOME=/root', 'LANG=C'], ['HOME=/home/a', 'EXTRA=1'])).toEqual([
      'PATH=/bin',
      'HOME=/home/a',
      'LANG=C',
      'EXTRA=1',
    ]);
  });

  it('removes a name given without a value, and keeps values containing =', () => {
    expect(mergeEnv(['A=1', 'B=2', 'C=x=y'], ['B'])).toEqual(['A=1', 'C=x=y']);
    expect(mergeEnv(['A=1'], ['A=b=c'])).toEqual(['A=b=c']);
  });

  it('treats an empty value as a value, and a later override wins', () => {
    expect(mergeEnv(['A=1'], ['A=', 'N=1', 'N=2'])).toEqual(['A=', 'N=2']);
  });

  it('leaves its inputs untouched', () => {
    const base = ['A=1'];
    mergeEnv(base, ['A=2', 'B=3']);
    expect(base).toEqual(['A=1']);
  });

  it('rejects an entry with no name', () => {
    let caught: unknown;
    try {
      mergeEnv([], ['=oops']);
    } catch (err) {
      caught = err;
    }
    expect(isInvalidArgument(caught)).toBe(true);
    expect(String(caught)).toContain('=oops');
  });

  it('names variables', () => {
    expect(envKey('A=b=c')).toBe('A');
    expect(envKey('BARE')).toBe('BARE');
  });
});
