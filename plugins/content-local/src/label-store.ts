import { readdirSync, unlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataLossError, type Labels } from '@berth/core';
import { isMissing, isTempName, removeFile, writeFileAtomic } from './fs-util';

/** What the store keeps beside a blob: its labels and when they last changed. */
export interface BlobLabels {
  labels: Labels;
  /** Absent until the labels are first updated after commit. */
  updatedAt?: Date;
}

interface LabelFile {
  labels: Labels;
  updatedAt?: string;
}

const labelFileSuffix = '.json';

/**
 * Labels of committed blobs, one JSON file per blob: `<dir>/<hex>.json`.
 *
 * One small file per blob rather than a database: each file is replaced
 * atomically (temp, fsync, rename, fsync dir), so a crash leaves the old or
 * the new labels and never affects another blob; it needs no native module;
 * and the blob and its labels can be kept consistent by ordering alone
 * (labels are written before a blob is published and removed after it is
 * deleted, and a startup sweep drops label files whose blob is gone).
 */
export class LabelStore {
  constructor(private readonly dir: string) {}

  /** Labels of `hex`; none if it has no file. DataLoss if the file is unreadable, rather than lose GC references silently. */
  async read(hex: string): Promise<BlobLabels> {
    let text: string;
    try {
      text = await readFile(this.pathOf(hex), 'utf8');
    } catch (err) {
      if (isMissing(err)) return { labels: {} };
      throw err;
    }
    return parseLabelFile(hex, text);
  }

  async write(hex: string, record: BlobLabels): Promise<void> {
    const file: LabelFile = { labels: record.labels, updatedAt: record.updatedAt?.toISOString() };
    await writeFileAtomic(this.pathOf(hex), JSON.stringify(file), { durable: true });
  }

  async remove(hex: string): Promise<void> {
    await removeFile(this.pathOf(hex));
  }

  /** Startup: drops temp files from interrupted writes and labels whose blob is gone. */
  sweep(hasBlob: (hex: string) => boolean): void {
    for (const name of readdirSync(this.dir)) {
      const orphan = name.endsWith(labelFileSuffix) && !hasBlob(name.slice(0, -labelFileSuffix.length));
      if (isTempName(name) || orphan) unlinkSync(join(this.dir, name));
    }
  }

  private pathOf(hex: string): string {
    return join(this.dir, `${hex}${labelFileSuffix}`);
  }
}

function parseLabelFile(hex: string, text: string): BlobLabels {
  try {
    const file = JSON.parse(text) as LabelFile;
    if (typeof file !== 'object' || file === null || typeof file.labels !== 'object' || file.labels === null) {
      throw new Error('no labels object');
    }
    const updatedAt = file.updatedAt === undefined ? undefined : new Date(file.updatedAt);
    return { labels: file.labels, updatedAt };
  } catch (err) {
    throw new DataLossError(`labels of sha256:${hex} are unreadable: ${(err as Error).message}`, { cause: err });
  }
}
