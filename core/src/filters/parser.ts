import { Selector, ValueOperator } from './ast';
import { FilterSyntaxError } from './errors';
import {
  DOUBLE_QUOTE,
  charAt,
  firstIllegalChar,
  isFieldChar,
  isOperatorChar,
  isQuoteChar,
  isSeparatorChar,
  isValueChar,
  isWhiteSpace,
} from './lexical';
import { readQuoted } from './quoting';

/** A selector plus where its value starts, so later checks can point at it. */
export interface LocatedSelector {
  selector: Selector;
  valuePosition: number;
}

const VALUE_OPERATORS: ReadonlySet<string> = new Set<ValueOperator>(['==', '!=', '~=']);

/**
 * Parses one filter string into selectors (the empty string gives none).
 * Syntax only: regexps are checked when the selectors are compiled.
 *
 * Whitespace is accepted only where containerd's scanner skips it: before a
 * field, an operator or a value. Anything after a value other than `,` (trailing
 * blanks included) is an error there, so it is here.
 */
export function scanSelectors(expression: string): LocatedSelector[] {
  if (expression === '') return [];
  const illegal = firstIllegalChar(expression);
  if (illegal >= 0) throw new FilterSyntaxError(expression, illegal, 'illegal character (NUL or unpaired surrogate)');
  return new SelectorScanner(expression).selectors();
}

class SelectorScanner {
  private position = 0;

  constructor(private readonly input: string) {}

  selectors(): LocatedSelector[] {
    const selectors = [this.selector()];
    for (;;) {
      const next = this.peek();
      if (next === '') return selectors;
      if (next !== ',') throw this.error(this.position, `unexpected input ${JSON.stringify(next)}`);
      this.position += 1;
      selectors.push(this.selector());
    }
  }

  private selector(): LocatedSelector {
    const fieldPath = this.fieldPath();
    const next = this.peek();
    if (next === '' || next === ',') {
      return { selector: { fieldPath, operator: 'present' }, valuePosition: this.position };
    }
    const operator = this.operator();
    this.skipWhiteSpace();
    const valuePosition = this.position;
    const value = this.value(operator === '~=');
    return { selector: { fieldPath, operator, value }, valuePosition };
  }

  private fieldPath(): string[] {
    const path = [this.field()];
    while (this.peek() === '.') {
      this.position += 1;
      path.push(this.field());
    }
    return path;
  }

  private field(): string {
    this.skipWhiteSpace();
    const next = this.peek();
    if (isQuoteChar(next)) return this.quoted(false);
    if (isFieldChar(next)) return this.takeWhile(isFieldChar);
    throw this.error(this.position, 'expected field or quoted');
  }

  private operator(): ValueOperator {
    this.skipWhiteSpace();
    const start = this.position;
    // containerd reports a broken quote here before the missing operator
    // (`labels.ns/key==v` is an unterminated literal), so check it first.
    if (isQuoteChar(this.peek())) readQuoted(this.input, start);
    if (!isOperatorChar(this.peek())) throw this.error(start, 'expected an operator ("=="|"!="|"~=")');
    const operator = this.takeWhile(isOperatorChar);
    if (!VALUE_OPERATORS.has(operator)) throw this.error(start, `unsupported operator ${JSON.stringify(operator)}`);
    return operator as ValueOperator;
  }

  /** `/re/` and `|re|` quoting exist so regexps need fewer escapes; containerd allows them for `~=` only. */
  private value(allowAltQuotes: boolean): string {
    const next = this.peek();
    if (isQuoteChar(next)) return this.quoted(allowAltQuotes);
    if (next === '' || isSeparatorChar(next) || isOperatorChar(next)) {
      throw this.error(this.position, 'expected value or quoted');
    }
    // The first character is taken whatever it is; only the rest must be value characters.
    this.position += next.length;
    return next + this.takeWhile(isValueChar);
  }

  private quoted(allowAltQuotes: boolean): string {
    const start = this.position;
    const literal = readQuoted(this.input, start);
    if (!allowAltQuotes && this.input[start] !== DOUBLE_QUOTE) {
      throw this.error(start, 'invalid quote encountered');
    }
    this.position = literal.end;
    return literal.value;
  }

  private peek(): string {
    return charAt(this.input, this.position);
  }

  private takeWhile(accept: (ch: string) => boolean): string {
    const start = this.position;
    for (let ch = this.peek(); ch !== '' && accept(ch); ch = this.peek()) this.position += ch.length;
    return this.input.slice(start, this.position);
  }

  private skipWhiteSpace(): void {
    this.takeWhile(isWhiteSpace);
  }

  private error(position: number, reason: string): FilterSyntaxError {
    return new FilterSyntaxError(this.input, position, reason);
  }
}
