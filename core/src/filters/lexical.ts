// Character classes of containerd's filter scanner. They are deliberately the
// same sets Go uses (unicode.IsSpace, IsGraphic ...) so that a string means the
// same thing to berth and to containerd.

/** Quote characters; `/` and `|` are only accepted around `~=` values. */
export const DOUBLE_QUOTE = '"';
const ALT_QUOTES = new Set(['/', '|']);

export function isQuoteChar(ch: string): boolean {
  return ch === DOUBLE_QUOTE || ALT_QUOTES.has(ch);
}

export function isOperatorChar(ch: string): boolean {
  return ch === '=' || ch === '!' || ch === '~';
}

/** `.` joins field path parts, `,` joins selectors. */
export function isSeparatorChar(ch: string): boolean {
  return ch === '.' || ch === ',';
}

const FIELD_CHAR = /^[A-Za-z0-9_-]$/;
const WHITE_SPACE = /^\p{White_Space}$/u;
// Go's unicode.IsGraphic minus spaces: letters, marks, numbers, punctuation, symbols.
const VALUE_CHAR = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

export function isFieldChar(ch: string): boolean {
  return FIELD_CHAR.test(ch);
}

export function isWhiteSpace(ch: string): boolean {
  return WHITE_SPACE.test(ch);
}

/** Characters that may continue an unquoted value. */
export function isValueChar(ch: string): boolean {
  return ch !== ',' && VALUE_CHAR.test(ch);
}

/** A field that can be written without quotes. */
export function isBareField(field: string): boolean {
  return /^[A-Za-z0-9_-]+$/.test(field);
}

/**
 * NUL and unpaired surrogates have no UTF-8 form; containerd's scanner rejects
 * them wherever they appear, so we do too. Returns the first offset or -1.
 */
export function firstIllegalChar(input: string): number {
  const match = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.exec(input);
  return match ? match.index : -1;
}

/** The whole code point at `index` (one or two UTF-16 units), '' at the end. */
export function charAt(input: string, index: number): string {
  const cp = input.codePointAt(index);
  return cp === undefined ? '' : String.fromCodePoint(cp);
}
