import { isInvalidArgument } from '../errdefs';
import { MAX_LABEL_SIZE, validateIdentifier, validateLabel, validateLabels } from './identifiers';

function invalidMessage(run: () => void): string {
  try {
    run();
  } catch (err) {
    expect(isInvalidArgument(err)).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected InvalidArgumentError');
}

describe('validateIdentifier', () => {
  it.each(['default', 'k8s.io', 'a', 'A-b_c.d', '0', 'moby', 'a'.repeat(76)])('accepts %j', (name) => {
    expect(() => validateIdentifier('namespace', name)).not.toThrow();
  });

  it.each([['../x'], ['a..b'], ['-a'], ['a-'], ['a/b'], ['a b'], ['.a'], ['a\n'], ['ñame'], ['名前']])(
    'rejects %j naming kind, value and pattern',
    (name) => {
      const message = invalidMessage(() => validateIdentifier('namespace', name));
      expect(message).toBe(`namespace ${JSON.stringify(name)}: must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$`);
    },
  );

  it('rejects empty', () => {
    expect(invalidMessage(() => validateIdentifier('namespace', ''))).toBe('namespace: must not be empty');
  });

  it('rejects 77 characters and names the kind', () => {
    const message = invalidMessage(() => validateIdentifier('container id', 'a'.repeat(77)));
    expect(message).toMatch(/^container id "a+": longer than 76 characters$/);
  });

  it('measures length in bytes, as containerd does', () => {
    // 39 two-byte characters: 39 UTF-16 units but 78 bytes.
    expect(invalidMessage(() => validateIdentifier('namespace', 'ñ'.repeat(39)))).toMatch(/longer than 76/);
  });

  it('truncates very long values in the message', () => {
    const message = invalidMessage(() => validateIdentifier('namespace', 'x'.repeat(10_000)));
    expect(message.length).toBeLessThan(200);
  });
});

describe('validateLabels', () => {
  it('accepts key + value of exactly 4096 bytes', () => {
    expect(() => validateLabels({ k: 'v'.repeat(MAX_LABEL_SIZE - 1) })).not.toThrow();
  });

  it('rejects key + value over 4096 bytes naming the key', () => {
    const message = invalidMessage(() => validateLabels({ ok: 'x', 'big.key': 'v'.repeat(MAX_LABEL_SIZE) }));
    expect(message).toBe(
      'label "big.key": key and value length (4103 bytes) greater than maximum size (4096 bytes)',
    );
  });

  it('counts UTF-8 bytes, not characters', () => {
    // 2048 chars of 2 bytes each + 1-byte key = 4097 bytes.
    expect(invalidMessage(() => validateLabels({ k: 'é'.repeat(2048) }))).toMatch(/4097 bytes/);
  });

  it('rejects an empty key', () => {
    expect(invalidMessage(() => validateLabels({ '': 'v' }))).toBe('label key must not be empty');
  });

  it('truncates a huge key in the message', () => {
    const message = invalidMessage(() => validateLabel('k'.repeat(5000), ''));
    expect(message.length).toBeLessThan(200);
  });

  it('accepts empty labels and empty values', () => {
    expect(() => validateLabels({})).not.toThrow();
    expect(() => validateLabel('containerd.io/gc.root', '')).not.toThrow();
  });
});
