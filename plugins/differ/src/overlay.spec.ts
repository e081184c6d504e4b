import * as fs from 'fs/promises';
import { join } from 'path';
import { lgetxattr, llistxattr, lsetxattr, mountAll, unmountAll } from '@berth/sys';
import { applyLayerToOverlayUpper } from './apply';
import { buildTar, describeAsRoot, makeWorkspace, sha256, streamOf } from './test-fixtures/tar-builder';
import { listTree } from './test-fixtures/trees';

type Workspace = Awaited<ReturnType<typeof makeWorkspace>>;

describeAsRoot('applyLayerToOverlayUpper: the overlay fast path', () => {
  let ws: Workspace;
  let lower: string;
  let upper: string;
  let work: string;
  let merged: string;

  beforeEach(async () => {
    ws = await makeWorkspace();
    lower = join(ws.dir, 'lower');
    upper = ws.target;
    work = join(ws.dir, 'work');
    merged = join(ws.dir, 'merged');
    await Promise.all([fs.mkdir(work), fs.mkdir(merged)]);
    await fs.mkdir(join(lower, 'a/b'), { recursive: true });
    await fs.writeFile(join(lower, 'a/b/old'), 'old');
    await fs.chown(join(lower, 'a/b'), 5, 6);
    await fs.chmod(join(lower, 'a/b'), 0o750);
    lsetxattr(join(lower, 'a/b'), 'user.lowerattr', Buffer.from('1'));
    await fs.utimes(join(lower, 'a/b'), 1600000000, 1600000000);
    await fs.writeFile(join(lower, 'gone'), 'to be deleted');
    await fs.writeFile(join(lower, 'keep'), 'kept');
    await fs.mkdir(join(lower, 'opq/sub'), { recursive: true });
    await fs.writeFile(join(lower, 'opq/x'), 'x');
    await fs.writeFile(join(lower, 'opq/sub/y'), 'y');
    // A lower that is itself opaque: that must not be copied up with the dir.
    await fs.mkdir(join(lower, 'lo'));
    lsetxattr(join(lower, 'lo'), 'trusted.overlay.opaque', Buffer.from('y'));
  });

  afterEach(async () => {
    await unmountAll(merged, { detach: true });
    await ws.cleanup();
  });

  const layer = () =>
    buildTar([
      { name: '.wh.gone', data: '', uid: 11, gid: 12 },
      { name: 'a/b/c/new', data: 'new' },
      { name: 'opq/', type: '5', mode: 0o755 },
      { name: 'opq/.wh..wh..opq', data: '' },
      { name: 'opq/fresh', data: 'fresh' },
      { name: 'lo/new', data: 'n' },
    ]);

  it('turns whiteouts into 0/0 character devices and the opaque xattr, writing no marker files', async () => {
    const tar = layer();
    const result = await applyLayerToOverlayUpper(streamOf(tar), upper, [lower]);
    expect(result.diffID).toBe(sha256(tar));

    const whiteout = await fs.lstat(join(upper, 'gone'));
    expect(whiteout.isCharacterDevice()).toBe(true);
    expect(whiteout.rdev).toBe(0);
    expect([whiteout.uid, whiteout.gid]).toEqual([11, 12]);
    expect(lgetxattr(join(upper, 'opq'), 'trusted.overlay.opaque').toString()).toBe('y');
    expect((await listTree(upper)).filter((path) => path.split('/').pop()?.startsWith('.wh.'))).toEqual([]);
    expect(await listTree(upper)).toEqual(['a', 'a/b', 'a/b/c', 'a/b/c/new', 'gone', 'lo', 'lo/new', 'opq', 'opq/fresh']);
  });

  it('creates missing parents with the metadata they have in the lowers, without their overlay xattrs', async () => {
    await applyLayerToOverlayUpper(streamOf(layer()), upper, [lower]);
    const b = await fs.lstat(join(upper, 'a/b'));
    expect([b.uid, b.gid, b.mode & 0o7777, b.mtimeMs]).toEqual([5, 6, 0o750, 1600000000 * 1000]);
    expect(lgetxattr(join(upper, 'a/b'), 'user.lowerattr').toString()).toBe('1');
    expect((await fs.lstat(join(upper, 'a/b/c'))).mode & 0o7777).toBe(0o755);
    expect(llistxattr(join(upper, 'lo'))).not.toContain('trusted.overlay.opaque');
  });

  it('mounted over the lower: the deleted file is hidden and the opaque dir shows only this layer', async () => {
    await applyLayerToOverlayUpper(streamOf(layer()), upper, [lower]);
    await mountAll([{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`] }], merged);
    const seen = await listTree(merged);
    expect(seen).not.toContain('gone');
    expect(seen).toContain('keep');
    expect(await fs.readdir(join(merged, 'opq'))).toEqual(['fresh']);
    expect((await fs.readdir(join(merged, 'a/b'))).sort()).toEqual(['c', 'old']);
    expect(await fs.readFile(join(merged, 'a/b/c/new'), 'utf8')).toBe('new');
    // Not opaque in the upper, so the lower's (empty) `lo` merges with `lo/new`.
    expect(await fs.readdir(join(merged, 'lo'))).toEqual(['new']);
  });

  it('copies a lower file up when a hard link in the layer points at it', async () => {
    await applyLayerToOverlayUpper(streamOf(buildTar([{ name: 'keep-link', type: '1', linkname: 'keep' }])), upper, [lower]);
    const copied = await fs.lstat(join(upper, 'keep'));
    expect(await fs.readFile(join(upper, 'keep'), 'utf8')).toBe('kept');
    expect((await fs.lstat(join(upper, 'keep-link'))).ino).toBe(copied.ino);
  });

  it('looks through several lowers, nearest first, and stops at a whiteout in one', async () => {
    const nearer = join(ws.dir, 'nearer');
    await fs.mkdir(join(nearer, 'a'), { recursive: true });
    await fs.chmod(join(nearer, 'a'), 0o711);
    const tar = buildTar([{ name: 'a/b/file', data: 'f' }]);
    await applyLayerToOverlayUpper(streamOf(tar), upper, [nearer, lower]);
    expect((await fs.lstat(join(upper, 'a'))).mode & 0o7777).toBe(0o711);
    // nearer has no a/b: the next lower's metadata is used.
    expect((await fs.lstat(join(upper, 'a/b'))).mode & 0o7777).toBe(0o750);
  });

  it('uses user.overlay.opaque for userxattr overlays', async () => {
    await applyLayerToOverlayUpper(streamOf(buildTar([{ name: 'opq/.wh..wh..opq', data: '' }])), upper, [lower], {
      opaqueXattr: 'user.overlay.opaque',
    });
    expect(lgetxattr(join(upper, 'opq'), 'user.overlay.opaque').toString()).toBe('y');
  });
});
