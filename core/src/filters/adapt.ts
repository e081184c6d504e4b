import { FieldAdaptor } from './types';

/**
 * A FieldAdaptor over a plain object: a field path walks nested records, and
 * leaves are strings, numbers, booleans, bigints or Dates (ISO text).
 *
 * Label keys often contain dots (`labels.com.example.foo`), so when a path
 * part is not a key, longer dotted joins of the remaining parts are tried as
 * one key, as containerd's adaptors do for labels. Only own properties count,
 * so `constructor` or `__proto__` never resolve to something inherited.
 * An empty string is present: unlike proto scalars, a plain object can say
 * "unset" by leaving the field out.
 */
export function adaptObject(obj: object): FieldAdaptor {
  return (fieldPath) => lookup(obj, fieldPath, 0);
}

function lookup(node: unknown, path: readonly string[], from: number): string | undefined {
  if (from === path.length) return leafText(node);
  if (!isRecord(node)) return undefined;
  for (let to = from + 1; to <= path.length; to++) {
    const key = path.slice(from, to).join('.');
    if (!Object.prototype.hasOwnProperty.call(node, key)) continue;
    const found = lookup(node[key], path, to);
    if (found !== undefined) return found;
  }
  return undefined;
}

function leafText(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    default:
      return value instanceof Date && !Number.isNaN(value.getTime()) ? value.toISOString() : undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}
