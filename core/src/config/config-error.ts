import type { ZodIssue } from 'zod';
import { InvalidArgumentError } from '../errdefs';

/** One problem found in a config file. */
export interface ConfigIssue {
  /** TOML key path, e.g. `plugins."io.berth.x.v1.y".some_key`; empty for the whole file. */
  path: string;
  message: string;
  /** 1-based position, for syntax errors. */
  line?: number;
  column?: number;
}

/**
 * A config file (or a plugin's config table) that cannot be used. The message has
 * one line per issue, each naming the source and the key path, so an operator can
 * fix every problem in one pass rather than one per restart. An empty `source`
 * (config given as an object, not a file) leaves the prefix out.
 */
export class ConfigError extends InvalidArgumentError {
  readonly source: string;
  readonly issues: readonly ConfigIssue[];

  constructor(source: string, issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super(issues.map((issue) => formatIssueLine(source, issue)).join('\n'), options);
    this.source = source;
    this.issues = issues;
  }
}

function formatIssueLine(source: string, issue: ConfigIssue): string {
  if (issue.line !== undefined) {
    return `${source}:${issue.line}:${issue.column ?? 0}: ${issue.message}`;
  }
  const where = [source, issue.path].filter(Boolean).join(': ');
  return where ? `${where}: ${issue.message}` : issue.message;
}

const bareKey = /^[A-Za-z0-9_-]+$/;

/** Renders a key path the way it would be written in TOML: `a.b."c.d"[2]`. */
export function formatKeyPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') {
      out += `[${part}]`;
      continue;
    }
    const key = bareKey.test(part) ? part : JSON.stringify(part);
    out += out ? `.${key}` : key;
  }
  return out;
}

/** Zod's type names, in TOML's words where they differ. */
function typeName(zodType: string): string {
  switch (zodType) {
    case 'object':
      return 'table';
    case 'date':
      return 'datetime';
    default:
      return zodType;
  }
}

function valueAt(input: unknown, path: readonly (string | number)[]): unknown {
  let cur = input;
  for (const part of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[part];
  }
  return cur;
}

function show(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Turns zod issues into ConfigIssues with TOML key paths. `prefix` is prepended
 * to every path (a plugin's table lives under `plugins."<uri>"`); `input` is the
 * value that was parsed, used to show offending values.
 */
export function configIssuesFromZod(
  issues: readonly ZodIssue[],
  input: unknown,
  prefix: readonly (string | number)[] = [],
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const fullPath = [...prefix, ...issue.path];
    const got = () => show(valueAt(input, issue.path));
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          const keyPath = formatKeyPath([...fullPath, key]);
          const quoted = keyPath.includes('"') ? `'${keyPath}'` : `"${keyPath}"`;
          out.push({ path: '', message: `unknown key ${quoted}` });
        }
        continue;
      case 'invalid_type':
        out.push({
          path: formatKeyPath(fullPath),
          message:
            issue.received === 'undefined'
              ? `missing required key (expected ${typeName(issue.expected)})`
              : `expected ${typeName(issue.expected)}, got ${typeName(issue.received)}`,
        });
        continue;
      case 'invalid_literal':
        out.push({
          path: formatKeyPath(fullPath),
          message: `expected ${show(issue.expected)}, got ${got()}`,
        });
        continue;
      case 'invalid_enum_value':
        out.push({
          path: formatKeyPath(fullPath),
          message: `expected one of ${issue.options.map(show).join(', ')}, got ${show(issue.received)}`,
        });
        continue;
      case 'too_small':
      case 'too_big': {
        const bound = show(issue.code === 'too_small' ? issue.minimum : issue.maximum);
        const op =
          issue.code === 'too_small' ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
        const what =
          issue.type === 'number' || issue.type === 'bigint'
            ? `expected a number ${op} ${bound}`
            : issue.type === 'string'
              ? `expected a string of length ${op} ${bound}`
              : issue.type === 'array'
                ? `expected an array of length ${op} ${bound}`
                : issue.message;
        out.push({ path: formatKeyPath(fullPath), message: `${what}, got ${got()}` });
        continue;
      }
      default:
        out.push({ path: formatKeyPath(fullPath), message: issue.message });
    }
  }
  return out;
}
