import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isInvalidArgument } from '@berth/core';
import { mkfifo } from '@berth/sys';
import { parseGroup, parsePasswd, readFileInRoot, resolveInRoot, resolveUser } from './user';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  '# a comment',
  '',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'alice:x:1000:1000:Alice:/home/alice:/bin/sh',
  'bob:x:1001:100::/home/bob:/bin/sh',
  'broken:x:notanumber:1::/:/bin/sh',
  '+nisuser::::::',
].join('\n');

const GROUP = [
  'root:x:0:',
  'users:x:100:',
  'alice:x:1000:alice',
  'wheel:x:10:alice,bob',
  'audio:x:29: bob , alice ',
  'staff:x:50:',
].join('\n');

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('user resolution', () => {
  let dir: string;
  let rootfs: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-oci-user-'));
    rootfs = join(dir, 'rootfs');
    mkdirSync(join(rootfs, 'etc'), { recursive: true });
    writeFileSync(join(rootfs, 'etc/passwd'), PASSWD);
    writeFileSync(join(rootfs, 'etc/group'), GROUP);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('parses passwd and group files, skipping comments, NIS and malformed lines', () => {
    expect(parsePasswd(PASSWD).map((e) => e.name)).toEqual(['root', 'daemon', 'alice', 'bob']);
    expect(parseGroup(GROUP).find((g) => g.name === 'audio')?.members).toEqual(['bob', 'alice']);
  });

  it('resolves a name to its uid, gid and supplementary groups (primary first)', async () => {
    expect(await resolveUser(rootfs, 'alice')).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000, 10, 29] });
    expect(await resolveUser(rootfs, 'bob')).toEqual({ uid: 1001, gid: 100, additionalGids: [100, 10, 29] });
  });

  it('resolves a uid through passwd, and an unknown uid to gid 0', async () => {
    expect(await resolveUser(rootfs, '1001')).toEqual({ uid: 1001, gid: 100, additionalGids: [100, 10, 29] });
    expect(await resolveUser(rootfs, '4321')).toEqual({ uid: 4321, gid: 0, additionalGids: [0] });
  });

  it('resolves uid:gid, name:group, uid:group and name:gid', async () => {
    expect(await resolveUser(rootfs, '1000:50')).toEqual({ uid: 1000, gid: 50, additionalGids: [50, 10, 29] });
    expect(await resolveUser(rootfs, 'bob:staff')).toEqual({ uid: 1001, gid: 50, additionalGids: [50, 10, 29] });
    expect(await resolveUser(rootfs, '1000:wheel')).toEqual({ uid: 1000, gid: 10, additionalGids: [10, 29] });
    expect(await resolveUser(rootfs, 'alice:7')).toEqual({ uid: 1000, gid: 7, additionalGids: [7, 10, 29] });
  });

  it('treats an empty user as root', async () => {
    expect(await resolveUser(rootfs, '')).toEqual({ uid: 0, gid: 0, additionalGids: [0] });
  });

  it('needs no rootfs for numeric users', async () => {
    expect(await resolveUser(undefined, '1234')).toEqual({ uid: 1234, gid: 0, additionalGids: [0] });
    expect(await resolveUser(undefined, '1234:5678')).toEqual({ uid: 1234, gid: 5678, additionalGids: [5678] });
  });

  it('rejects a user name missing from the image, naming it', async () => {
    const err = await rejection(resolveUser(rootfs, 'mallory'));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain('"mallory"');
  });

  it('rejects a group name missing from the image, naming it', async () => {
    const err = await rejection(resolveUser(rootfs, 'alice:nogroup'));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain('"nogroup"');
  });

  it('rejects names when there is no rootfs or no passwd file', async () => {
    const noRootfs = await rejection(resolveUser(undefined, 'alice'));
    expect(isInvalidArgument(noRootfs)).toBe(true);
    expect(noRootfs.message).toContain('"alice"');
    rmSync(join(rootfs, 'etc/passwd'));
    const noPasswd = await rejection(resolveUser(rootfs, 'alice'));
    expect(isInvalidArgument(noPasswd)).toBe(true);
    expect(noPasswd.message).toMatch(/"alice".*no \/etc\/passwd/);
    // A uid still resolves: gid 0, as containerd does without a passwd file.
    expect(await resolveUser(rootfs, '1000')).toMatchObject({ uid: 1000, gid: 0 });
  });

  it('rejects malformed user strings', async () => {
    for (const bad of ['a:b:c', ':100', 'alice:', '99999999999']) {
      const err = await rejection(resolveUser(rootfs, bad));
      expect(isInvalidArgument(err)).toBe(true);
    }
  });

  it('follows an absolute /etc/passwd symlink inside the rootfs, never to the host', async () => {
    // The host file the link names literally: it must not be read.
    const hostFile = join(dir, 'host-passwd');
    writeFileSync(hostFile, 'evil:x:666:666::/:/bin/sh\n');
    rmSync(join(rootfs, 'etc/passwd'));
    symlinkSync(hostFile, join(rootfs, 'etc/passwd'));
    const err = await rejection(resolveUser(rootfs, 'evil'));
    expect(isInvalidArgument(err)).toBe(true);
    expect(await resolveUser(rootfs, '666')).toEqual({ uid: 666, gid: 0, additionalGids: [0] });

    // The same absolute target, present inside the rootfs, is what gets read.
    mkdirSync(join(rootfs, hostFile, '..'), { recursive: true });
    writeFileSync(join(rootfs, hostFile), 'caged:x:77:78::/:/bin/sh\n');
    expect(await resolveUser(rootfs, 'caged')).toMatchObject({ uid: 77, gid: 78 });
  });

  it('clamps relative symlinks and .. at the rootfs', async () => {
    mkdirSync(join(rootfs, 'outside'));
    writeFileSync(join(rootfs, 'outside/passwd'), 'caged:x:77:78::/:/bin/sh\n');
    rmSync(join(rootfs, 'etc/passwd'));
    symlinkSync('../../../../../../outside/passwd', join(rootfs, 'etc/passwd'));
    expect(await resolveUser(rootfs, 'caged')).toMatchObject({ uid: 77, gid: 78 });
    expect(await resolveInRoot(rootfs, '/../../../etc/group')).toBe(join(rootfs, 'etc/group'));
  });

  it('follows a symlinked directory inside the rootfs', async () => {
    mkdirSync(join(rootfs, 'real-etc'));
    writeFileSync(join(rootfs, 'real-etc/passwd'), 'linked:x:5:6::/:/bin/sh\n');
    rmSync(join(rootfs, 'etc'), { recursive: true });
    symlinkSync('/real-etc', join(rootfs, 'etc'));
    expect(await resolveUser(rootfs, 'linked')).toEqual({ uid: 5, gid: 6, additionalGids: [6] });
  });

  it('refuses symlink loops and non-regular files', async () => {
    symlinkSync('b', join(rootfs, 'etc/a'));
    symlinkSync('a', join(rootfs, 'etc/b'));
    const loop = await rejection(readFileInRoot(rootfs, '/etc/a'));
    expect(isInvalidArgument(loop)).toBe(true);

    rmSync(join(rootfs, 'etc/group'));
    mkfifo(join(rootfs, 'etc/group'));
    const fifo = await rejection(resolveUser(rootfs, 'alice'));
    expect(isInvalidArgument(fifo)).toBe(true);
    expect(fifo.message).toContain('/etc/group');
  });

  it('reads nothing for a missing file or a path through a file', async () => {
    expect(await readFileInRoot(rootfs, '/etc/nothing')).toBeUndefined();
    expect(await readFileInRoot(rootfs, '/etc/passwd/child')).toBeUndefined();
  });
});
