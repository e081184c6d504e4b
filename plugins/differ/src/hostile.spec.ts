import * as fs from 'fs/promises';
import { join } from 'path';
import { Readable } from 'stream';
import * as zlib from 'zlib';
import { applyLayer, type ApplyLayerOptions } from './apply';
import { buildTar, makeWorkspace, rawHeader, streamOf, type RawEntry } from './test-fixtures/tar-builder';
import { listTree } from './test-fixtures/trees';
import { zstdBomb } from './test-fixtures/zstd-fixtures';

/**
 * Layers made to escape or exhaust: each must fail (or be contained) without
 * writing outside the target. `sentinel/` sits next to `target/` and holds a
 * `passwd` that every test checks is untouched.
 */

type Workspace = Awaited<ReturnType<typeof makeWorkspace>>;
let ws: Workspace;
let sentinelPasswd: { ino: number; mode: number; nlink: number };
beforeEach(async () => {
  ws = await makeWorkspace();
  const stats = await fs.lstat(join(ws.sentinel, 'passwd'));
  sentinelPasswd = { ino: stats.ino, mode: stats.mode, nlink: stats.nlink };
});
afterEach(async () => {
  await ws.cleanup();
});

/** Nothing next to the target changed: same entries, same sentinel file, same modes. */
async function expectNothingOutside(): Promise<void> {
  expect((await fs.readdir(ws.dir)).sort()).toEqual(['sentinel', 'target']);
  expect(await listTree(ws.sentinel)).toEqual(['passwd']);
  expect(await fs.readFile(join(ws.sentinel, 'passwd'), 'utf8')).toBe('original\n');
  const stats = await fs.lstat(join(ws.sentinel, 'passwd'));
  expect({ ino: stats.ino, mode: stats.mode, nlink: stats.nlink }).toEqual(sentinelPasswd);
  expect((await fs.lstat(ws.sentinel)).mode & 0o7777).toBe(0o755);
}

async function expectRefused(entries: RawEntry[], message: RegExp, options: ApplyLayerOptions = {}): Promise<void> {
  await expect(applyLayer(streamOf(buildTar(entries)), ws.target, options)).rejects.toMatchObject({
    kind: 'invalid-argument',
    message: expect.stringMatching(message),
  });
  await expectNothingOutside();
}

describe('hostile layers: names', () => {
  it('refuses ../ names', async () => {
    await expectRefused([{ name: '../sentinel/passwd', data: 'evil' }], /layer entry "\.\.\/sentinel\/passwd": name contains "\.\."/);
  });

  it('refuses .. in the middle of a name', async () => {
    await expectRefused(
      [{ name: 'a/', type: '5' }, { name: 'a/../../sentinel/passwd', data: 'evil' }],
      /layer entry "a\/\.\.\/\.\.\/sentinel\/passwd": name contains "\.\."/,
    );
  });

  it('refuses absolute names', async () => {
    const absolute = join(ws.sentinel, 'passwd');
    await expectRefused([{ name: absolute, data: 'evil' }], /is an absolute path/);
  });

  it('refuses a PAX path that climbs out, though the ustar name is harmless', async () => {
    await expectRefused([{ name: 'harmless', data: 'evil', pax: { path: '../sentinel/passwd' } }], /"\.\.\/sentinel\/passwd"/);
  });

  it('refuses names over 4096 bytes (PAX and GNU long names), before reading them whole', async () => {
    const long = `${'a/'.repeat(2500)}file`;
    await expectRefused([{ name: 'x', data: 'y', pax: { path: long } }], /name is 5004 bytes, longer than the 4096-byte limit/);
    await expectRefused([{ name: '././@LongLink', type: 'L', data: `${long}\0` }, { name: 'x', data: 'y' }], /name is 5005 bytes/);
    // A GNU long name claiming 1 GiB is refused from its header alone.
    await expectRefused([{ name: '././@LongLink', type: 'L', data: 'short', size: 1024 ** 3 }], /name is 1073741824 bytes/);
  });

  it('refuses a path component over 255 bytes', async () => {
    await expectRefused([{ name: 'x', data: 'y', pax: { path: `dir/${'n'.repeat(300)}` } }], /path component of 300 bytes/);
  });

  it('refuses whiteouts that name nothing or the parent', async () => {
    await expectRefused([{ name: 'a/.wh...', data: '' }], /contains "\.\."|whiteout names no file/);
    await expectRefused([{ name: 'a/.wh.', data: '' }], /whiteout names no file/);
  });
});

describe('hostile layers: symlinks', () => {
  it('refuses writing through a symlink to an absolute path (a -> /etc, then a/passwd)', async () => {
    await expectRefused(
      [
        { name: 'a', type: '2', linkname: ws.sentinel },
        { name: 'a/passwd', data: 'evil' },
      ],
      /layer entry "a\/passwd": refusing to write through symlink "a" -> .*which leaves the target directory/,
    );
  });

  it('refuses writing through a relative symlink that climbs out (a -> ../../..)', async () => {
    await expectRefused(
      [
        { name: 'a', type: '2', linkname: '../../..' },
        { name: 'a/passwd', data: 'evil' },
      ],
      /layer entry "a\/passwd": a symlink on its path leads outside the target directory/,
    );
    await expectRefused(
      [
        { name: 'd/', type: '5' },
        { name: 'd/up', type: '2', linkname: '../../sentinel' },
        { name: 'd/up/passwd', data: 'evil' },
      ],
      /leads outside the target directory/,
    );
  });

  it('refuses a chain of symlinks whose last one leaves', async () => {
    await expectRefused(
      [
        { name: 'a', type: '2', linkname: 'b' },
        { name: 'b', type: '2', linkname: 'c/d' },
        { name: 'c/', type: '5' },
        { name: 'c/d', type: '2', linkname: '../../sentinel' },
        { name: 'a/passwd', data: 'evil' },
      ],
      /leads outside the target directory/,
    );
  });

  it('follows symlinks that stay inside the root (lib -> usr/lib)', async () => {
    await applyLayer(
      streamOf(
        buildTar([
          { name: 'usr/lib/', type: '5' },
          { name: 'lib', type: '2', linkname: 'usr/lib' },
          { name: 'lib/libc.so', data: 'elf' },
          { name: 'usr/lib/sub', type: '2', linkname: '../../usr/lib/../lib' },
          { name: 'usr/lib/sub/x', data: 'x' },
        ]),
      ),
      ws.target,
    );
    expect(await fs.readFile(join(ws.target, 'usr/lib/libc.so'), 'utf8')).toBe('elf');
    expect(await fs.readFile(join(ws.target, 'usr/lib/x'), 'utf8')).toBe('x');
    expect((await fs.lstat(join(ws.target, 'lib'))).isSymbolicLink()).toBe(true);
    await expectNothingOutside();
  });

  it('with resolve-in-root, resolves absolute and climbing links inside the root, as containerd does', async () => {
    const tar = buildTar([
      { name: 'abs', type: '2', linkname: ws.sentinel },
      { name: 'abs/passwd', data: 'inside' },
      { name: 'up', type: '2', linkname: '../../..' },
      { name: 'up/top', data: 'top' },
    ]);
    await applyLayer(streamOf(tar), ws.target, { symlinks: 'resolve-in-root' });
    expect(await fs.readFile(join(ws.target, ws.sentinel, 'passwd'), 'utf8')).toBe('inside');
    expect(await fs.readFile(join(ws.target, 'top'), 'utf8')).toBe('top');
    await expectNothingOutside();
  });

  it('ends symlink loops with an error instead of hanging', async () => {
    await expectRefused(
      [
        { name: 'a', type: '2', linkname: 'b' },
        { name: 'b', type: '2', linkname: 'a' },
        { name: 'a/file', data: 'x' },
      ],
      /too many levels of symbolic links/,
    );
    await expectRefused(
      [
        { name: 'c', type: '2', linkname: 'c/c' },
        { name: 'c/file', data: 'x' },
      ],
      /too many levels of symbolic links/,
    );
  }, 10_000);

  it('replaces a symlink to outside with a file instead of writing through it', async () => {
    await applyLayer(
      streamOf(
        buildTar([
          { name: 'f', type: '2', linkname: join(ws.sentinel, 'passwd') },
          { name: 'f', data: 'evil', mode: 0o777 },
          { name: 'g', type: '2', linkname: '../sentinel/passwd' },
          { name: 'g', data: 'evil' },
        ]),
      ),
      ws.target,
    );
    expect((await fs.lstat(join(ws.target, 'f'))).isFile()).toBe(true);
    expect(await fs.readFile(join(ws.target, 'g'), 'utf8')).toBe('evil');
    await expectNothingOutside();
  });

  it('replaces a symlink to outside with a directory instead of chmod-ing through it', async () => {
    await applyLayer(
      streamOf(
        buildTar([
          { name: 'd', type: '2', linkname: '../sentinel' },
          { name: 'd/', type: '5', mode: 0o777, uid: 99 },
        ]),
      ),
      ws.target,
    );
    expect((await fs.lstat(join(ws.target, 'd'))).isDirectory()).toBe(true);
    await expectNothingOutside();
  });

  it('refuses a whiteout through a symlink that leaves (no deleting outside)', async () => {
    await expectRefused(
      [
        { name: 's', type: '2', linkname: '../sentinel' },
        { name: 's/.wh.passwd', data: '' },
      ],
      /layer entry "s\/\.wh\.passwd": a symlink on its path leads outside/,
    );
  });

  it('refuses an opaque marker through a symlink that leaves (no emptying outside)', async () => {
    await expectRefused(
      [
        { name: 's', type: '2', linkname: ws.sentinel },
        { name: 's/.wh..wh..opq', data: '' },
      ],
      /refusing to write through symlink "s"/,
    );
  });
});

describe('hostile layers: deleting', () => {
  const base = () =>
    buildTar([
      { name: 'd/', type: '5' },
      { name: 'd/out', type: '2', linkname: '../../sentinel' },
      { name: 'd/abs', type: '2', linkname: ws.sentinel },
      { name: 'd/file', type: '2', linkname: join(ws.sentinel, 'passwd') },
    ]);

  it('a whiteout of a directory holding links to outside deletes the links, not their targets', async () => {
    await applyLayer(streamOf(base()), ws.target);
    await applyLayer(streamOf(buildTar([{ name: '.wh.d', data: '' }])), ws.target);
    expect(await fs.readdir(ws.target)).toEqual([]);
    await expectNothingOutside();
  });

  it('an opaque marker deletes links to outside, not their targets', async () => {
    await applyLayer(streamOf(base()), ws.target);
    await applyLayer(streamOf(buildTar([{ name: 'd/.wh..wh..opq', data: '' }])), ws.target);
    expect(await fs.readdir(join(ws.target, 'd'))).toEqual([]);
    await expectNothingOutside();
  });

  it('a whiteout naming a link to outside removes the link only', async () => {
    await applyLayer(streamOf(base()), ws.target);
    await applyLayer(streamOf(buildTar([{ name: 'd/.wh.out', data: '' }, { name: 'd/.wh.file', data: '' }])), ws.target);
    expect(await fs.readdir(join(ws.target, 'd'))).toEqual(['abs']);
    await expectNothingOutside();
  });
});

describe('hostile layers: hard links', () => {
  it('refuses a hard link to an absolute path', async () => {
    await expectRefused(
      [{ name: 'h', type: '1', linkname: join(ws.sentinel, 'passwd') }],
      /layer entry "h": hard link to .* points outside the layer/,
    );
  });

  it('refuses a hard link to ../', async () => {
    await expectRefused([{ name: 'h', type: '1', linkname: '../sentinel/passwd' }], /points outside the layer/);
  });

  it('refuses a hard link through a symlinked directory that leaves', async () => {
    await expectRefused(
      [
        { name: 's', type: '2', linkname: '../sentinel' },
        { name: 'h', type: '1', linkname: 's/passwd' },
      ],
      /layer entry "h": a symlink on its path leads outside/,
    );
  });

  it('links a symlink itself, not what it points to', async () => {
    await applyLayer(
      streamOf(
        buildTar([
          { name: 's', type: '2', linkname: join(ws.sentinel, 'passwd') },
          { name: 'h', type: '1', linkname: 's' },
        ]),
      ),
      ws.target,
    );
    expect((await fs.lstat(join(ws.target, 'h'))).isSymbolicLink()).toBe(true);
    await expectNothingOutside();
  });

  it('fails on a hard link to nothing, or to a directory', async () => {
    await expect(applyLayer(streamOf(buildTar([{ name: 'h', type: '1', linkname: 'missing' }])), ws.target)).rejects.toMatchObject({
      kind: 'failed-precondition',
      message: expect.stringMatching(/layer entry "h": hard link target "missing" does not exist/),
    });
    await expectRefused([{ name: 'd/', type: '5' }, { name: 'h', type: '1', linkname: 'd' }], /is a directory/);
  });
});

describe('hostile layers: sizes', () => {
  async function usedBytes(dir: string): Promise<number> {
    let total = 0;
    for (const path of await listTree(dir)) total += (await fs.lstat(join(dir, path))).blocks * 512;
    return total;
  }

  it('a 10 GB file claim in a tiny tar fails as truncated and leaves no partial file', async () => {
    const tar = Buffer.concat([rawHeader({ name: 'sparse.img' }, 10 * 1024 ** 3), Buffer.alloc(4096, 1)]);
    await expect(applyLayer(streamOf(tar), ws.target)).rejects.toMatchObject({
      kind: 'invalid-argument',
      message: expect.stringMatching(/layer is truncated: data of layer entry "sparse.img" ends after 4096 of 10737418240 bytes/),
    });
    expect(await fs.readdir(ws.target)).toEqual([]);
    await expectNothingOutside();
  });

  it('a tar cut inside a header fails as truncated', async () => {
    const tar = buildTar([{ name: 'a', data: 'a' }]).subarray(0, 1024 + 100);
    await expect(applyLayer(streamOf(tar), ws.target)).rejects.toThrow(/layer is truncated: the tar header at byte 1024 ends after 100 of 512 bytes/);
  });

  it('contains a gzip bomb: maxBytes stops it with ResourceExhausted, the partial file is removed', async () => {
    // 1 GiB of zeros in a single file entry, about 1 MiB of gzip.
    const claimed = 1024 ** 3;
    async function* bombTar(): AsyncGenerator<Buffer> {
      yield rawHeader({ name: 'bomb' }, claimed);
      const zeros = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < claimed / zeros.length; i++) yield zeros;
      yield Buffer.alloc(1024);
    }
    const parts: Buffer[] = [];
    for await (const chunk of Readable.from(bombTar()).pipe(zlib.createGzip({ level: 1 }))) parts.push(chunk as Buffer);
    const bomb = Buffer.concat(parts);
    expect(bomb.length).toBeLessThan(8 * 1024 * 1024);

    const maxBytes = 16 * 1024 * 1024;
    await expect(applyLayer(streamOf(bomb), ws.target, { maxBytes })).rejects.toMatchObject({
      kind: 'resource-exhausted',
      message: expect.stringMatching(/larger than the limit of 16777216 uncompressed bytes/),
    });
    expect(await fs.readdir(ws.target)).toEqual([]);
    expect(await usedBytes(ws.dir)).toBeLessThan(maxBytes);
    await expectNothingOutside();
  }, 60_000);

  it('contains a zstd bomb the same way', async () => {
    await expect(applyLayer(streamOf(zstdBomb), ws.target, { maxBytes: 1024 * 1024 })).rejects.toMatchObject({
      kind: 'resource-exhausted',
    });
    expect(await fs.readdir(ws.target)).toEqual([]);
  });

  it('refuses a PAX header too big to hold in memory', async () => {
    await expectRefused([{ name: 'pax', type: 'x', data: 'x', size: 1024 ** 3 }], /PAX header of 1073741824 bytes is over/);
  });

  it('refuses sparse files and unknown entry types', async () => {
    await expectRefused([{ name: 's', type: 'S', data: '' }], /sparse files are not supported/);
    await expectRefused([{ name: 'z', type: 'Z', data: '' }], /unsupported tar entry type "Z"/);
  });
});
