/**
 * Reads the headers of an uncompressed layer tar as it streams past (data is
 * skipped, not copied) to learn what extracting it alone, without the layers
 * below, would get wrong. Extraction into an overlay upper dir consults the
 * layers below in one place: a directory an entry needs but the layer does
 * not list is created with the owner, mode, xattrs and times it has below.
 * A layer extracted on its own gets defaults there, so those directories are
 * recorded to be fixed once the layers below are in place.
 */

const BLOCK = 512;
const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

export interface LayerScan {
  /**
   * False when extracting the layer on its own could differ from extracting
   * it on its parents in a way the fix-ups below cannot mend (an entry
   * below a symlink or file of the same layer, `..` in a name, an opaque
   * marker on the root): such a layer is extracted in place instead.
   */
  rebasable: boolean;
  reason?: string;
  /** Directories entries needed that the layer never lists: they take their metadata from below. */
  implicitDirs: string[];
  /**
   * Directories the layer lists only after an entry inside them: extracted
   * in place they get the xattrs they have below as well as their own.
   */
  lateDirs: string[];
}

function octalOrBinary(field: Buffer): number {
  if (field[0] & 0x80) {
    // base-256: big-endian, first byte's high bit is the marker
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i];
    return value + (field[0] & 0x3f) * 256 ** (field.length - 1);
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

/** `path` records of a PAX extended header. */
function paxPath(body: Buffer): string | undefined {
  let found: string | undefined;
  let offset = 0;
  while (offset < body.length) {
    const space = body.indexOf(0x20, offset);
    if (space < 0) break;
    const length = parseInt(body.subarray(offset, space).toString('latin1'), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = body.subarray(space + 1, offset + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0 && record.slice(0, eq) === 'path') found = record.slice(eq + 1);
    offset += length;
  }
  return found;
}

export class LayerScanner {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of the current entry's data still to skip (or to collect, for long names and PAX). */
  private dataLeft = 0;
  private padLeft = 0;
  private collecting: { kind: 'longname' | 'pax'; parts: Buffer[] } | undefined;
  private nextName: string | undefined;
  private ended = false;

  private readonly listed = new Set<string>();
  private readonly needed = new Set<string>();
  private readonly neededBeforeListed = new Set<string>();
  private readonly nonDirs = new Set<string>();
  private unsafe: string | undefined;

  feed(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.ended) {
      if (this.dataLeft > 0 || this.padLeft > 0) {
        const take = Math.min(this.dataLeft + this.padLeft, chunk.length - offset);
        const data = Math.min(take, this.dataLeft);
        if (data > 0 && this.collecting) this.collecting.parts.push(chunk.subarray(offset, offset + data));
        this.dataLeft -= data;
        this.padLeft -= take - data;
        offset += take;
        if (this.dataLeft === 0 && this.padLeft === 0 && this.collecting) this.finishCollecting();
        continue;
      }
      const need = BLOCK - this.pendingBytes;
      const piece = chunk.subarray(offset, offset + need);
      this.pending.push(piece);
      this.pendingBytes += piece.length;
      offset += piece.length;
      if (this.pendingBytes === BLOCK) {
        const header = Buffer.concat(this.pending, BLOCK);
        this.pending = [];
        this.pendingBytes = 0;
        this.header(header);
      }
    }
  }

  finish(): LayerScan {
    const implicitDirs = [...this.needed].filter((d) => !this.listed.has(d)).sort();
    const lateDirs = [...this.neededBeforeListed].filter((d) => this.listed.has(d)).sort();
    return this.unsafe === undefined
      ? { rebasable: true, implicitDirs, lateDirs }
      : { rebasable: false, reason: this.unsafe, implicitDirs, lateDirs };
  }

  private header(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    const size = octalOrBinary(block.subarray(124, 136));
    const type = String.fromCharCode(block[156] || 0x30);
    const magic = block.subarray(257, 262).toString('latin1');
    let name = cString(block.subarray(0, 100));
    const prefix = magic === 'ustar' ? cString(block.subarray(345, 500)) : '';
    if (prefix) name = `${prefix}/${name}`;
    this.dataLeft = size;
    this.padLeft = (BLOCK - (size % BLOCK)) % BLOCK;
    switch (type) {
      case 'L':
        this.collecting = { kind: 'longname', parts: [] };
        break;
      case 'x':
        this.collecting = { kind: 'pax', parts: [] };
        break;
      case 'g':
      case 'K':
        break;
      default:
        this.observe(this.nextName ?? name, type === '5');
        this.nextName = undefined;
    }
    if (size === 0 && this.collecting) this.finishCollecting();
  }

  private finishCollecting(): void {
    const { kind, parts } = this.collecting!;
    this.collecting = undefined;
    const body = Buffer.concat(parts);
    if (kind === 'longname') this.nextName = cString(body);
    else this.nextName = paxPath(body) ?? this.nextName;
  }

  /**
   * Records one member, by its name as the archive gives it: for a caller
   * that reads the headers itself (the extraction does) instead of feeding
   * the bytes.
   */
  observe(name: string, isDirectory: boolean): void {
    const parts = name.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) return this.markUnsafe(`entry ${JSON.stringify(name)} has '..' in its name`);
    if (parts.length === 0) return;
    const base = parts[parts.length - 1];
    const parents = parts.slice(0, -1);
    if (base === OPAQUE_MARKER && parents.length === 0) return this.markUnsafe('the layer marks its root opaque');
    for (let i = 1; i <= parents.length; i++) {
      const dir = parents.slice(0, i).join('/');
      if (this.nonDirs.has(dir)) return this.markUnsafe(`entry ${JSON.stringify(name)} lies below ${JSON.stringify(dir)}, which the layer makes a non-directory`);
      if (!this.listed.has(dir)) {
        this.needed.add(dir);
        this.neededBeforeListed.add(dir);
      }
    }
    if (base.startsWith(WHITEOUT_PREFIX)) return;
    const path = parts.join('/');
    if (isDirectory) {
      this.listed.add(path);
      this.nonDirs.delete(path);
    } else {
      this.nonDirs.add(path);
      this.listed.delete(path);
    }
  }

  private markUnsafe(reason: string): void {
    this.unsafe ??= reason;
  }
}
