import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorKind } from '@berth/core';
import { getxattr, lgetxattr, listxattr, llistxattr, lremovexattr, lsetxattr, setxattr } from './index';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const describeAsRoot: jest.Describe = isRoot ? describe : describe.skip;

describe('xattrs', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'berth-xattr-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('sets, reads, lists and removes user attributes as bytes', () => {
    const file = join(root, 'f');
    writeFileSync(file, '');
    const binary = Buffer.from([0, 1, 2, 255]);
    setxattr(file, 'user.binary', binary);
    setxattr(file, 'user.text', 'hello');
    expect(getxattr(file, 'user.binary')).toEqual(binary);
    expect(lgetxattr(file, 'user.text').toString()).toBe('hello');
    expect(listxattr(file).sort()).toEqual(['user.binary', 'user.text']);
    setxattr(file, 'user.empty', Buffer.alloc(0));
    expect(getxattr(file, 'user.empty')).toEqual(Buffer.alloc(0));
    lremovexattr(file, 'user.text');
    expect(llistxattr(file).sort()).toEqual(['user.binary', 'user.empty']);
  });

  it('reports a missing attribute as ENODATA naming attribute and path', () => {
    const file = join(root, 'f');
    writeFileSync(file, '');
    let caught: unknown;
    try {
      getxattr(file, 'user.none');
    } catch (err) {
      caught = err;
    }
    expect((caught as Error).message).toBe(`getxattr user.none on ${file}: ENODATA (No data available)`);
    expect(errorKind(caught)).toBe('not-found');
  });

  it('honours create and replace', () => {
    const file = join(root, 'f');
    writeFileSync(file, '');
    setxattr(file, 'user.a', '1', { create: true });
    expect(() => setxattr(file, 'user.a', '2', { create: true })).toThrow(/EEXIST/);
    expect(() => setxattr(file, 'user.b', '2', { replace: true })).toThrow(/ENODATA/);
  });

  describeAsRoot('as root', () => {
    it('handles trusted.* and security.capability, and attributes on symlinks themselves', () => {
      const file = join(root, 'f');
      const link = join(root, 'link');
      writeFileSync(file, '');
      symlinkSync('f', link);
      lsetxattr(link, 'trusted.on-link', 'L');
      setxattr(file, 'trusted.overlay.opaque', 'y');
      // VFS_CAP_REVISION_2 with cap_net_bind_service permitted.
      const capability = Buffer.from('0000000200040000000000000000000000000000', 'hex');
      capability.writeUInt32LE(0x02000001, 0);
      capability.writeUInt32LE(1 << 10, 4);
      setxattr(file, 'security.capability', capability);
      expect(lgetxattr(link, 'trusted.on-link').toString()).toBe('L');
      expect(llistxattr(link)).toEqual(['trusted.on-link']);
      expect(listxattr(link).sort()).toEqual(['security.capability', 'trusted.overlay.opaque']);
      expect(getxattr(file, 'security.capability')).toEqual(capability);
    });
  });
});
