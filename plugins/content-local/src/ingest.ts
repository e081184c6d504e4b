import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IngestStatus } from '@berth/core';
import { hasErrorCode, isMissing, writeFileAtomic } from './fs-util';

/** What an ingest was started with, kept beside its data. */
export interface IngestRecord {
  ref: string;
  startedAt: Date;
  /** Expected size, 0 if unknown. */
  total: number;
  /** Expected digest, '' if unknown. */
  expected: string;
}

// containerd's file names, so the layout reads the same to anyone who knows it.
const DATA = 'data';
const REF = 'ref';
const STARTED_AT = 'startedat';
const UPDATED_AT = 'updatedat';
const TOTAL = 'total';
const EXPECTED = 'expected';

/** The ingest dir of a ref: `<ingestRoot>/<sha256(ref)>`, as containerd names it. */
function ingestDirName(ref: string): string {
  return createHash('sha256').update(ref).digest('hex');
}

/**
 * One ingest on disk: `<dir>/{data,ref,startedat,updatedat,total,expected}`.
 * The `ref` file is written last when an ingest is created, so a dir without
 * it is an interrupted creation; a dir with `ref` but no `data` is what a
 * crash right after a commit's rename leaves. Both are swept at startup.
 * The small files are replaced atomically but not fsynced: after a power cut
 * an ingest may be lost or restart, never turn into a blob unverified.
 */
export class IngestDir {
  readonly dir: string;
  readonly dataPath: string;

  constructor(
    ingestRoot: string,
    readonly ref: string,
  ) {
    this.dir = join(ingestRoot, ingestDirName(ref));
    this.dataPath = join(this.dir, DATA);
  }

  /** The record of a usable ingest for this ref, or undefined. */
  private async readRecord(): Promise<IngestRecord | undefined> {
    const storedRef = await this.readText(REF);
    if (storedRef !== this.ref) return undefined;
    const startedAt = parseTimestamp(await this.readText(STARTED_AT));
    const total = Number(await this.readText(TOTAL) ?? 0);
    if (!startedAt || !Number.isSafeInteger(total) || total < 0) return undefined;
    return { ref: this.ref, startedAt, total, expected: (await this.readText(EXPECTED)) ?? '' };
  }

  /** Starts over: whatever was here is removed and an empty ingest takes its place. */
  async create(record: IngestRecord): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    await writeFile(this.dataPath, '', { mode: 0o644 });
    await this.writeText(STARTED_AT, record.startedAt.toISOString());
    await this.writeText(UPDATED_AT, record.startedAt.toISOString());
    await this.writeExpectations(record);
    await this.writeText(REF, record.ref);
  }

  async writeExpectations(record: Pick<IngestRecord, 'total' | 'expected'>): Promise<void> {
    if (record.total > 0) await this.writeText(TOTAL, String(record.total));
    if (record.expected) await this.writeText(EXPECTED, record.expected);
  }

  async writeUpdatedAt(updatedAt: Date): Promise<void> {
    await this.writeText(UPDATED_AT, updatedAt.toISOString());
  }

  /** Status from disk: offset is what `data` holds. Undefined if there is no ingest. */
  async status(): Promise<IngestStatus | undefined> {
    const record = await this.readRecord();
    if (!record) return undefined;
    let offset = 0;
    let updatedAt = parseTimestamp(await this.readText(UPDATED_AT)) ?? record.startedAt;
    try {
      const data = await stat(this.dataPath);
      offset = data.size;
      // Writes since the last close show in the data file's mtime, not in `updatedat`.
      if (data.mtimeMs > updatedAt.getTime()) updatedAt = new Date(data.mtimeMs);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    const { ref, total, expected, startedAt } = record;
    return { ref, offset, total, expected, startedAt, updatedAt };
  }

  /** Removes the ingest; false if there was none. */
  async remove(): Promise<boolean> {
    try {
      await stat(this.dir);
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
    await rm(this.dir, { recursive: true, force: true });
    return true;
  }

  /** The ref recorded in an ingest dir, if it has one (for listing). */
  static async readRef(ingestRoot: string, dirName: string): Promise<string | undefined> {
    try {
      return await readFile(join(ingestRoot, dirName, REF), 'utf8');
    } catch (err) {
      if (isMissing(err) || hasErrorCode(err, 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  private async readText(name: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.dir, name), 'utf8');
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  private async writeText(name: string, text: string): Promise<void> {
    await writeFileAtomic(join(this.dir, name), text, { durable: false });
  }
}

/** Names of the files an ingest dir must have to be worth keeping after a restart. */
export const INGEST_REQUIRED_FILES = [REF, DATA] as const;

function parseTimestamp(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(text.trim());
  return Number.isNaN(date.getTime()) ? undefined : date;
}

