import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from '@berth/core';
import type { SpecUser } from './types';

/** Larger account files than this are not believed to be account files. */
const MAX_ACCOUNT_FILE_BYTES = 16 << 20;
/** Linux's own limit on symlinks followed in one lookup is 40; be generous but finite. */
const MAX_SYMLINKS = 255;
/** runc and the kernel treat ids as unsigned 32-bit with -1 reserved; stay in the signed range. */
const MAX_ID = 2 ** 31 - 1;

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/**
 * Resolves `path` as if `root` were `/`: every symlink met on the way,
 * absolute or relative, is followed inside `root`, and `..` stops at `root`.
 * The result is a path under `root` with no symlink in it, or undefined when
 * some component does not exist.
 */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  const base = resolve(root);
  const resolved: string[] = [];
  let pending = path.split('/').filter((p) => p !== '' && p !== '.');
  let followed = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = join(base, ...resolved, part);
    let isLink: boolean;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++followed > MAX_SYMLINKS) {
      throw new InvalidArgumentError(`resolving ${path} in ${root}: too many levels of symbolic links`);
    }
    const target = await readlink(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
  }
  return join(base, ...resolved);
}

/**
 * Reads a small regular file at `path` inside `root` (see resolveInRoot).
 * Undefined when it does not exist; InvalidArgument when it is not a regular
 * file (a FIFO or device planted in an image must not hang or feed us).
 */
export async function readFileInRoot(root: string, path: string): Promise<string | undefined> {
  const resolved = await resolveInRoot(root, path);
  if (resolved === undefined) return undefined;
  // Checked before opening too: opening some devices has side effects.
  if (!(await lstat(resolved)).isFile()) throw new InvalidArgumentError(`${path} in the image is not a regular file`);
  let handle;
  try {
    // O_NOFOLLOW: a symlink swapped in after resolution is refused, not followed.
    handle = await open(resolved, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new InvalidArgumentError(`${path} in the image is not a regular file`);
    if (stat.size > MAX_ACCOUNT_FILE_BYTES) {
      throw new InvalidArgumentError(`${path} in the image is ${stat.size} bytes, too large to be read`);
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Parses /etc/passwd text; malformed lines are skipped, as libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const fields of accountLines(text)) {
    const uid = parseId(fields[2]);
    const gid = parseId(fields[3]);
    if (!fields[0] || uid === undefined || gid === undefined) continue;
    entries.push({ name: fields[0], uid, gid, home: fields[5] ?? '', shell: fields[6] ?? '' });
  }
  return entries;
}

/** Parses /etc/group text; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const fields of accountLines(text)) {
    const gid = parseId(fields[2]);
    if (!fields[0] || gid === undefined) continue;
    const members = (fields[3] ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
    entries.push({ name: fields[0], gid, members });
  }
  return entries;
}

function* accountLines(text: string): Generator<string[]> {
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    // `+`/`-` lines are NIS compat entries, which only a libc with NIS resolves.
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    yield line.split(':');
  }
}

function parseId(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text.trim())) return undefined;
  const id = Number(text.trim());
  return id <= MAX_ID ? id : undefined;
}

/**
 * Resolves an image-spec user string to a process user, as containerd's
 * WithUser/WithUserID/WithUsername + WithAdditionalGIDs do:
 * - `name`: uid and gid from the image's /etc/passwd (InvalidArgument if absent);
 * - `uid`: gid from the passwd entry with that uid, else 0;
 * - `user:group` (either side a name or a number): group names come from
 *   /etc/group (InvalidArgument if absent);
 * - `''` means root.
 * `additionalGids` is the primary gid followed by every /etc/group entry
 * listing the user's name as a member. Numeric users need no `rootfsDir`;
 * without one there is nothing to look up and additionalGids is just the gid.
 */
export async function resolveUser(rootfsDir: string | undefined, user: string): Promise<SpecUser> {
  const parts = user.split(':');
  if (parts.length > 2) throw new InvalidArgumentError(`invalid user ${JSON.stringify(user)}: expected user[:group]`);
  const [userPart, groupPart] = parts.length === 1 && parts[0] === '' ? ['0', undefined] : parts;
  if (userPart === '') throw new InvalidArgumentError(`invalid user ${JSON.stringify(user)}: the user part is empty`);
  if (groupPart === '') throw new InvalidArgumentError(`invalid user ${JSON.stringify(user)}: the group part is empty`);

  const passwd = rootfsDir === undefined ? undefined : await readAccounts(rootfsDir, '/etc/passwd', parsePasswd);
  let uid: number;
  let gid: number;
  let name: string | undefined;
  const numericUid = parseNumericId(userPart, user);
  if (numericUid !== undefined) {
    const entry = passwd?.find((e) => e.uid === numericUid);
    uid = numericUid;
    gid = entry?.gid ?? 0;
    name = entry?.name;
  } else {
    if (rootfsDir === undefined) {
      throw new InvalidArgumentError(`cannot resolve user ${JSON.stringify(userPart)}: no image rootfs to read /etc/passwd from`);
    }
    if (passwd === undefined) {
      throw new InvalidArgumentError(`user ${JSON.stringify(userPart)} not found: the image has no /etc/passwd`);
    }
    const entry = passwd.find((e) => e.name === userPart);
    if (!entry) throw new InvalidArgumentError(`user ${JSON.stringify(userPart)} not found in the image's /etc/passwd`);
    ({ uid, gid, name } = entry);
  }

  const groups = rootfsDir === undefined ? undefined : await readAccounts(rootfsDir, '/etc/group', parseGroup);
  if (groupPart !== undefined) {
    const numericGid = parseNumericId(groupPart, user);
    if (numericGid !== undefined) {
      gid = numericGid;
    } else {
      if (rootfsDir === undefined) {
        throw new InvalidArgumentError(`cannot resolve group ${JSON.stringify(groupPart)}: no image rootfs to read /etc/group from`);
      }
      if (groups === undefined) {
        throw new InvalidArgumentError(`group ${JSON.stringify(groupPart)} not found: the image has no /etc/group`);
      }
      const entry = groups.find((g) => g.name === groupPart);
      if (!entry) throw new InvalidArgumentError(`group ${JSON.stringify(groupPart)} not found in the image's /etc/group`);
      gid = entry.gid;
    }
  }

  const additionalGids = [gid];
  if (name !== undefined && groups !== undefined) {
    for (const group of groups) {
      // A group named after the user is its personal group, not a supplementary one.
      if (group.name === name || !group.members.includes(name)) continue;
      if (!additionalGids.includes(group.gid)) additionalGids.push(group.gid);
    }
  }
  return { uid, gid, additionalGids };
}

function parseNumericId(text: string, user: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const id = Number(text);
  if (id > MAX_ID) throw new InvalidArgumentError(`invalid user ${JSON.stringify(user)}: id ${text} is out of range`);
  return id;
}

async function readAccounts<T>(root: string, path: string, parse: (text: string) => T[]): Promise<T[] | undefined> {
  const text = await readFileInRoot(root, path);
  return text === undefined ? undefined : parse(text);
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
