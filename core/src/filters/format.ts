import { Selector } from './ast';
import { isBareField, isOperatorChar, isQuoteChar, isSeparatorChar, isValueChar } from './lexical';
import { quote } from './quoting';

/**
 * Writes selectors as a filter string that parses back to the same selectors,
 * quoting only where the grammar needs it. Useful to build filters from user
 * input (label keys with dots, values with commas or spaces).
 */
export function formatFilter(selectors: readonly Selector[]): string {
  return selectors.map(formatSelector).join(',');
}

function formatSelector(selector: Selector): string {
  const path = selector.fieldPath.map(formatField).join('.');
  return selector.operator === 'present' ? path : `${path}${selector.operator}${formatValue(selector.value)}`;
}

/** A field path part: bare when it is a plain word, quoted otherwise. */
export function formatField(field: string): string {
  return isBareField(field) ? field : quote(field);
}

/** A value: bare when the scanner would read it back unchanged, quoted otherwise. */
export function formatValue(value: string): string {
  return canBeBare(value) ? value : quote(value);
}

function canBeBare(value: string): boolean {
  const first = value.charAt(0);
  if (first === '' || isQuoteChar(first) || isSeparatorChar(first) || isOperatorChar(first)) return false;
  for (const ch of value) if (!isValueChar(ch)) return false;
  return true;
}
