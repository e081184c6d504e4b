import { MultiBar, Presets, SingleBar } from 'cli-progress';
import type { BlobProgress } from '@berth/core';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/**
 * One live bar per blob (bytes, speed) on a terminal; silent otherwise so logs
 * and tests get only the summary line.
 */
export class TransferProgressDisplay {
  private readonly multi: MultiBar | undefined;
  private readonly bars = new Map<string, SingleBar>();
  private readonly started = Date.now();
  private latest: BlobProgress[] = [];

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    if (stream.isTTY) {
      this.multi = new MultiBar(
        {
          stream,
          format: '{name} [{bar}] {status} {done}/{size} {speed}',
          hideCursor: true,
          clearOnComplete: false,
          barsize: 30,
          etaBuffer: 20,
        },
        Presets.shades_classic,
      );
    }
  }

  update(blobs: BlobProgress[]): void {
    this.latest = blobs;
    if (!this.multi) return;
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    for (const b of blobs) {
      let bar = this.bars.get(b.digest);
      const payload = {
        name: `${b.mediaType.split('.').pop()?.replace(/\+.*/, '') ?? 'blob'} ${shortDigest(b.digest)}`.padEnd(24),
        status: (b.unpack && b.unpack !== 'waiting' ? b.unpack : b.status).padEnd(11),
        done: formatBytes(b.offset),
        size: formatBytes(b.total),
        speed: `${formatBytes(b.offset / seconds)}/s`,
      };
      if (!bar) {
        bar = this.multi.create(Math.max(b.total, 1), b.offset, payload);
        this.bars.set(b.digest, bar);
      } else {
        bar.setTotal(Math.max(b.total, 1));
        bar.update(b.offset, payload);
      }
    }
  }

  /** Stops the bars and returns totals for the summary line. */
  finish(): { blobs: number; bytes: number; fetched: number; seconds: number } {
    this.multi?.stop();
    const bytes = this.latest.reduce((sum, b) => sum + b.total, 0);
    const fetched = this.latest.filter((b) => b.status !== 'exists').reduce((sum, b) => sum + b.total, 0);
    return { blobs: this.latest.length, bytes, fetched, seconds: (Date.now() - this.started) / 1000 };
  }
}
