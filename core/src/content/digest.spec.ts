import { errorKind } from '../errdefs';
import { isValidDigest, parseDigest, sha256Digest, validateDigest } from './digest';

const hex = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('digests', () => {
  it('computes sha256 digests of bytes and strings', () => {
    expect(sha256Digest(new Uint8Array())).toBe(`sha256:${hex}`);
    expect(sha256Digest('')).toBe(`sha256:${hex}`);
    expect(sha256Digest('abc')).toBe(sha256Digest(Buffer.from('abc')));
  });

  it('parses sha256:<64 lowercase hex>', () => {
    expect(parseDigest(`sha256:${hex}`)).toEqual({ algorithm: 'sha256', encoded: hex });
    expect(() => validateDigest(`sha256:${hex}`)).not.toThrow();
    expect(isValidDigest(`sha256:${hex}`)).toBe(true);
  });

  it.each([
    '',
    hex,
    `sha256:${hex.toUpperCase()}`,
    `sha256:${hex.slice(1)}`,
    `sha256:${hex}0`,
    `sha512:${hex}${hex}`,
    ` sha256:${hex}`,
    `sha256:${hex}\n`,
  ])('rejects %j with InvalidArgument naming it', (value) => {
    let caught: unknown;
    try {
      parseDigest(value);
    } catch (err) {
      caught = err;
    }
    expect(errorKind(caught)).toBe('invalid-argument');
    expect((caught as Error).message).toBe(
      `invalid digest ${JSON.stringify(value)}: must be sha256:<64 lowercase hex>`,
    );
    expect(isValidDigest(value)).toBe(false);
  });

  it('names the argument and reports non-strings', () => {
    expect(() => validateDigest('x', 'expected digest')).toThrow('invalid expected digest "x"');
    expect(() => validateDigest(42)).toThrow('invalid digest: expected a string, got number');
  });

  it('shortens long values in messages', () => {
    expect(() => validateDigest('x'.repeat(1000))).toThrow(`invalid digest "${'x'.repeat(160)}"…`);
  });
});
