import { containerdEvents, goZeroTime, isUnsetTime } from './index';

describe('Go zero time', () => {
  it('is 0001-01-01T00:00:00Z and a fresh Date each time', () => {
    const first = goZeroTime();
    expect(first.toISOString()).toBe('0001-01-01T00:00:00.000Z');
    first.setTime(0);
    expect(goZeroTime().toISOString()).toBe('0001-01-01T00:00:00.000Z');
  });

  it('counts as unset, like a missing timestamp', () => {
    expect(isUnsetTime(undefined)).toBe(true);
    expect(isUnsetTime(goZeroTime())).toBe(true);
    expect(isUnsetTime(new Date(0))).toBe(false);
  });

  it('survives an encode/decode round trip as unset', () => {
    const bytes = containerdEvents.TaskDelete.encode({
      containerId: 'c',
      pid: 1,
      exitStatus: 0,
      exitedAt: goZeroTime(),
      id: 'c',
    }).finish();
    expect(isUnsetTime(containerdEvents.TaskDelete.decode(bytes).exitedAt)).toBe(true);
  });
});
