import { InvalidArgumentError } from '../errdefs';
import type { Labels } from './types';

/** Longest identifier containerd accepts (pkg/identifiers), in bytes. */
export const MAX_IDENTIFIER_LENGTH = 76;

/** Largest label containerd accepts: key and value together, in UTF-8 bytes. */
export const MAX_LABEL_SIZE = 4096;

// No `u` flag and ASCII-only classes: non-ASCII letters must fail, as in Go.
const identifierPattern = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
// Shown in errors in containerd's spelling, with a capturing group.
const identifierPatternText = '^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$';

// Long values would turn a log line into a dump; containerd trims label keys to 64.
const maxQuotedLength = 80;
const maxQuotedLabelKey = 64;

function quote(value: string, limit = maxQuotedLength): string {
  return value.length > limit ? `${JSON.stringify(value.slice(0, limit))}…` : JSON.stringify(value);
}

/**
 * Checks a name against containerd's identifier rules, used for namespaces,
 * container ids, lease ids and the like. `kind` names the thing in the error,
 * e.g. `validateIdentifier('namespace', name)`. Throws InvalidArgumentError.
 */
export function validateIdentifier(kind: string, value: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(`${kind}: must not be empty`);
  }
  // Bytes, not UTF-16 units, to agree with Go's len(); only matters for
  // non-ASCII input, which the pattern rejects anyway.
  if (Buffer.byteLength(value, 'utf8') > MAX_IDENTIFIER_LENGTH) {
    throw new InvalidArgumentError(
      `${kind} ${quote(value)}: longer than ${MAX_IDENTIFIER_LENGTH} characters`,
    );
  }
  if (!identifierPattern.test(value)) {
    throw new InvalidArgumentError(`${kind} ${quote(value)}: must match ${identifierPatternText}`);
  }
}

/** Checks one label; throws InvalidArgumentError naming the key. */
export function validateLabel(key: string, value: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidArgumentError('label key must not be empty');
  }
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(`label ${quote(key, maxQuotedLabelKey)}: value must be a string`);
  }
  const size = Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
  if (size > MAX_LABEL_SIZE) {
    throw new InvalidArgumentError(
      `label ${quote(key, maxQuotedLabelKey)}: key and value length (${size} bytes) ` +
        `greater than maximum size (${MAX_LABEL_SIZE} bytes)`,
    );
  }
}

/** Checks every label (containerd's labels.Validate plus a non-empty key). */
export function validateLabels(labels: Labels): void {
  for (const [key, value] of Object.entries(labels)) validateLabel(key, value);
}
