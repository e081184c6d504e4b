import { Header } from 'tar';
import { InvalidArgumentError } from '@berth/core';

/**
 * The tar header format, read by hand: node-tar's reader drops PAX
 * `SCHILY.xattr.*` records (and reads PAX values as text, which breaks binary
 * xattr values) and skips uname/devices in GNU-magic headers, and a layer
 * applier needs all of those. Writing uses node-tar's `Header` for the ustar
 * block and adds PAX records itself.
 */

export const BLOCK_SIZE = 512;

/** Linux PATH_MAX: no name longer than this can be created anyway. */
export const MAX_NAME_BYTES = 4096;

/** Linux NAME_MAX, for one path component. */
export const MAX_COMPONENT_BYTES = 255;

/**
 * Upper bound on one PAX header's body. Xattr values are at most 64 KiB each on
 * Linux; a few hundred of those fit, and a hostile size claim cannot make us
 * buffer gigabytes.
 */
export const MAX_PAX_BYTES = 8 * 1024 * 1024;

export const XATTR_PAX_PREFIX = 'SCHILY.xattr.';

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

/** The raw, decoded fields of one 512-byte header block. */
export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK_SIZE; i++) if (block[i] !== 0) return false;
  return true;
}

function decodeString(block: Buffer, offset: number, length: number): string {
  const limit = offset + length;
  let end = offset;
  while (end < limit && block[end] !== 0) end++;
  return end === offset ? '' : block.toString('utf8', offset, end);
}

/**
 * The common octal field read without building strings: leading spaces, octal
 * digits, then a NUL (whatever follows it) or only NULs and spaces to the end.
 * Undefined for anything else, which decodeNumber reads, or refuses, the long way.
 */
function plainOctal(block: Buffer, offset: number, length: number): number | undefined {
  const end = offset + length;
  let i = offset;
  while (i < end && block[i] === 0x20) i++;
  let value = 0;
  for (; i < end; i++) {
    const c = block[i];
    if (c < 0x30 || c > 0x37) break;
    value = value * 8 + (c - 0x30);
  }
  if (i < end && block[i] === 0) {
    // The long way reads past a NUL only up to a newline; leave such fields to it.
    return block.subarray(i, end).includes(0x0a) ? undefined : value;
  }
  for (; i < end; i++) if (block[i] !== 0 && block[i] !== 0x20) return undefined;
  return value;
}

/** Octal (NUL/space terminated), or GNU base-256 when the high bit is set. */
function decodeNumber(block: Buffer, offset: number, length: number, field: string): number {
  if (!(block[offset] & 0x80)) {
    const value = plainOctal(block, offset, length);
    if (value !== undefined && Number.isSafeInteger(value)) return value;
  }
  const bytes = block.subarray(offset, offset + length);
  if (bytes[0] & 0x80) {
    if (bytes[0] === 0xff) throw new InvalidArgumentError(`tar header field ${field} is negative`);
    let value = bytes[0] & 0x7f;
    for (let i = 1; i < length; i++) {
      value = value * 256 + bytes[i];
      if (!Number.isSafeInteger(value)) throw new InvalidArgumentError(`tar header field ${field} is too large`);
    }
    return value;
  }
  const text = bytes.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[ ]+/, '').replace(/\0.*$/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new InvalidArgumentError(`tar header field ${field} is not an octal number: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

/**
 * Checksum as POSIX defines it (unsigned byte sum with the checksum field as
 * spaces); old tars summed signed bytes, so that is accepted too.
 */
function checksumValid(block: Buffer): boolean {
  let stored: number;
  try {
    stored = decodeNumber(block, 148, 8, 'chksum');
  } catch {
    return false;
  }
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    if (i >= 148 && i < 156) continue;
    unsigned += block[i];
    signed += block[i] > 127 ? block[i] - 256 : block[i];
  }
  return stored === unsigned || stored === signed;
}

/** Decodes one header block; InvalidArgument when it is not a tar header. */
export function decodeHeader(block: Buffer, position: number): RawHeader {
  if (!checksumValid(block)) {
    throw new InvalidArgumentError(`not a valid tar archive: bad header checksum at byte ${position}`);
  }
  const magic = block.toString('latin1', 257, 263);
  const isUstar = magic === 'ustar\0';
  const isGnu = magic === 'ustar ';
  let name = decodeString(block, 0, 100);
  if (isUstar) {
    const prefix = decodeString(block, 345, 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: decodeNumber(block, 100, 8, 'mode'),
    uid: decodeNumber(block, 108, 8, 'uid'),
    gid: decodeNumber(block, 116, 8, 'gid'),
    size: decodeNumber(block, 124, 12, 'size'),
    mtime: decodeNumber(block, 136, 12, 'mtime'),
    typeflag: String.fromCharCode(block[156]),
    linkname: decodeString(block, 157, 100),
    uname: isUstar || isGnu ? decodeString(block, 265, 32) : '',
    gname: isUstar || isGnu ? decodeString(block, 297, 32) : '',
    devmajor: isUstar || isGnu ? decodeNumber(block, 329, 8, 'devmajor') : 0,
    devminor: isUstar || isGnu ? decodeNumber(block, 337, 8, 'devminor') : 0,
  };
}

/**
 * PAX records, `"<len> <key>=<value>\n"` where len counts the whole record.
 * Values stay bytes: `SCHILY.xattr.*` values are binary.
 */
export function parsePaxRecords(body: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let offset = 0;
  while (offset < body.length) {
    // Trailing NUL padding ends the records.
    if (body[offset] === 0) break;
    const space = body.indexOf(0x20, offset);
    if (space === -1 || space - offset > 20) throw new InvalidArgumentError('malformed PAX header: no record length');
    const lengthText = body.subarray(offset, space).toString('latin1');
    if (!/^[0-9]+$/.test(lengthText)) throw new InvalidArgumentError(`malformed PAX header: bad record length ${JSON.stringify(lengthText)}`);
    const length = parseInt(lengthText, 10);
    const end = offset + length;
    if (length <= space - offset + 1 || end > body.length || body[end - 1] !== 0x0a) {
      throw new InvalidArgumentError('malformed PAX header: record length does not match its content');
    }
    const record = body.subarray(space + 1, end - 1);
    const equals = record.indexOf(0x3d);
    if (equals <= 0) throw new InvalidArgumentError('malformed PAX header: record without a key');
    const key = record.subarray(0, equals).toString('utf8');
    const value = record.subarray(equals + 1);
    // An empty value deletes the key (POSIX); Map semantics give us that.
    if (value.length === 0) records.delete(key);
    else records.set(key, Buffer.from(value));
    offset = end;
  }
  return records;
}

/** One PAX record with its self-including length prefix. */
function paxRecord(key: string, value: Buffer): Buffer {
  const payload = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let length = payload.length + 1;
  while (String(length).length + payload.length !== length) length = String(length).length + payload.length;
  return Buffer.concat([Buffer.from(String(length), 'latin1'), payload]);
}

/** What the differ writes for one member. */
export interface EntryToWrite {
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
}

const typeNames: Record<EntryType, 'File' | 'Link' | 'SymbolicLink' | 'CharacterDevice' | 'BlockDevice' | 'Directory' | 'FIFO'> = {
  file: 'File',
  hardlink: 'Link',
  symlink: 'SymbolicLink',
  char: 'CharacterDevice',
  block: 'BlockDevice',
  directory: 'Directory',
  fifo: 'FIFO',
};

const MAX_OCTAL_7 = 0o7777777;

function paddedLength(size: number): number {
  return Math.ceil(size / BLOCK_SIZE) * BLOCK_SIZE;
}

/**
 * The header blocks for one member: a PAX header first when a field does not
 * fit ustar (long names, big ids, xattrs), then the ustar block. Mtimes are
 * whole seconds so the same tree gives the same bytes.
 */
export function encodeEntryHeader(entry: EntryToWrite): Buffer {
  const pathWithSlash = entry.type === 'directory' && !entry.path.endsWith('/') ? `${entry.path}/` : entry.path;
  const records: Buffer[] = [];
  const header = new Header({
    path: pathWithSlash,
    mode: entry.mode & 0o7777,
    uid: entry.uid <= MAX_OCTAL_7 ? entry.uid : 0,
    gid: entry.gid <= MAX_OCTAL_7 ? entry.gid : 0,
    size: entry.size,
    mtime: new Date(Math.floor(entry.mtime) * 1000),
    type: typeNames[entry.type],
    linkpath: entry.linkname ?? '',
    uname: entry.uname ?? '',
    gname: entry.gname ?? '',
    devmaj: entry.devmajor ?? 0,
    devmin: entry.devminor ?? 0,
  });
  // encode() reports whether the path or link did not fit the ustar fields.
  const needPax = header.encode();
  const block = header.block;
  if (!block) throw new Error(`tar header for ${entry.path} was not encoded`);
  if (needPax) records.push(paxRecord('path', Buffer.from(pathWithSlash, 'utf8')));
  if (entry.linkname !== undefined && Buffer.byteLength(entry.linkname) > 100) {
    records.push(paxRecord('linkpath', Buffer.from(entry.linkname, 'utf8')));
  }
  if (entry.uid > MAX_OCTAL_7) records.push(paxRecord('uid', Buffer.from(String(entry.uid))));
  if (entry.gid > MAX_OCTAL_7) records.push(paxRecord('gid', Buffer.from(String(entry.gid))));
  for (const [name, value] of [...(entry.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    records.push(paxRecord(`${XATTR_PAX_PREFIX}${name}`, value));
  }
  if (records.length === 0) return block;
  const body = Buffer.concat(records);
  const paxHeader = new Header({
    path: `PaxHeaders/${pathWithSlash.replace(/\/$/, '').split('/').pop()?.slice(0, 80) ?? ''}`,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: new Date(Math.floor(entry.mtime) * 1000),
    type: 'ExtendedHeader',
  });
  paxHeader.encode();
  if (!paxHeader.block) throw new Error(`PAX header for ${entry.path} was not encoded`);
  const padding = Buffer.alloc(paddedLength(body.length) - body.length);
  return Buffer.concat([paxHeader.block, body, padding, block]);
}

/** Zeros that bring `size` bytes of member data up to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc(paddedLength(size) - size);
}

/** The end-of-archive marker: two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK_SIZE);
}
