import { InvalidArgumentError } from '@berth/core';

/** What a read is of, for the message when the input ends part-way (built only then). */
export type ReadWhat = string | (() => string);

const describe = (what: ReadWhat): string => (typeof what === 'function' ? what() : what);

/**
 * Pull-based reads of exact byte counts from an async chunk source. The tar
 * reader needs "exactly 512 bytes" and "exactly `size` bytes, as chunks";
 * pulling (rather than stream events) keeps backpressure natural and makes a
 * truncated input an exception at the read that came up short.
 */
export class ByteReader {
  private readonly source: AsyncIterator<Buffer>;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private ended = false;
  /** Bytes handed out so far. */
  position = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.source = source[Symbol.asyncIterator]();
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.source.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    if (next.value.length > 0) {
      this.buffered.push(next.value);
      this.bufferedBytes += next.value.length;
    }
    return true;
  }

  /** The next `n` buffered bytes, as the pieces they are in. */
  private takePieces(n: number): Buffer[] {
    const out: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const head = this.buffered[0];
      if (head.length <= need) {
        out.push(head);
        this.buffered.shift();
        need -= head.length;
      } else {
        out.push(head.subarray(0, need));
        this.buffered[0] = head.subarray(need);
        need = 0;
      }
    }
    this.bufferedBytes -= n;
    this.position += n;
    return out;
  }

  private take(n: number): Buffer {
    const out = this.takePieces(n);
    return out.length === 1 ? out[0] : Buffer.concat(out, n);
  }

  /**
   * Exactly `n` bytes when they are in memory already, without waiting;
   * undefined (nothing taken) when they are not. Most of a layer's headers
   * and small files are: this saves a promise per read.
   */
  tryReadExact(n: number): Buffer | undefined {
    return this.bufferedBytes >= n ? this.take(n) : undefined;
  }

  /** As tryReadExact, as the pieces the bytes are in (no copy). */
  tryReadPieces(n: number): Buffer[] | undefined {
    return this.bufferedBytes >= n ? this.takePieces(n) : undefined;
  }

  /** Skips `n` bytes when they are in memory; false (nothing skipped) when they are not. */
  trySkip(n: number): boolean {
    if (this.bufferedBytes < n) return false;
    let need = n;
    while (need > 0) {
      const head = this.buffered[0];
      if (head.length <= need) {
        this.buffered.shift();
        need -= head.length;
      } else {
        this.buffered[0] = head.subarray(need);
        need = 0;
      }
    }
    this.bufferedBytes -= n;
    this.position += n;
    return true;
  }

  /**
   * Exactly `n` bytes; undefined when the input ended before the first byte.
   * `what` names the read in the error for an input that ends part-way.
   */
  async readExact(n: number, what: ReadWhat): Promise<Buffer | undefined> {
    while (this.bufferedBytes < n) {
      if (!(await this.pull())) {
        if (this.bufferedBytes === 0) return undefined;
        throw new InvalidArgumentError(`layer is truncated: ${describe(what)} ends after ${this.bufferedBytes} of ${n} bytes`);
      }
    }
    return this.take(n);
  }

  /** `n` bytes as they arrive; throws naming `what` if the input ends first. */
  async *chunks(n: number, what: ReadWhat): AsyncGenerator<Buffer> {
    let remaining = n;
    while (remaining > 0) {
      if (this.bufferedBytes === 0 && !(await this.pull())) {
        throw new InvalidArgumentError(`layer is truncated: ${describe(what)} ends after ${n - remaining} of ${n} bytes`);
      }
      const take = Math.min(remaining, this.buffered[0]?.length ?? 0);
      if (take === 0) continue;
      remaining -= take;
      yield this.take(take);
    }
  }

  async skip(n: number, what: ReadWhat): Promise<void> {
    if (this.trySkip(n)) return;
    for await (const _chunk of this.chunks(n, what)) {
      // Discarded: only the position matters.
    }
  }

  /** Reads and discards everything left (the bytes still count for the digest). */
  async drain(): Promise<void> {
    this.position += this.bufferedBytes;
    this.buffered = [];
    this.bufferedBytes = 0;
    while (await this.pull()) {
      this.position += this.bufferedBytes;
      this.buffered = [];
      this.bufferedBytes = 0;
    }
  }

  /** Stops the source early (after an error), so its producer can clean up. */
  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      await this.source.return?.();
    }
  }
}
