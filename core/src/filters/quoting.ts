import { TextDecoder } from 'util';
import { InvalidArgumentError } from '../errdefs';
import { FilterSyntaxError } from './errors';
import { charAt, isValueChar } from './lexical';

// Quoted literals follow Go's string syntax, as containerd's do. Go strings are
// bytes, so `\xff` or `\377` add a raw byte: decode into UTF-8 bytes first and
// turn them into text at the end.

const NAMED_ESCAPES = new Map<string, number>([
  ['a', 0x07],
  ['b', 0x08],
  ['f', 0x0c],
  ['n', 0x0a],
  ['r', 0x0d],
  ['t', 0x09],
  ['v', 0x0b],
  ['\\', 0x5c],
]);

const ESCAPE_FOR_CHAR = new Map<string, string>(
  [...NAMED_ESCAPES].map(([letter, code]) => [String.fromCharCode(code), `\\${letter}`]),
);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface QuotedLiteral {
  value: string;
  /** Offset just past the closing quote. */
  end: number;
}

/** Reads the literal whose opening quote is at `start`; the closing quote is the same character. */
export function readQuoted(input: string, start: number): QuotedLiteral {
  const quote = input[start];
  const bytes: number[] = [];
  let index = start + 1;
  for (;;) {
    const ch = charAt(input, index);
    if (ch === '' || ch === '\n') throw new FilterSyntaxError(input, start, 'quoted literal not terminated');
    if (ch === quote) break;
    if (ch === '\\') {
      index = readEscape(input, index, quote, bytes);
    } else {
      appendUtf8(bytes, ch);
      index += ch.length;
    }
  }
  return { value: decodeBytes(input, start, bytes), end: index + 1 };
}

/** Decodes the escape whose backslash is at `at`; returns the offset after it. */
function readEscape(input: string, at: number, quote: string, bytes: number[]): number {
  const letter = input[at + 1] ?? '';
  const named = NAMED_ESCAPES.get(letter);
  if (named !== undefined) {
    bytes.push(named);
    return at + 2;
  }
  if (letter === quote) {
    appendUtf8(bytes, quote);
    return at + 2;
  }
  if (/^[0-7]$/.test(letter)) {
    const byte = readNumber(input, at, at + 1, 3, 8);
    if (byte > 0xff) throw new FilterSyntaxError(input, at, 'octal escape value > 255');
    bytes.push(byte);
    return at + 4;
  }
  if (letter === 'x') {
    bytes.push(readNumber(input, at, at + 2, 2, 16));
    return at + 4;
  }
  if (letter === 'u' || letter === 'U') {
    const digits = letter === 'u' ? 4 : 8;
    const codePoint = readNumber(input, at, at + 2, digits, 16);
    if (codePoint > 0x10ffff) throw new FilterSyntaxError(input, at, 'escaped code point out of range');
    appendUtf8(bytes, String.fromCodePoint(isSurrogate(codePoint) ? 0xfffd : codePoint));
    return at + 2 + digits;
  }
  throw new FilterSyntaxError(input, at, 'illegal escape sequence');
}

function readNumber(input: string, escapeAt: number, from: number, count: number, radix: 8 | 16): number {
  const digits = input.slice(from, from + count);
  const pattern = radix === 8 ? /^[0-7]+$/ : /^[0-9A-Fa-f]+$/;
  if (digits.length !== count || !pattern.test(digits)) {
    throw new FilterSyntaxError(input, escapeAt, 'illegal numeric escape sequence');
  }
  return parseInt(digits, radix);
}

// Go encodes a surrogate code point as U+FFFD; mirror it so `\ud800` means the same.
function isSurrogate(codePoint: number): boolean {
  return codePoint >= 0xd800 && codePoint <= 0xdfff;
}

function appendUtf8(bytes: number[], ch: string): void {
  for (const byte of Buffer.from(ch, 'utf8')) bytes.push(byte);
}

function decodeBytes(input: string, start: number, bytes: number[]): string {
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch (err) {
    // Go would keep the raw bytes; a JS string cannot, so refuse rather than guess.
    throw new FilterSyntaxError(input, start, 'quoted literal is not valid UTF-8', { cause: err });
  }
}

/** Writes `text` as a double-quoted literal that readQuoted turns back into `text`. */
export function quote(text: string): string {
  let out = '"';
  for (const ch of text) out += escapeForQuote(ch);
  return `${out}"`;
}

function escapeForQuote(ch: string): string {
  if (ch === '"') return '\\"';
  const named = ESCAPE_FOR_CHAR.get(ch);
  if (named) return named;
  if (ch === ' ' || ch === ',' || isValueChar(ch)) return ch;
  const codePoint = ch.codePointAt(0) ?? 0;
  if (isSurrogate(codePoint)) {
    throw new InvalidArgumentError(`filter text contains an unpaired surrogate U+${hex(codePoint, 4)}`);
  }
  return codePoint <= 0xffff ? `\\u${hex(codePoint, 4)}` : `\\U${hex(codePoint, 8)}`;
}

function hex(value: number, width: number): string {
  return value.toString(16).toUpperCase().padStart(width, '0');
}
