// Helpers for writing expected protobuf bytes by hand in specs.

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** Joins hex strings (spaces allowed, for grouping by field) and raw byte chunks into one hex string. */
export function bytesOf(...parts: Array<string | Buffer>): string {
  return parts.map((part) => (typeof part === 'string' ? part.replace(/\s+/g, '') : part.toString('hex'))).join('');
}

export const ascii = (text: string): Buffer => Buffer.from(text, 'ascii');

/** 1700000000.123 s: the Timestamp body is seconds varint 80 e2 cf aa 06, nanos 123000000 varint c0 a9 d3 3a. */
export const sampleDate = new Date(1_700_000_000_123);
export const sampleTimestampBody = '08 80e2cfaa06 10 c0a9d33a';

/** Go's zero time, seconds -62135596800, as a ten-byte two's complement varint. */
export const goZeroSecondsVarint = '80 92 b8 c3 98 fe ff ff ff 01';
