import { execFile } from 'child_process';
import * as fs from 'fs/promises';
import { join } from 'path';
import { promisify } from 'util';
import { gunzipSync } from 'zlib';
import { lsetxattr } from '@berth/sys';
import { applyLayer } from './apply';
import { ByteReader } from './byte-reader';
import { layerDiff, type LayerDiffOptions } from './compare';
import { readTar } from './tar-reader';
import { buildTar, describeAsRoot, makeWorkspace, sha256, streamOf } from './test-fixtures/tar-builder';
import { describeTree } from './test-fixtures/trees';

const run = promisify(execFile);

type Workspace = Awaited<ReturnType<typeof makeWorkspace>>;

async function collect(lower: string, upper: string, options?: LayerDiffOptions) {
  const diff = layerDiff(lower, upper, options);
  const parts: Buffer[] = [];
  for await (const chunk of diff.chunks) parts.push(chunk);
  return { bytes: Buffer.concat(parts), result: diff.result() };
}

async function entryNames(tar: Buffer): Promise<string[]> {
  const names: string[] = [];
  for await (const member of readTar(new ByteReader(streamOf(tar)))) {
    const { entry } = member;
    names.push(entry.type === 'hardlink' ? `${entry.name} => ${entry.linkname}` : entry.name);
  }
  return names;
}

describeAsRoot('layerDiff: the layer between two trees', () => {
  let ws: Workspace;
  let lower: string;
  let upper: string;
  let copy: string;

  beforeEach(async () => {
    ws = await makeWorkspace();
    lower = join(ws.dir, 'lower');
    upper = join(ws.dir, 'upper');
    copy = join(ws.dir, 'copy');
    await fs.mkdir(lower);
    const base = buildTar([
      { name: 'bin/', type: '5' },
      { name: 'bin/tool', data: 'tool', mode: 0o755 },
      { name: 'etc/', type: '5' },
      { name: 'etc/passwd', data: 'root:x:0:0', mtime: 1600000000 },
      { name: 'etc/shadow', data: 'secret', mode: 0o600 },
      { name: 'etc/hosts', data: 'localhost', pax: { 'SCHILY.xattr.user.a': '1' } },
      { name: 'etc/unchanged', data: 'same' },
      { name: 'home/', type: '5' },
      { name: 'home/user/', type: '5' },
      { name: 'usr/lib/', type: '5' },
      { name: 'usr/lib64/', type: '5' },
      { name: 'lib', type: '2', linkname: 'usr/lib' },
      { name: 'opt/', type: '5' },
      { name: 'opt/thing', data: 'a file' },
      { name: 'srv/', type: '5' },
      { name: 'srv/inside', data: 'x' },
      { name: 'var/', type: '5' },
      { name: 'var/cache/', type: '5' },
      { name: 'var/cache/a', data: 'a' },
      { name: 'var/cache/b/', type: '5' },
      { name: 'var/cache/b/c', data: 'c' },
      { name: 'dev/', type: '5' },
      { name: 'dev/null', type: '3', devmajor: 1, devminor: 3, mode: 0o666 },
    ]);
    await applyLayer(streamOf(base), lower);
    await run('cp', ['-a', lower, upper]);
  });

  afterEach(async () => {
    await ws.cleanup();
  });

  async function changeUpper(): Promise<void> {
    const u = (path: string) => join(upper, path);
    await fs.mkdir(u('new'), { mode: 0o700 });
    await fs.chown(u('new'), 1, 2);
    await fs.writeFile(u('new/file'), 'new file');
    await fs.writeFile(u('new/h1'), 'linked');
    await fs.link(u('new/h1'), u('new/h2'));
    // Same size and same whole-second mtime: only the content tells.
    await fs.writeFile(u('etc/passwd'), 'root:y:0:0');
    await fs.utimes(u('etc/passwd'), 1600000000, 1600000000);
    await fs.rm(u('etc/shadow'));
    await fs.rm(u('var/cache'), { recursive: true });
    await fs.chmod(u('bin/tool'), 0o4711);
    await fs.chown(u('home/user'), 1000, 1000);
    await fs.rm(u('lib'));
    await fs.symlink('usr/lib64', u('lib'));
    await fs.rm(u('opt/thing'));
    await fs.mkdir(u('opt/thing'));
    await fs.writeFile(u('opt/thing/child'), 'child');
    await fs.rm(u('srv'), { recursive: true });
    await fs.writeFile(u('srv'), 'now a file');
    lsetxattr(u('etc/hosts'), 'user.a', Buffer.from('2'));
    await run('mknod', ['-m', '0640', u('dev/zero2'), 'c', '1', '5']);
    await run('mknod', ['-m', '0600', u('dev/fifo'), 'p']);
  }

  it('round trip: applying the diff to a copy of lower gives upper', async () => {
    await changeUpper();
    const { bytes, result } = await collect(lower, upper);
    expect(result.diffID).toBe(sha256(bytes));
    expect(result).toMatchObject({ digest: result.diffID, size: bytes.length, uncompressedSize: bytes.length });

    await run('cp', ['-a', lower, copy]);
    await applyLayer(streamOf(bytes), copy);
    expect(await describeTree(copy)).toEqual(await describeTree(upper));
    expect((await fs.lstat(join(copy, 'new/h2'))).ino).toBe((await fs.lstat(join(copy, 'new/h1'))).ino);
  });

  it('holds only what changed: whiteouts for deletions, nothing for untouched files', async () => {
    await changeUpper();
    const names = await entryNames((await collect(lower, upper)).bytes);
    expect(names).toEqual([
      'bin/tool',
      'dev/fifo',
      'dev/zero2',
      'etc/hosts',
      'etc/passwd',
      'etc/.wh.shadow',
      'home/user/',
      'lib',
      'new/',
      'new/file',
      'new/h1',
      'new/h2 => new/h1',
      'opt/thing/',
      'opt/thing/child',
      'srv',
      'var/.wh.cache',
    ]);
  });

  it('is empty (just the end marker) for identical trees', async () => {
    const { bytes } = await collect(lower, upper);
    expect(bytes).toEqual(Buffer.alloc(1024));
  });

  it('against an empty lower, holds the whole tree', async () => {
    const empty = join(ws.dir, 'empty');
    await fs.mkdir(empty);
    const { bytes } = await collect(empty, upper);
    await applyLayer(streamOf(bytes), ws.target);
    expect(await describeTree(ws.target)).toEqual(await describeTree(upper));
  });

  it('gzip: digest of the compressed bytes, diffID of the tar inside', async () => {
    await changeUpper();
    const { bytes, result } = await collect(lower, upper, { compression: 'gzip' });
    const tar = gunzipSync(bytes);
    expect(result).toEqual({ digest: sha256(bytes), diffID: sha256(tar), size: bytes.length, uncompressedSize: tar.length });
    await run('cp', ['-a', lower, copy]);
    expect((await applyLayer(streamOf(bytes), copy)).diffID).toBe(result.diffID);
    expect(await describeTree(copy)).toEqual(await describeTree(upper));
  });

  it('gives the same bytes for the same change', async () => {
    await changeUpper();
    expect((await collect(lower, upper)).result.diffID).toBe((await collect(lower, upper)).result.diffID);
  });

  it('writes long names, long link targets and big ids through PAX', async () => {
    const longDir = join(upper, 'd'.repeat(200));
    await fs.mkdir(longDir);
    await fs.writeFile(join(longDir, 'f'.repeat(200)), 'deep');
    await fs.symlink('t'.repeat(300), join(upper, 'longlink'));
    await fs.writeFile(join(upper, 'bigid'), 'x');
    await fs.chown(join(upper, 'bigid'), 3_000_000, 4_000_000);
    const { bytes } = await collect(lower, upper);
    await run('cp', ['-a', lower, copy]);
    await applyLayer(streamOf(bytes), copy);
    expect(await describeTree(copy)).toEqual(await describeTree(upper));
  });
});
