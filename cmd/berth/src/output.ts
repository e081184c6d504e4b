/** How listings are printed: aligned columns for people, JSON for programs. */
export type OutputFormat = 'table' | 'json';

/** Aligned columns separated by at least two spaces, like ctr's tabwriter output. */
export function formatTable(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, col) => Math.max(...all.map((r) => (r[col] ?? '').length)));
  const lines = all.map((r) =>
    r
      .map((cell, col) => (col === r.length - 1 ? cell : (cell ?? '').padEnd(widths[col] + 2)))
      .join('')
      .trimEnd(),
  );
  return lines.join('\n') + '\n';
}

/** Prints `rows` as a table, or `records` as a JSON array. */
export function printListing<T>(
  format: OutputFormat,
  headers: string[],
  records: T[],
  toRow: (record: T) => string[],
): void {
  if (format === 'json') {
    process.stdout.write(JSON.stringify(records, null, 2) + '\n');
  } else {
    process.stdout.write(formatTable(headers, records.map(toRow)));
  }
}

/** Parses `key=value` arguments; a bare `key` or `key=` means an empty value. */
export function parseKeyValues(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq === 0) throw new Error(`invalid label ${JSON.stringify(arg)}: empty key`);
    if (eq < 0) out[arg] = '';
    else out[arg.slice(0, eq)] = arg.slice(eq + 1);
  }
  return out;
}

export function formatLabels(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length ? pairs.sort().join(',') : '';
}
