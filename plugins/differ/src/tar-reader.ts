import { InvalidArgumentError } from '@berth/core';
import type { ByteReader } from './byte-reader';
import {
  BLOCK_SIZE,
  decodeHeader,
  type EntryType,
  isZeroBlock,
  MAX_NAME_BYTES,
  MAX_PAX_BYTES,
  parsePaxRecords,
  XATTR_PAX_PREFIX,
} from './tar-format';

/** One member of a layer tar, with PAX and GNU long-name headers folded in. */
export interface TarEntry {
  /** The name as the archive gives it (not yet validated or normalised). */
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch, with a fraction when PAX gave one. */
  mtime: number;
  atime?: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** From PAX `SCHILY.xattr.<name>` records. */
  xattrs: Map<string, Buffer>;
  /** Offset of the entry's header in the uncompressed stream (for messages). */
  position: number;
}

/** A member and its data. Data not read before the next member is skipped. */
export interface TarMember {
  entry: TarEntry;
  data(): AsyncGenerator<Buffer>;
  /**
   * All of the data, as the pieces it is in, when it is in memory already
   * (taken, without waiting; a second call gives the same pieces); undefined,
   * with nothing taken, when it is not.
   */
  buffered(): Buffer[] | undefined;
}

const typeByFlag: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};

export function quoteName(name: string): string {
  return JSON.stringify(name.length > 160 ? `${name.slice(0, 160)}…` : name);
}

function tooLong(kind: string, bytes: number, start: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `layer entry ${quoteName(start)}: ${kind} is ${bytes} bytes, longer than the ${MAX_NAME_BYTES}-byte limit`,
  );
}

function stripNul(buffer: Buffer): string {
  const nul = buffer.indexOf(0);
  return buffer.subarray(0, nul === -1 ? buffer.length : nul).toString('utf8');
}

function paxNumber(records: Map<string, Buffer>, key: string, fractional: boolean): number | undefined {
  const raw = records.get(key);
  if (raw === undefined) return undefined;
  const text = raw.toString('latin1');
  const pattern = fractional ? /^-?[0-9]+(\.[0-9]+)?$/ : /^[0-9]+$/;
  if (!pattern.test(text)) throw new InvalidArgumentError(`malformed PAX header: ${key}=${JSON.stringify(text.slice(0, 40))}`);
  const value = Number(text);
  if (!Number.isFinite(value) || (!fractional && !Number.isSafeInteger(value))) {
    throw new InvalidArgumentError(`malformed PAX header: ${key} out of range`);
  }
  return value;
}

/**
 * Reads a tar stream member by member. Handles ustar, GNU (`L`/`K` long
 * names, base-256 numbers) and PAX (`x`) headers. Refuses what a layer
 * has no business containing: sparse files, unknown entry types, names longer
 * than PATH_MAX, oversized metadata headers. The stream ends at the two zero
 * blocks (or at a clean end of input).
 */
export async function* readTar(reader: ByteReader): AsyncGenerator<TarMember> {
  let localRecords = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;

  for (;;) {
    const position = reader.position;
    const block = reader.tryReadExact(BLOCK_SIZE) ?? (await reader.readExact(BLOCK_SIZE, () => `the tar header at byte ${position}`));
    if (block === undefined) return;
    if (isZeroBlock(block)) return;
    const raw = decodeHeader(block, position);
    const flag = raw.typeflag;
    const current = longName ?? raw.name;

    if (flag === 'x' || flag === 'g') {
      if (raw.size > MAX_PAX_BYTES) {
        throw new InvalidArgumentError(`layer entry ${quoteName(current)}: PAX header of ${raw.size} bytes is over the ${MAX_PAX_BYTES}-byte limit`);
      }
      const body = (await reader.readExact(raw.size, `the PAX header at byte ${position}`)) ?? Buffer.alloc(0);
      await reader.skip(paddingOf(raw.size), `the PAX header at byte ${position}`);
      // Global headers are read (to check them) and ignored, as containerd ignores them.
      if (flag === 'x') localRecords = new Map([...localRecords, ...parsePaxRecords(body)]);
      else parsePaxRecords(body);
      continue;
    }
    if (flag === 'L' || flag === 'K') {
      // GNU writes the name plus a NUL; anything longer cannot be a valid name.
      if (raw.size > MAX_NAME_BYTES + 1) {
        throw tooLong(flag === 'L' ? 'name' : 'link target', raw.size, current);
      }
      const body = (await reader.readExact(raw.size, `the GNU long-name header at byte ${position}`)) ?? Buffer.alloc(0);
      await reader.skip(paddingOf(raw.size), `the GNU long-name header at byte ${position}`);
      if (flag === 'L') longName = stripNul(body);
      else longLink = stripNul(body);
      continue;
    }

    const records = localRecords;
    localRecords = new Map();
    const name = records.get('path')?.toString('utf8') ?? longName ?? raw.name;
    const linkname = records.get('linkpath')?.toString('utf8') ?? longLink ?? raw.linkname;
    longName = undefined;
    longLink = undefined;

    if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw tooLong('name', Buffer.byteLength(name), name);
    if (Buffer.byteLength(linkname) > MAX_NAME_BYTES) throw tooLong('link target', Buffer.byteLength(linkname), name);
    if ([...records.keys()].some((key) => key.startsWith('GNU.sparse.')) || flag === 'S') {
      throw new InvalidArgumentError(`layer entry ${quoteName(name)}: sparse files are not supported`);
    }
    let type = typeByFlag[flag];
    if (type === undefined) {
      throw new InvalidArgumentError(`layer entry ${quoteName(name)}: unsupported tar entry type ${JSON.stringify(flag)}`);
    }
    // Old tars mark directories as files with a trailing slash.
    if (type === 'file' && flag !== '7' && name.endsWith('/')) type = 'directory';

    const xattrs = new Map<string, Buffer>();
    for (const [key, value] of records) {
      if (key.startsWith(XATTR_PAX_PREFIX) && key.length > XATTR_PAX_PREFIX.length) {
        xattrs.set(key.slice(XATTR_PAX_PREFIX.length), value);
      }
    }
    const size = paxNumber(records, 'size', false) ?? raw.size;
    // As Go's archive/tar: links, devices, dirs and fifos are header-only,
    // whatever size their header claims.
    const dataSize = type === 'file' ? size : 0;
    const entry: TarEntry = {
      name,
      type,
      mode: raw.mode,
      uid: paxNumber(records, 'uid', false) ?? raw.uid,
      gid: paxNumber(records, 'gid', false) ?? raw.gid,
      size: dataSize,
      mtime: paxNumber(records, 'mtime', true) ?? raw.mtime,
      atime: paxNumber(records, 'atime', true),
      linkname,
      uname: records.get('uname')?.toString('utf8') ?? raw.uname,
      gname: records.get('gname')?.toString('utf8') ?? raw.gname,
      devmajor: raw.devmajor,
      devminor: raw.devminor,
      xattrs,
      position,
    };

    let consumed = 0;
    const what = () => `data of layer entry ${quoteName(name)}`;
    const data = async function* (): AsyncGenerator<Buffer> {
      for await (const chunk of reader.chunks(dataSize - consumed, what)) {
        consumed += chunk.length;
        yield chunk;
      }
    };
    let taken: Buffer[] | undefined;
    const buffered = (): Buffer[] | undefined => {
      if (taken !== undefined || consumed !== 0) return taken;
      taken = reader.tryReadPieces(dataSize);
      if (taken !== undefined) consumed = dataSize;
      return taken;
    };
    yield { entry, data, buffered };
    if (consumed < dataSize && !reader.trySkip(dataSize - consumed)) await reader.skip(dataSize - consumed, what);
    const padding = paddingOf(dataSize);
    if (!reader.trySkip(padding)) await reader.skip(padding, what);
  }
}

function paddingOf(size: number): number {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}
