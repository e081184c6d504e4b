import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContainer, isPluginSkip, loadPlugins, PluginType, Snapshotter } from '@berth/core';
import { mount, mountAll, unmountAll } from '@berth/sys';
import { mountPointsUnder } from './mount-points';
import { OverlaySnapshotter } from './overlay-snapshotter';
import { checkOverlaySupport, overlaySkipReason, supportsDType, type OverlayProbe } from './overlay-support';
import { overlayfsConfigSchema, overlayfsSnapshotterPlugin } from './plugin';
import { describeAsRoot } from './test-fixtures/root';

const uri = `${PluginType.Snapshotter}.overlayfs`;
const sys = { mountAll, unmountAll };

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'berth-overlay-plugin-'));
});
afterEach(async () => {
  const leaked = mountPointsUnder(base);
  for (const point of leaked.reverse()) await unmountAll(point, { detach: true });
  rmSync(base, { recursive: true, force: true });
  expect(leaked).toEqual([]);
});

describe('overlayfs plugin config', () => {
  it("has containerd's keys and defaults", () => {
    expect(overlayfsConfigSchema.parse({})).toEqual({ upperdir_label: false, sync_remove: false, mount_options: [] });
    expect(() => overlayfsConfigSchema.parse({ root_path: '/x' })).toThrow();
  });
});

describe('overlaySkipReason', () => {
  const works: OverlayProbe = { platform: 'linux', dType: true };

  it('lets a host where the test mount worked run the plugin', () => {
    expect(overlaySkipReason('/var/lib/berth/x', works)).toBeUndefined();
  });

  it('fake: skips a backing filesystem without d_type even though overlay mounted', () => {
    expect(overlaySkipReason('/var/lib/berth/x', { ...works, dType: false })).toBe(
      'the filesystem of /var/lib/berth/x does not support d_type, which overlayfs needs ' +
        '(an xfs formatted with ftype=0? reformat with ftype=1)',
    );
  });

  it('fake: skips on other systems than Linux', () => {
    expect(overlaySkipReason('/x', { platform: 'darwin', dType: false })).toBe('overlayfs needs Linux, this is darwin');
  });

  it('names the mount failure', () => {
    expect(overlaySkipReason('/x', { ...works, mountError: 'mount failed: EINVAL' })).toBe(
      'overlayfs does not work on /x: mount failed: EINVAL',
    );
  });
});

describe('supportsDType', () => {
  it('sees d_type on the filesystem of the temp dir', async () => {
    expect(await supportsDType(base)).toBe(true);
  });
});

describeAsRoot('overlay support check', () => {
  it('passes here and leaves neither mounts nor probe dirs behind', async () => {
    const root = join(base, 'root');
    await checkOverlaySupport(root, sys);
    expect(readdirSync(root)).toEqual([]);
  });

  it('clears a probe a crash left mounted', async () => {
    const root = join(base, 'root');
    const stale = join(root, 'overlay-check-stale', 'merged');
    mkdirSync(stale, { recursive: true });
    mount('tmpfs', stale, 'tmpfs', []);
    await checkOverlaySupport(root, sys);
    expect(readdirSync(root)).toEqual([]);
  });

  it('skips for real when the plugin root is itself on overlayfs', async () => {
    // overlayfs refuses another overlay as its upper dir.
    const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((n) => join(base, n));
    for (const d of [lower, upper, work, merged]) mkdirSync(d);
    await mountAll(
      [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`] }],
      merged,
    );
    try {
      const err = await checkOverlaySupport(join(merged, 'root'), sys).catch((e: unknown) => e);
      expect(isPluginSkip(err)).toBe(true);
      expect((err as Error).message).toMatch(/^overlayfs does not work on .*\/merged\/root: mount failed: /);

      const set = await loadPlugins({
        registrations: [overlayfsSnapshotterPlugin],
        root: join(merged, 'state-root'),
        state: join(base, 'state'),
      });
      expect(set.record(uri)).toMatchObject({
        status: 'skipped',
        error: expect.stringMatching(/^overlayfs does not work/),
      });
      await set.closeAll();
    } finally {
      await unmountAll(merged);
    }
  });

  it('loads as a plugin with its config and binds itself as the overlayfs Snapshotter', async () => {
    const container = createContainer();
    const set = await loadPlugins({
      registrations: [overlayfsSnapshotterPlugin],
      root: join(base, 'root'),
      state: join(base, 'state'),
      container,
      pluginConfigs: { [uri]: { sync_remove: true, upperdir_label: true, mount_options: ['volatile'] } },
    });
    const record = set.record(uri);
    expect(record).toMatchObject({ status: 'ok', meta: { exports: { root: join(base, 'root', uri) } } });
    const snapshotter = set.getById<OverlaySnapshotter>(PluginType.Snapshotter, 'overlayfs');
    expect(snapshotter).toBeInstanceOf(OverlaySnapshotter);
    expect(container.getNamed(Snapshotter, 'overlayfs')).toBe(snapshotter);

    await snapshotter.prepare('a', '');
    await snapshotter.commit('base', 'a');
    expect((await snapshotter.prepare('b', 'base'))[0].options).toContain('volatile');
    expect(Object.keys((await snapshotter.stat('b')).labels)).toEqual(['containerd.io/snapshot/overlay.upperdir']);
    await snapshotter.remove('b');
    expect(existsSync(join(base, 'root', uri, 'snapshots', '2'))).toBe(false);
    await set.closeAll();
  });
});
