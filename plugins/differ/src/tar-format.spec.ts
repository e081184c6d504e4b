import { execFile } from 'child_process';
import { createReadStream } from 'fs';
import * as fs from 'fs/promises';
import { mkdtemp, rm } from 'fs/promises';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';
import { lsetxattr } from '@berth/sys';
import { Parser, type ReadEntry } from 'tar';
import { applyLayer } from './apply';
import { ByteReader } from './byte-reader';
import { decodeHeader, encodeEntryHeader, endOfArchive, type EntryToWrite, padding, parsePaxRecords } from './tar-format';
import { readTar, type TarEntry } from './tar-reader';
import { describeAsRoot, rawHeader, streamOf } from './test-fixtures/tar-builder';
import { describeTree } from './test-fixtures/trees';

const run = promisify(execFile);

async function readAll(tar: Buffer): Promise<{ entry: TarEntry; data: Buffer }[]> {
  const out: { entry: TarEntry; data: Buffer }[] = [];
  for await (const member of readTar(new ByteReader(streamOf(tar, 333)))) {
    const parts: Buffer[] = [];
    for await (const chunk of member.data()) parts.push(chunk);
    out.push({ entry: member.entry, data: Buffer.concat(parts) });
  }
  return out;
}

function archive(entries: { entry: EntryToWrite; data?: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const { entry, data } of entries) {
    parts.push(encodeEntryHeader(entry));
    if (data) parts.push(data, padding(data.length));
  }
  parts.push(endOfArchive());
  return Buffer.concat(parts);
}

describe('decodeHeader', () => {
  it('reads base-256 sizes beyond 8 GiB', () => {
    expect(decodeHeader(rawHeader({ name: 'big' }, 10 * 1024 ** 3), 0).size).toBe(10 * 1024 ** 3);
  });

  it('reads devices and owners names from GNU-magic headers too', () => {
    const block = rawHeader({ name: 'dev/tty', type: '3', devmajor: 5, devminor: 1, uname: 'root' }, 0);
    block.write('ustar  \0', 257, 'latin1');
    let sum = 0;
    block.fill(0x20, 148, 156);
    for (const byte of block) sum += byte;
    block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    expect(decodeHeader(block, 0)).toMatchObject({ typeflag: '3', devmajor: 5, devminor: 1, uname: 'root' });
  });

  it('refuses a bad checksum, naming the offset', () => {
    const block = rawHeader({ name: 'x' }, 0);
    block[0] ^= 1;
    expect(() => decodeHeader(block, 1536)).toThrow(/bad header checksum at byte 1536/);
  });
});

describe('parsePaxRecords', () => {
  it('keeps values as bytes, binary included', () => {
    const value = Buffer.from([0, 10, 255, 61]);
    const record = Buffer.concat([Buffer.from('30 SCHILY.xattr.user.bin='), value, Buffer.from('\n')]);
    expect(record.length).toBe(30);
    const records = parsePaxRecords(Buffer.concat([record, Buffer.from('12 path=abc\n')]));
    expect([...(records.get('SCHILY.xattr.user.bin') ?? [])]).toEqual([...value]);
    expect(records.get('path')?.toString()).toBe('abc');
  });

  it('refuses records whose length lies', () => {
    expect(() => parsePaxRecords(Buffer.from('99 path=abc\n'))).toThrow(/record length does not match/);
    expect(() => parsePaxRecords(Buffer.from('x path=abc\n'))).toThrow(/malformed PAX header/);
  });
});

describe('encodeEntryHeader', () => {
  it('round-trips long names, long link targets, big ids and binary xattrs through PAX', async () => {
    const longPath = `${'p'.repeat(180)}/${'q'.repeat(200)}`;
    const xattrs = new Map([['security.capability', Buffer.from([1, 0, 0, 2, 0, 32, 0, 0])]]);
    const tar = archive([
      { entry: { path: 'dir', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 5 } },
      { entry: { path: longPath, type: 'file', mode: 0o4755, uid: 3_000_000, gid: 7, size: 3, mtime: 1700000000, xattrs }, data: Buffer.from('abc') },
      { entry: { path: 'link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 1, linkname: 'l'.repeat(150) } },
      { entry: { path: 'dev', type: 'char', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 1, devmajor: 4, devminor: 64 } },
    ]);
    const members = await readAll(tar);
    expect(members.map((m) => [m.entry.name, m.entry.type])).toEqual([
      ['dir/', 'directory'],
      [longPath, 'file'],
      ['link', 'symlink'],
      ['dev', 'char'],
    ]);
    expect(members[1].entry).toMatchObject({ mode: 0o4755, uid: 3_000_000, gid: 7, mtime: 1700000000, size: 3 });
    expect(members[1].data.toString()).toBe('abc');
    expect(members[1].entry.xattrs).toEqual(xattrs);
    expect(members[2].entry.linkname).toBe('l'.repeat(150));
    expect(members[3].entry).toMatchObject({ devmajor: 4, devminor: 64 });
  });

  it('writes what node-tar reads back the same', async () => {
    const longPath = `${'a'.repeat(120)}/${'b'.repeat(150)}`;
    const tar = archive([
      { entry: { path: longPath, type: 'file', mode: 0o644, uid: 1, gid: 2, size: 2, mtime: 1700000000 }, data: Buffer.from('hi') },
      { entry: { path: 'h', type: 'hardlink', mode: 0o644, uid: 1, gid: 2, size: 0, mtime: 1700000000, linkname: longPath } },
    ]);
    const seen: { path: string; type: string; linkpath?: string; size?: number }[] = [];
    await new Promise<void>((resolve, reject) => {
      const parser = new Parser({
        strict: true,
        onReadEntry: (entry: ReadEntry) => {
          seen.push({ path: entry.path, type: entry.type, linkpath: entry.linkpath || undefined, size: entry.size });
          entry.resume();
        },
      });
      parser.on('error', reject);
      parser.on('end', () => resolve());
      parser.end(tar);
    });
    expect(seen).toEqual([
      { path: longPath, type: 'File', size: 2, linkpath: undefined },
      { path: 'h', type: 'Link', linkpath: longPath, size: 0 },
    ]);
  });
});

describeAsRoot('interoperability', () => {
  it('applies a layer written by GNU tar (pax format, gzip, xattrs, long names, links) to the same tree', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-differ-interop-'));
    try {
      const source = join(dir, 'source');
      const target = join(dir, 'target');
      const deep = join(source, 'x'.repeat(150), 'y'.repeat(150));
      await fs.mkdir(deep, { recursive: true });
      await fs.writeFile(join(deep, 'file'), 'deep');
      await fs.symlink('x'.repeat(150), join(source, 'link'));
      await fs.writeFile(join(source, 'exec'), '#!/bin/sh\n');
      await fs.chown(join(source, 'exec'), 42, 43);
      await fs.chmod(join(source, 'exec'), 0o4755);
      await fs.link(join(source, 'exec'), join(source, 'exec-link'));
      lsetxattr(join(source, 'exec'), 'user.origin', Buffer.from('gnu'));
      await fs.mkdir(target);
      const layer = join(dir, 'layer.tar.gz');
      await run('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-czf', layer, '-C', source, '.']);
      const result = await applyLayer(createReadStream(layer), target);
      expect(result.compression).toBe('gzip');
      expect(await describeTree(target)).toEqual(await describeTree(source));
      expect((await fs.lstat(join(target, 'exec-link'))).ino).toBe((await fs.lstat(join(target, 'exec'))).ino);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
