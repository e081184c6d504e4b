import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { mount, umount } from '@berth/sys';
import { Bundle } from './bundle';
import { describeAsRoot } from './test-fixtures/root';

describe('Bundle', () => {
  let dir: string;
  let location: { stateDir: string; rootDir: string; namespace: string; id: string };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-rtv2-bundle-'));
    location = { stateDir: join(dir, 'state'), rootDir: join(dir, 'root'), namespace: 'ns1', id: 'task-1' };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lays the bundle out as containerd does for a v2 shim', async () => {
    const bundle = await Bundle.create(location, { ociVersion: '1.0.2', process: { args: ['true'] } }, '/usr/bin/shim');
    expect(bundle.path).toBe(join(dir, 'state', 'ns1', 'task-1'));
    expect(JSON.parse(readFileSync(bundle.configPath, 'utf8'))).toEqual({ ociVersion: '1.0.2', process: { args: ['true'] } });
    expect(lstatSync(bundle.rootfsPath).isDirectory()).toBe(true);
    expect(readlinkSync(join(bundle.path, 'work'))).toBe(join(dir, 'root', 'ns1', 'task-1'));
    expect(lstatSync(bundle.workDir).isDirectory()).toBe(true);
    expect(lstatSync(bundle.logPath).isFIFO()).toBe(true);
    expect(await bundle.readShimBinaryPath()).toBe('/usr/bin/shim');
    expect(await bundle.readAddress()).toBeUndefined();
    await bundle.writeAddress('unix:///run/containerd/s/abc');
    expect(readFileSync(join(bundle.path, 'address'), 'utf8')).toBe('unix:///run/containerd/s/abc');
  });

  it('refuses an existing bundle with AlreadyExists and leaves it alone', async () => {
    await Bundle.create(location, {}, '/bin/shim');
    writeFileSync(join(dir, 'state', 'ns1', 'task-1', 'marker'), 'x');
    await expect(Bundle.create(location, {}, '/bin/shim')).rejects.toMatchObject({ kind: 'already-exists' });
    expect(existsSync(join(dir, 'state', 'ns1', 'task-1', 'marker'))).toBe(true);
  });

  it.each([
    ['../escape', 'ns1'],
    ['task-1', '../..'],
    ['a'.repeat(77), 'ns1'],
    ['', 'ns1'],
    ['task 1', 'ns1'],
  ])('rejects id %j in namespace %j before touching the disk', async (id, namespace) => {
    await expect(Bundle.create({ ...location, id, namespace }, {}, '/bin/shim')).rejects.toMatchObject({ kind: 'invalid-argument' });
    expect(existsSync(location.stateDir)).toBe(false);
    expect(existsSync(location.rootDir)).toBe(false);
  });

  it('records an exit that a later load reads back', async () => {
    const bundle = await Bundle.create(location, {}, '/bin/shim');
    const exitedAt = new Date('2024-01-01T00:00:01.500Z');
    await bundle.writeExit({ pid: 12, exitStatus: 137, exitedAt });
    expect(await Bundle.at(location).readExit()).toEqual({ pid: 12, exitStatus: 137, exitedAt });
  });

  it('removes the bundle and the work dir', async () => {
    const bundle = await Bundle.create(location, {}, '/bin/shim');
    await bundle.remove();
    expect(existsSync(bundle.path)).toBe(false);
    expect(existsSync(bundle.workDir)).toBe(false);
    await bundle.remove(); // idempotent
  });

  describeAsRoot('with mounts', () => {
    it('unmounts a rootfs left mounted before removing, and never deletes through it', async () => {
      const source = join(dir, 'source');
      mkdirSync(source);
      writeFileSync(join(source, 'precious'), 'keep me');
      const bundle = await Bundle.create(location, {}, '/bin/shim');
      mount(source, bundle.rootfsPath, '', ['bind']);
      try {
        expect(bundle.mountsUnder()).toEqual([bundle.rootfsPath]);
        await bundle.remove();
        expect(existsSync(bundle.path)).toBe(false);
        expect(readFileSync(join(source, 'precious'), 'utf8')).toBe('keep me');
      } finally {
        try {
          umount(bundle.rootfsPath, { detach: true });
        } catch {
          // unmounted by remove
        }
      }
    });
  });
});
