import { createHash } from 'crypto';
import { mkdtemp, rm } from 'fs/promises';
import { tmpdir } from 'os';
import { join } from 'path';
import { Readable } from 'stream';
import { gzipSync } from 'zlib';

/**
 * Tars built byte by byte, so tests can make what no well-behaved tar writer
 * would: absolute and `..` names, size claims larger than the data, links
 * out of the root, 5000-byte names, PAX xattrs with binary values.
 */

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
/** `describe` for suites that need root; they skip only when not root. */
export const describeAsRoot: jest.Describe = isRoot ? describe : describe.skip;

export type RawType = '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x' | 'g' | 'L' | 'K' | 'S' | 'Z';

export interface RawEntry {
  name: string;
  type?: RawType;
  /** Data written after the header (padded to a block). */
  data?: Buffer | string;
  /** The size the header claims; defaults to the data's length. */
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  uname?: string;
  gname?: string;
  /** PAX records put in an `x` header before this entry. */
  pax?: Record<string, Buffer | string>;
  /** Leave out the data's block padding (for truncated archives). */
  noPadding?: boolean;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** One 512-byte ustar header, fields written as given (the name may be cut to 100 bytes). */
export function rawHeader(entry: RawEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(entry.name.slice(0, 100), 0, 100, 'utf8');
  block.write(octal(entry.mode ?? (entry.type === '5' ? 0o755 : 0o644), 8), 100, 'latin1');
  block.write(octal(entry.uid ?? 0, 8), 108, 'latin1');
  block.write(octal(entry.gid ?? 0, 8), 116, 'latin1');
  if (size > 0o77777777777) {
    // base-256 for claims beyond 8 GiB
    block[124] = 0x80;
    let rest = BigInt(size);
    for (let i = 135; i > 124; i--) {
      block[i] = Number(rest & 0xffn);
      rest >>= 8n;
    }
  } else {
    block.write(octal(size, 12), 124, 'latin1');
  }
  block.write(octal(entry.mtime ?? 1700000000, 12), 136, 'latin1');
  block.write('        ', 148, 'latin1');
  block.write(entry.type ?? '0', 156, 'latin1');
  block.write((entry.linkname ?? '').slice(0, 100), 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 'latin1');
  block.write(entry.uname ?? '', 265, 32, 'utf8');
  block.write(entry.gname ?? '', 297, 32, 'utf8');
  block.write(octal(entry.devmajor ?? 0, 8), 329, 'latin1');
  block.write(octal(entry.devminor ?? 0, 8), 337, 'latin1');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return block;
}

function paxBody(records: Record<string, Buffer | string>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const payload = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
    let length = payload.length + 1;
    while (String(length).length + payload.length !== length) length = String(length).length + payload.length;
    parts.push(Buffer.concat([Buffer.from(String(length)), payload]));
  }
  return Buffer.concat(parts);
}

function pad(length: number): Buffer {
  return Buffer.alloc((512 - (length % 512)) % 512);
}

/** A tar of the entries, with the end marker unless `end: false`. */
export function buildTar(entries: RawEntry[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    if (entry.pax) {
      const body = paxBody(entry.pax);
      parts.push(rawHeader({ name: 'PaxHeaders/x', type: 'x' }, body.length), body, pad(body.length));
    }
    const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.from(entry.data);
    parts.push(rawHeader(entry, entry.size ?? data.length), data);
    if (!entry.noPadding) parts.push(pad(data.length));
  }
  if (options.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function gzip(data: Buffer): Buffer {
  return gzipSync(data);
}

export function streamOf(data: Buffer, chunkSize = 7000): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkSize) chunks.push(data.subarray(i, i + chunkSize));
  return Readable.from(chunks, { objectMode: false });
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A temp dir for one test, with `target/` and a `sentinel/` beside it that nothing may touch. */
export async function makeWorkspace(): Promise<{ dir: string; target: string; sentinel: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-differ-'));
  const target = join(dir, 'target');
  const sentinel = join(dir, 'sentinel');
  const { mkdir, writeFile } = await import('fs/promises');
  await mkdir(target);
  await mkdir(sentinel);
  await writeFile(join(sentinel, 'passwd'), 'original\n');
  return { dir, target, sentinel, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
