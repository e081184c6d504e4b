import { InvalidArgumentError } from '../errdefs';
import { Selector } from './ast';
import { FieldAdaptor, Filter } from './types';

type Matcher = (adaptor: FieldAdaptor) => boolean;

/** Matches everything: the meaning of an empty filter. */
export const matchEverything: Filter = Object.freeze({ match: () => true });

/** A filter that is true when every matcher is. */
export function allOf(matchers: Matcher[]): Filter {
  if (matchers.length === 0) return matchEverything;
  return { match: (adaptor) => matchers.every((matches) => matches(adaptor)) };
}

/** A filter that is true when any of `filters` is. */
export function anyOf(filters: Filter[]): Filter {
  if (filters.length === 0) return matchEverything;
  if (filters.length === 1) return filters[0];
  return { match: (adaptor) => filters.some((filter) => filter.match(adaptor)) };
}

/**
 * Turns a selector into a predicate. Comparisons follow containerd: `!=` and
 * `~=` see a missing field as the empty string, `==` never matches one.
 */
export function compileSelector(selector: Selector): Matcher {
  const { fieldPath } = selector;
  switch (selector.operator) {
    case 'present':
      return (adaptor) => adaptor(fieldPath) !== undefined;
    case '==': {
      const expected = selector.value;
      return (adaptor) => adaptor(fieldPath) === expected;
    }
    case '!=': {
      const unwanted = selector.value;
      return (adaptor) => (adaptor(fieldPath) ?? '') !== unwanted;
    }
    case '~=': {
      const pattern = compileRegExp(selector.value);
      return (adaptor) => pattern.test(adaptor(fieldPath) ?? '');
    }
  }
}

// RE2 spells whole-pattern flags as a leading group; JavaScript has no such
// syntax before ES2025, so lift the common ones into RegExp flags.
const LEADING_FLAGS = /^\(\?([ims]+)\)/;

/**
 * Compiles a `~=` pattern once. Unicode mode comes first because it gives RE2's
 * code-point semantics; patterns it rejects (RE2 allows escaping any
 * punctuation, e.g. `\-`) get a second chance without it.
 */
export function compileRegExp(source: string): RegExp {
  const leading = LEADING_FLAGS.exec(source);
  const flags = leading ? [...new Set(leading[1])].join('') : '';
  const body = leading ? source.slice(leading[0].length) : source;
  try {
    return new RegExp(body, `${flags}u`);
  } catch {
    try {
      return new RegExp(body, flags);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new InvalidArgumentError(`invalid regular expression ${JSON.stringify(source)}: ${reason}`, {
        cause: err,
      });
    }
  }
}

/** A filter from already-parsed selectors (AND-ed); none matches everything. */
export function compileSelectors(selectors: readonly Selector[]): Filter {
  return allOf(selectors.map(compileSelector));
}
