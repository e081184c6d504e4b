import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errdefs';

/** The only algorithm berth stores content under, as containerd's `digest.Canonical`. */
export const SHA256 = 'sha256';

/** A digest split into its parts: `sha256:<encoded>`. */
export interface ParsedDigest {
  algorithm: typeof SHA256;
  /** 64 lowercase hex characters: the file name under `blobs/sha256/`. */
  encoded: string;
}

// Lowercase only: the hex is a file name, and two spellings of one digest
// would be two blobs.
const sha256Pattern = /^sha256:([0-9a-f]{64})$/;

// Keeps an error about a pasted megabyte of garbage readable.
const maxQuoted = 160;

function quote(value: string): string {
  return value.length > maxQuoted ? `${JSON.stringify(value.slice(0, maxQuoted))}…` : JSON.stringify(value);
}

/**
 * Splits a `sha256:<64 lowercase hex>` digest. Anything else (another
 * algorithm, uppercase hex, wrong length, not a string) is an
 * InvalidArgumentError naming the value; `what` names it in the message.
 */
export function parseDigest(value: unknown, what = 'digest'): ParsedDigest {
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(`invalid ${what}: expected a string, got ${typeof value}`);
  }
  const match = sha256Pattern.exec(value);
  if (!match) {
    throw new InvalidArgumentError(`invalid ${what} ${quote(value)}: must be sha256:<64 lowercase hex>`);
  }
  return { algorithm: SHA256, encoded: match[1] };
}

/** Throws InvalidArgumentError unless `value` is a `sha256:<64 lowercase hex>` digest. */
export function validateDigest(value: unknown, what = 'digest'): asserts value is string {
  parseDigest(value, what);
}

/** Whether `value` is a digest berth accepts, for callers that skip rather than fail. */
export function isValidDigest(value: unknown): value is string {
  return typeof value === 'string' && sha256Pattern.test(value);
}

/** The `sha256:<hex>` digest of some bytes (a string counts as its UTF-8 bytes). */
export function sha256Digest(data: Uint8Array | string): string {
  return `${SHA256}:${createHash(SHA256).update(data).digest('hex')}`;
}
