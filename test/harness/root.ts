/** True when the tests run as root (CI does; nothing may be skipped there). */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * `describe` for suites that need root (mounts, runc, ctr against a daemon
 * socket). They skip only when not root; scripts/summarize-jest.js fails the run
 * if anything is skipped as root.
 */
export const describeAsRoot: jest.Describe = isRoot ? describe : describe.skip;
