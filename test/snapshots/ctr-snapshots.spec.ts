import * as fs from 'fs';
import * as path from 'path';
import { BerthdHandle, makeTempDir, removeDir, startBerthd } from '../harness/daemon';
import { describeAsRoot } from '../harness/root';
import { ctrBytes, host, mountWithMount8, ok, parseList, parseMountCommands, umount } from './helpers';

describeAsRoot('ctr snapshots against berthd', () => {
  let daemon: BerthdHandle;
  let work: string;
  const mounted: string[] = [];

  beforeAll(async () => {
    daemon = await startBerthd();
    work = makeTempDir('berth-snap-');
  });
  afterEach(async () => {
    for (const target of mounted.splice(0).reverse()) await umount(target).catch(() => undefined);
  });
  afterAll(async () => {
    await daemon?.stop();
    if (daemon) removeDir(daemon.dir);
    if (work) removeDir(work);
  });

  const ctr = (...args: string[]) => daemon.ctr(...args);

  function mountPoint(name: string): string {
    const dir = path.join(work, name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  async function mountPrinted(stdout: string): Promise<string> {
    const printed = parseMountCommands(stdout);
    expect(printed).toHaveLength(1);
    await mountWithMount8(printed[0]);
    mounted.push(printed[0].target);
    return printed[0].target;
  }

  async function unmount(target: string): Promise<void> {
    await umount(target);
    mounted.splice(mounted.indexOf(target), 1);
  }

  it('prepare, commit, ls, tree, info, label, usage and rm, as ctr prints them', async () => {
    expect(ok(await ctr('snapshots', 'prepare', 'base-active'))).toBe('');
    expect(parseList(ok(await ctr('snapshots', 'ls')))).toEqual([{ key: 'base-active', parent: '', kind: 'Active' }]);
    ok(await ctr('snapshots', 'commit', 'base', 'base-active'));
    const mounts = JSON.parse(ok(await ctr('snapshots', 'prepare', '--mounts', 'child', 'base'))) as {
      Type: string;
      Source: string;
      Options: string[];
    }[];
    expect(mounts).toHaveLength(1);
    expect(mounts[0]).toMatchObject({ Type: 'overlay', Source: 'overlay' });
    expect(mounts[0].Options.find((o) => o.startsWith('lowerdir='))).toMatch(/io\.berth\.snapshotter\.v1\.overlayfs\/snapshots\/\d+\/fs$/);
    ok(await ctr('snapshots', 'view', 'base-view', 'base'));

    expect(parseList(ok(await ctr('snapshots', 'ls'))).sort((a, b) => a.key.localeCompare(b.key))).toEqual([
      { key: 'base', parent: '', kind: 'Committed' },
      { key: 'base-view', parent: 'base', kind: 'View' },
      { key: 'child', parent: 'base', kind: 'Active' },
    ]);
    const tree = ok(await ctr('snapshots', 'tree'));
    expect(tree).toMatch(/^ base\n/m);
    expect(tree).toMatch(/^ {2}\\_ child$/m);
    expect(tree).toMatch(/^ {2}\\_ base-view$/m);

    const info = JSON.parse(ok(await ctr('snapshots', 'info', 'child'))) as Record<string, unknown>;
    expect(info).toMatchObject({ Kind: 'Active', Name: 'child', Parent: 'base' });
    // ctr roots what it creates itself, so the collector leaves it alone.
    expect(Object.keys(info.Labels as object)).toContain('containerd.io/gc.root');
    expect(ok(await ctr('snapshots', 'label', 'child', 'team=a'))).toMatch(/team=a/);
    expect((JSON.parse(ok(await ctr('snapshots', 'info', 'child'))) as { Labels: object }).Labels).toMatchObject({ team: 'a' });

    const usage = ok(await ctr('snapshots', 'usage', '-b', 'base'));
    expect(usage).toMatch(/^KEY\s+SIZE\s+INODES\s*$/m);
    expect(usage).toMatch(/^base\s+\d+\s+\d+\s*$/m);

    // A parent with children stays; ctr prints the error and carries on.
    const refused = await ctr('snapshots', 'rm', 'base');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/has children/);
    ok(await ctr('snapshots', 'rm', 'child', 'base-view'));
    ok(await ctr('snapshots', 'rm', 'base'));
    expect(parseList(ok(await ctr('snapshots', 'ls')))).toEqual([]);
    const missing = await ctr('snapshots', 'info', 'base');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/not found/);
  });

  it('keeps namespaces apart, and the snapshotter must be loaded', async () => {
    ok(await ctr('-n', 'ns-one', 'snapshots', 'prepare', 'same-key'));
    ok(await ctr('-n', 'ns-two', 'snapshots', 'prepare', 'same-key'));
    expect(parseList(ok(await ctr('-n', 'ns-one', 'snapshots', 'ls')))).toEqual([
      { key: 'same-key', parent: '', kind: 'Active' },
    ]);
    expect(parseList(ok(await ctr('-n', 'ns-three', 'snapshots', 'ls')))).toEqual([]);
    const removeNs = await ctr('namespaces', 'rm', 'ns-one');
    expect(removeNs.stderr).toMatch(/must be empty, but it still has snapshots on "overlayfs" snapshotter/);
    ok(await ctr('-n', 'ns-one', 'snapshots', 'rm', 'same-key'));
    ok(await ctr('-n', 'ns-two', 'snapshots', 'rm', 'same-key'));
    expect(ok(await ctr('namespaces', 'rm', 'ns-one')).trim()).toBe('ns-one');

    const native = await ctr('snapshots', '--snapshotter', 'native', 'prepare', 'on-native');
    expect(native.code).toBe(0);
    expect(parseList(ok(await ctr('snapshots', '--snapshotter', 'native', 'ls')))).toEqual([
      { key: 'on-native', parent: '', kind: 'Active' },
    ]);
    ok(await ctr('snapshots', '--snapshotter', 'native', 'rm', 'on-native'));
    const unknown = await ctr('snapshots', '--snapshotter', 'zfs', 'ls');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/snapshotter "zfs": not loaded/);
  });

  it('prints mounts that mount(8) mounts: a layer written through one shows in a view of its commit', async () => {
    const baseTarget = mountPoint('base');
    const base = await mountPrinted(ok(await ctr('snapshots', 'prepare', '--target', baseTarget, 'm-base-active')));
    fs.writeFileSync(path.join(base, 'hello'), 'from the base layer\n');
    fs.mkdirSync(path.join(base, 'etc'));
    fs.writeFileSync(path.join(base, 'etc', 'gone'), 'x');
    await unmount(base);
    ok(await ctr('snapshots', 'commit', 'm-base', 'm-base-active'));

    const upperTarget = mountPoint('upper');
    const upper = await mountPrinted(ok(await ctr('snapshots', 'prepare', '--target', upperTarget, 'm-upper-active', 'm-base')));
    expect(fs.readFileSync(path.join(upper, 'hello'), 'utf8')).toBe('from the base layer\n');
    fs.writeFileSync(path.join(upper, 'added'), 'in the upper layer\n');
    fs.rmSync(path.join(upper, 'etc', 'gone'));
    await unmount(upper);
    ok(await ctr('snapshots', 'commit', 'm-upper', 'm-upper-active'));

    // `ctr snapshots mounts` prints the same kind of command for a key.
    ok(await ctr('snapshots', 'view', 'm-view', 'm-upper'));
    const viewTarget = mountPoint('view');
    const view = await mountPrinted(ok(await ctr('snapshots', 'mounts', viewTarget, 'm-view')));
    expect(fs.readdirSync(view).sort()).toEqual(['added', 'etc', 'hello']);
    expect(fs.readdirSync(path.join(view, 'etc'))).toEqual([]);
    expect(() => fs.writeFileSync(path.join(view, 'nope'), 'x')).toThrow(/EROFS|read-only/);
    await unmount(view);
    // Unlike prepare and commit, ctr labels no view a GC root: the collection after the diff below would take it.
    ok(await ctr('snapshots', 'rm', 'm-view'));

    // Diff.Diff through ctr: the layer between the two commits, as a tar on stdout.
    const diff = await ctrBytes(daemon.address, [
      'snapshots',
      'diff',
      '--media-type',
      'application/vnd.oci.image.layer.v1.tar',
      'm-base',
      'm-upper',
    ]);
    expect(diff.stderr).toBe('');
    expect(diff.code).toBe(0);
    const tarFile = path.join(work, 'diff.tar');
    fs.writeFileSync(tarFile, diff.stdout);
    const listing = ok(await host('tar', ['-tf', tarFile]));
    const entries = listing.split('\n').filter(Boolean);
    expect(entries).toContain('added');
    expect(entries).toContain('etc/.wh.gone');
    expect(entries.filter((e) => !['added', 'etc/', 'etc/.wh.gone'].includes(e))).toEqual([]);

    ok(await ctr('snapshots', 'rm', 'm-upper'));
    ok(await ctr('snapshots', 'rm', 'm-base'));
  });
});
