/** True when the tests run as root (CI does; nothing may be skipped there). */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** `describe` for suites that mount, mkfifo in root-owned places or start shims: they skip only when not root. */
export const describeAsRoot: jest.Describe = isRoot ? describe : describe.skip;
