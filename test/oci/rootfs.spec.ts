import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMountPoint } from '@berth/sys';
import { describeAsRoot } from '../harness/root';
import { generateSpec, withReadonlyRootfs } from '@berth/oci';

describeAsRoot('withReadonlyRootfs (root: real mounts)', () => {
  let dir: string;
  let image: string;
  let tempRoot: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-oci-rootfs-'));
    image = join(dir, 'image');
    tempRoot = join(dir, 'tmp');
    mkdirSync(join(image, 'etc'), { recursive: true });
    mkdirSync(tempRoot);
    writeFileSync(join(image, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n');
    writeFileSync(join(image, 'etc/group'), 'web:x:33:\nadm:x:4:web\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const bind = () => [{ type: 'bind', source: image, options: ['rbind', 'rw'] }];

  it('mounts read-only for fn, then unmounts and removes the mount point', async () => {
    let seen = '';
    const passwd = await withReadonlyRootfs(
      bind(),
      (root) => {
        seen = root;
        expect(root.startsWith(tempRoot)).toBe(true);
        expect(isMountPoint(root)).toBe(true);
        expect(() => writeFileSync(join(root, 'etc/new'), 'x')).toThrow(/EROFS/);
        return readFileSync(join(root, 'etc/passwd'), 'utf8');
      },
      { tempRoot },
    );
    expect(passwd).toContain('web:x:33');
    expect(isMountPoint(seen)).toBe(false);
    expect(existsSync(seen)).toBe(false);
    expect(existsSync(join(image, 'etc/new'))).toBe(false);
  });

  it('cleans up when fn fails, and passes its error on', async () => {
    let seen = '';
    await expect(
      withReadonlyRootfs(
        bind(),
        async (root) => {
          seen = root;
          throw new Error('lookup failed');
        },
        { tempRoot },
      ),
    ).rejects.toThrow('lookup failed');
    expect(isMountPoint(seen)).toBe(false);
    expect(existsSync(seen)).toBe(false);
  });

  it('cleans up when the mount itself fails', async () => {
    await expect(
      withReadonlyRootfs([{ type: 'bind', source: join(dir, 'missing'), options: ['rbind'] }], () => 1, { tempRoot }),
    ).rejects.toThrow(/ENOENT/);
    expect(readdirSync(tempRoot)).toEqual([]);
  });

  it('lets generateSpec resolve users from snapshot mounts', async () => {
    const spec = await generateSpec({
      namespace: 'default',
      id: 'web',
      imageConfig: { User: 'web', Cmd: ['/bin/sh'] },
      rootfsMounts: bind(),
      rootfsMountOptions: { tempRoot },
    });
    expect(spec.process?.user).toEqual({ uid: 33, gid: 33, additionalGids: [33, 4] });
    expect(readdirSync(tempRoot)).toEqual([]);
  });
});
