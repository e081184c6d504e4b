import { Selector } from './ast';
import { allOf, anyOf, compileRegExp, compileSelector } from './compile';
import { FilterSyntaxError } from './errors';
import { LocatedSelector, scanSelectors } from './parser';
import { Filter } from './types';

/**
 * Parses one filter string: comma-separated selectors, all of which must match.
 * The empty string matches everything. Throws FilterSyntaxError
 * (InvalidArgument) naming the expression and the offending position.
 */
export function parseFilter(expression: string): Filter {
  return compileLocated(expression, scanSelectors(expression));
}

/**
 * Parses several filter strings into one filter that matches when any of them
 * does (containerd's ParseAll). No strings, or an empty one, match everything.
 */
export function parseFilters(expressions: readonly string[]): Filter {
  return anyOf(expressions.map(parseFilter));
}

/** The selectors of one filter string, for callers that inspect or rewrite filters. */
export function parseSelectors(expression: string): Selector[] {
  const located = scanSelectors(expression);
  for (const entry of located) checkRegExp(expression, entry);
  return located.map(({ selector }) => selector);
}

function compileLocated(expression: string, located: LocatedSelector[]): Filter {
  const matchers = located.map((entry) => {
    try {
      return compileSelector(entry.selector);
    } catch (err) {
      throw asSyntaxError(expression, entry, err);
    }
  });
  return allOf(matchers);
}

function checkRegExp(expression: string, entry: LocatedSelector): void {
  if (entry.selector.operator !== '~=') return;
  try {
    compileRegExp(entry.selector.value);
  } catch (err) {
    throw asSyntaxError(expression, entry, err);
  }
}

function asSyntaxError(expression: string, entry: LocatedSelector, err: unknown): FilterSyntaxError {
  const reason = err instanceof Error ? err.message : String(err);
  return new FilterSyntaxError(expression, entry.valuePosition, reason, { cause: err });
}
