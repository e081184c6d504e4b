import { prctlGetChildSubreaper, prctlSetChildSubreaper, unshare } from './index';

describe('prctl child subreaper', () => {
  it('turns on and off', () => {
    const before = prctlGetChildSubreaper();
    try {
      prctlSetChildSubreaper(true);
      expect(prctlGetChildSubreaper()).toBe(true);
      prctlSetChildSubreaper(false);
      expect(prctlGetChildSubreaper()).toBe(false);
    } finally {
      prctlSetChildSubreaper(before);
    }
  });
});

describe('unshare', () => {
  it('is refused for a user namespace in a multithreaded process, with the errno', () => {
    expect(() => unshare(['user'])).toThrow(/^unshare\(user\): EINVAL \(Invalid argument\)$/);
  });
});
