import * as fs from 'fs/promises';
import { join } from 'path';
import { lgetxattr, llistxattr } from '@berth/sys';
import { applyLayer } from './apply';
import { splitDevice } from './host-ops';
import { buildTar, describeAsRoot, gzip, makeWorkspace, sha256, streamOf } from './test-fixtures/tar-builder';
import { listTree } from './test-fixtures/trees';
import { zstdLayer, zstdLayerEntries } from './test-fixtures/zstd-fixtures';

type Workspace = Awaited<ReturnType<typeof makeWorkspace>>;
let ws: Workspace;
beforeEach(async () => {
  ws = await makeWorkspace();
});
afterEach(async () => {
  await ws.cleanup();
});

const MTIME = 1700000000;

describeAsRoot('applyLayer: a plain layer', () => {
  it('creates files, dirs, symlinks, hard links, devices with their modes, owners, times and xattrs', async () => {
    const tar = buildTar([
      { name: 'usr/', type: '5', mode: 0o755, uid: 0, gid: 0, mtime: MTIME - 100 },
      { name: 'usr/bin/', type: '5', mode: 0o750, uid: 7, gid: 8, mtime: MTIME - 50 },
      { name: 'usr/bin/tool', data: '#!/bin/sh\necho hi\n', mode: 0o4755, uid: 0, gid: 0, mtime: MTIME },
      {
        name: 'usr/bin/owned',
        data: 'x',
        mode: 0o2640,
        uid: 1234,
        gid: 5678,
        mtime: MTIME + 1,
        pax: { 'SCHILY.xattr.user.comment': 'hello', 'SCHILY.xattr.trusted.blob': Buffer.from([0, 1, 2, 255]) },
      },
      { name: 'usr/bin/link', type: '2', linkname: 'tool', uid: 3, gid: 4, mtime: MTIME + 2 },
      { name: 'usr/bin/hard', type: '1', linkname: 'usr/bin/tool' },
      { name: 'dev/', type: '5', mode: 0o755 },
      { name: 'dev/null', type: '3', devmajor: 1, devminor: 3, mode: 0o666, mtime: MTIME },
      { name: 'dev/loop9', type: '4', devmajor: 7, devminor: 9, mode: 0o660, gid: 6 },
      { name: 'dev/pipe', type: '6', mode: 0o620 },
      // Numbers past the old 8-bit encoding, to check makedev/split agree with the kernel.
      { name: 'dev/big', type: '4', devmajor: 4095, devminor: 300000, mode: 0o600 },
      { name: 'sticky/', type: '5', mode: 0o1777 },
    ]);
    const result = await applyLayer(streamOf(tar), ws.target);
    expect(result).toEqual({ diffID: sha256(tar), size: tar.length, compression: 'none' });
    const t = (path: string) => join(ws.target, path);

    const tool = await fs.lstat(t('usr/bin/tool'));
    expect(tool.mode & 0o7777).toBe(0o4755);
    expect(tool.mtimeMs).toBe(MTIME * 1000);
    expect(await fs.readFile(t('usr/bin/tool'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(tool.nlink).toBe(2);
    expect((await fs.lstat(t('usr/bin/hard'))).ino).toBe(tool.ino);

    const owned = await fs.lstat(t('usr/bin/owned'));
    expect([owned.uid, owned.gid, owned.mode & 0o7777]).toEqual([1234, 5678, 0o2640]);
    expect(lgetxattr(t('usr/bin/owned'), 'user.comment').toString()).toBe('hello');
    expect([...lgetxattr(t('usr/bin/owned'), 'trusted.blob')]).toEqual([0, 1, 2, 255]);

    const link = await fs.lstat(t('usr/bin/link'));
    expect(link.isSymbolicLink()).toBe(true);
    expect(await fs.readlink(t('usr/bin/link'))).toBe('tool');
    expect([link.uid, link.gid, link.mtimeMs]).toEqual([3, 4, (MTIME + 2) * 1000]);

    const bin = await fs.lstat(t('usr/bin'));
    expect([bin.mode & 0o7777, bin.uid, bin.gid]).toEqual([0o750, 7, 8]);
    // Directory times are set after their children were created.
    expect(bin.mtimeMs).toBe((MTIME - 50) * 1000);
    expect((await fs.lstat(t('usr'))).mtimeMs).toBe((MTIME - 100) * 1000);
    expect((await fs.lstat(t('sticky'))).mode & 0o7777).toBe(0o1777);

    const devNull = await fs.lstat(t('dev/null'));
    expect(devNull.isCharacterDevice()).toBe(true);
    expect(splitDevice(devNull.rdev)).toEqual({ major: 1, minor: 3 });
    expect(devNull.mode & 0o7777).toBe(0o666);
    const loop = await fs.lstat(t('dev/loop9'));
    expect(loop.isBlockDevice()).toBe(true);
    expect(splitDevice(loop.rdev)).toEqual({ major: 7, minor: 9 });
    expect(loop.gid).toBe(6);
    expect(splitDevice((await fs.lstat(t('dev/big'))).rdev)).toEqual({ major: 4095, minor: 300000 });
    const pipe = await fs.lstat(t('dev/pipe'));
    expect(pipe.isFIFO()).toBe(true);
    expect(pipe.mode & 0o7777).toBe(0o620);
  });

  it('reads GNU long names and PAX paths, and creates parents a layer does not list', async () => {
    const deep = `${'d'.repeat(120)}/${'e'.repeat(150)}/file`;
    const tar = Buffer.concat([
      buildTar([{ name: '././@LongLink', type: 'L', data: `${deep}\0` }], { end: false }),
      buildTar([{ name: deep.slice(0, 100), data: 'long' }], { end: false }),
      buildTar([{ name: 'ignored', data: 'pax', pax: { path: 'a/b/c/pax-named', mtime: '1700000000.5' } }]),
    ]);
    await applyLayer(streamOf(tar), ws.target);
    expect(await fs.readFile(join(ws.target, deep), 'utf8')).toBe('long');
    expect(await fs.readFile(join(ws.target, 'a/b/c/pax-named'), 'utf8')).toBe('pax');
    expect((await fs.lstat(join(ws.target, 'a/b/c/pax-named'))).mtimeMs).toBe(1700000000500);
    expect((await fs.lstat(join(ws.target, 'a/b'))).mode & 0o7777).toBe(0o755);
  });

  it('replaces what a lower layer had at a name, and keeps an existing directory', async () => {
    await fs.mkdir(join(ws.target, 'etc/keep'), { recursive: true });
    await fs.writeFile(join(ws.target, 'etc/keep/old'), 'old');
    await fs.mkdir(join(ws.target, 'was-dir/child'), { recursive: true });
    await fs.writeFile(join(ws.target, 'was-file'), 'file');
    const tar = buildTar([
      { name: 'etc/keep/', type: '5', mode: 0o700 },
      { name: 'was-dir', data: 'now a file' },
      { name: 'was-file/', type: '5' },
      { name: 'was-file/inside', data: 'x' },
    ]);
    await applyLayer(streamOf(tar), ws.target);
    expect(await fs.readFile(join(ws.target, 'etc/keep/old'), 'utf8')).toBe('old');
    expect((await fs.lstat(join(ws.target, 'etc/keep'))).mode & 0o777).toBe(0o700);
    expect(await fs.readFile(join(ws.target, 'was-dir'), 'utf8')).toBe('now a file');
    expect(await fs.readFile(join(ws.target, 'was-file/inside'), 'utf8')).toBe('x');
  });
});

describeAsRoot('applyLayer: layer quirks', () => {
  it('reads gzip of several members in odd chunks, and writes small and big files whole', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
    const small = Array.from({ length: 300 }, (_, i) => ({ name: `d${i % 7}/f${i}`, data: `file ${i}\n`.repeat(i) }));
    const first = buildTar([...small.slice(0, 150), { name: 'big', data: big }], { end: false });
    const second = buildTar(small.slice(150));
    const layer = Buffer.concat([gzip(first), gzip(second)]);
    const result = await applyLayer(streamOf(layer, 1001), ws.target);
    expect(result).toEqual({ diffID: sha256(Buffer.concat([first, second])), size: first.length + second.length, compression: 'gzip' });
    expect((await fs.readFile(join(ws.target, 'big'))).equals(big)).toBe(true);
    for (const { name, data } of small) expect(await fs.readFile(join(ws.target, name), 'utf8')).toBe(data);
  });

  it('forgets a directory it went through once a later entry replaces it (a symlink, then a real directory)', async () => {
    const tar = buildTar([
      { name: 'real/', type: '5' },
      { name: 'link', type: '2', linkname: 'real' },
      { name: 'link/a/', type: '5' },
      { name: 'link/a/one', data: '1' },
      { name: 'link/', type: '5' },
      { name: 'link/a/two', data: '2' },
      { name: 'real/a/three', data: '3' },
    ]);
    await applyLayer(streamOf(tar), ws.target);
    expect(await listTree(ws.target)).toEqual(['link', 'link/a', 'link/a/two', 'real', 'real/a', 'real/a/one', 'real/a/three']);
    expect((await fs.lstat(join(ws.target, 'link'))).isDirectory()).toBe(true);
  });

  it('copes with a directory that a later entry of the same layer deletes or replaces', async () => {
    const tar = buildTar([
      { name: 'gone/', type: '5' },
      { name: 'gone/x', data: 'x' },
      { name: '.wh.gone', data: '' },
      { name: 'replaced/', type: '5' },
      { name: 'replaced', data: 'file now', mtime: MTIME },
    ]);
    await applyLayer(streamOf(tar), ws.target);
    expect(await listTree(ws.target)).toEqual(['replaced']);
    expect((await fs.lstat(join(ws.target, 'replaced'))).mtimeMs).toBe(MTIME * 1000);
  });

  it("drops overlayfs's own xattrs from a layer: a layer must not steer the overlay", async () => {
    const tar = buildTar([
      {
        name: 'd/',
        type: '5',
        pax: {
          'SCHILY.xattr.trusted.overlay.redirect': '/etc',
          'SCHILY.xattr.trusted.overlay.opaque': 'y',
          'SCHILY.xattr.user.overlay.opaque': 'y',
          'SCHILY.xattr.user.kept': 'k',
        },
      },
    ]);
    await applyLayer(streamOf(tar), ws.target);
    expect(llistxattr(join(ws.target, 'd'))).toEqual(['user.kept']);
  });

  it('ignores PAX global headers, as containerd does', async () => {
    const tar = buildTar([
      { name: 'g', type: 'g', data: '20 path=renamed-all\n' },
      { name: 'file', data: 'f' },
    ]);
    await applyLayer(streamOf(tar), ws.target);
    expect(await listTree(ws.target)).toEqual(['file']);
  });

  it('stops with Canceled when the signal aborts', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(applyLayer(streamOf(buildTar([{ name: 'f', data: 'x' }])), ws.target, { signal: controller.signal })).rejects.toMatchObject({
      kind: 'canceled',
    });
  });
});

describe('applyLayer: compression and diffID', () => {
  const tar = buildTar([
    { name: 'hello.txt', data: 'hello\n' },
    { name: 'sub/', type: '5' },
    { name: 'sub/data', data: Buffer.alloc(100_000, 7) },
  ]);

  it('detects gzip by its magic bytes; the diffID is the sha256 of the uncompressed tar', async () => {
    const compressed = gzip(tar);
    const result = await applyLayer(streamOf(compressed, 999), ws.target);
    expect(result).toEqual({ diffID: sha256(tar), size: tar.length, compression: 'gzip' });
    expect(result.diffID).not.toBe(sha256(compressed));
    expect(await fs.readFile(join(ws.target, 'hello.txt'), 'utf8')).toBe('hello\n');
    expect((await fs.readFile(join(ws.target, 'sub/data'))).equals(Buffer.alloc(100_000, 7))).toBe(true);
  });

  it('applies an uncompressed tar as is', async () => {
    expect(await applyLayer(streamOf(tar, 100), ws.target)).toEqual({ diffID: sha256(tar), size: tar.length, compression: 'none' });
  });

  it('counts bytes after the end-of-archive marker in the diffID, as containerd does', async () => {
    const padded = Buffer.concat([tar, Buffer.alloc(10 * 512)]);
    expect((await applyLayer(streamOf(gzip(padded)), ws.target)).diffID).toBe(sha256(padded));
  });

  it('detects zstd and decompresses it', async () => {
    const plain = buildTar(zstdLayerEntries());
    const result = await applyLayer(streamOf(zstdLayer, 50), ws.target);
    expect(result).toEqual({ diffID: sha256(plain), size: plain.length, compression: 'zstd' });
    expect(await fs.readFile(join(ws.target, 'z/hello.txt'), 'utf8')).toBe('hello from zstd\n');
    expect((await fs.stat(join(ws.target, 'z/pattern'))).size).toBe(200 * 1024);
  });

  it('refuses bzip2 and xz with a clear message', async () => {
    await expect(applyLayer(streamOf(Buffer.from('BZh91AY&SY')), ws.target)).rejects.toThrow(/bzip2-compressed/);
    await expect(applyLayer(streamOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1])), ws.target)).rejects.toThrow(/xz-compressed/);
  });

  it('refuses corrupt gzip as InvalidArgument', async () => {
    const broken = gzip(tar);
    broken[broken.length >> 1] ^= 0xff;
    await expect(applyLayer(streamOf(broken), ws.target)).rejects.toMatchObject({ kind: 'invalid-argument' });
  });

  it('refuses a truncated gzip stream as InvalidArgument', async () => {
    const compressed = gzip(tar);
    await expect(applyLayer(streamOf(compressed.subarray(0, compressed.length - 20)), ws.target)).rejects.toMatchObject({
      kind: 'invalid-argument',
      message: expect.stringMatching(/layer is not valid gzip: unexpected end of file/),
    });
  });

  it('refuses what is not a tar', async () => {
    await expect(applyLayer(streamOf(Buffer.alloc(1024, 'a')), ws.target)).rejects.toMatchObject({
      kind: 'invalid-argument',
      message: expect.stringMatching(/bad header checksum/),
    });
  });

  it('fails with FailedPrecondition on a missing target, and releases the stream', async () => {
    const stream = streamOf(tar);
    await expect(applyLayer(stream, join(ws.dir, 'missing'))).rejects.toMatchObject({
      kind: 'failed-precondition',
      message: expect.stringMatching(/apply target .*missing does not exist/),
    });
    expect(stream.destroyed).toBe(true);
  });

  it('applies an empty layer (just the end marker)', async () => {
    const empty = Buffer.alloc(1024);
    expect(await applyLayer(streamOf(empty), ws.target)).toEqual({ diffID: sha256(empty), size: 1024, compression: 'none' });
    expect(await fs.readdir(ws.target)).toEqual([]);
  });
});

describeAsRoot('applyLayer: whiteouts', () => {
  beforeEach(async () => {
    // The layer below: what the whiteouts act on.
    const base = buildTar([
      { name: 'etc/', type: '5' },
      { name: 'etc/passwd', data: 'root' },
      { name: 'etc/shadow', data: 'secret' },
      { name: 'var/', type: '5' },
      { name: 'var/cache/', type: '5' },
      { name: 'var/cache/a/', type: '5' },
      { name: 'var/cache/a/deep', data: 'deep' },
      { name: 'var/cache/b', data: 'b' },
      { name: 'var/cache/keep-dir/', type: '5' },
      { name: 'var/cache/keep-dir/old', data: 'old' },
      { name: 'var/log', data: 'log' },
    ]);
    await applyLayer(streamOf(base), ws.target);
  });

  it('.wh.<name> deletes a file and a whole directory; the markers are not written', async () => {
    const layer = buildTar([
      { name: 'etc/.wh.shadow', data: '' },
      { name: 'var/.wh.cache', data: '' },
      { name: 'etc/.wh.not-there', data: '' },
      { name: 'nowhere/.wh.x', data: '' },
    ]);
    await applyLayer(streamOf(layer), ws.target);
    expect(await listTree(ws.target)).toEqual(['etc', 'etc/passwd', 'var', 'var/log']);
  });

  it('.wh..wh..opq empties its directory of everything this layer did not add', async () => {
    const layer = buildTar([
      { name: 'var/cache/', type: '5' },
      { name: 'var/cache/before-marker', data: 'added first' },
      { name: 'var/cache/keep-dir/new', data: 'new' },
      { name: 'var/cache/.wh..wh..opq', data: '' },
      { name: 'var/cache/after-marker', data: 'added later' },
    ]);
    await applyLayer(streamOf(layer), ws.target);
    expect(await listTree(join(ws.target, 'var'))).toEqual([
      'cache',
      'cache/after-marker',
      'cache/before-marker',
      'cache/keep-dir',
      'cache/keep-dir/new',
      'log',
    ]);
  });
});
