import type { Statement } from 'better-sqlite3';
import { InvalidArgumentError } from '../errdefs';
import type { MetadataDb } from './db';
import type { Labels } from './types';

interface LabelRow {
  owner: string;
  key: string;
  value: string;
}

/**
 * One `<thing>_labels` table whose owner is `(namespace, <ownerColumn>)`.
 * Empty values are never stored: they mean "no label", as in containerd.
 */
export class LabelTable {
  private readonly sql: {
    of: Statement<[string, string], LabelRow>;
    inNamespace: Statement<[string], LabelRow>;
    put: Statement<[string, string, string, string]>;
    remove: Statement<[string, string, string]>;
    clear: Statement<[string, string]>;
  };

  constructor(db: MetadataDb, table: string, ownerColumn: string) {
    this.sql = {
      of: db.prepare(
        `SELECT ${ownerColumn} AS owner, key, value FROM ${table} WHERE namespace = ? AND ${ownerColumn} = ? ORDER BY key`,
      ),
      inNamespace: db.prepare(
        `SELECT ${ownerColumn} AS owner, key, value FROM ${table} WHERE namespace = ? ORDER BY ${ownerColumn}, key`,
      ),
      put: db.prepare(
        `INSERT INTO ${table} (namespace, ${ownerColumn}, key, value) VALUES (?, ?, ?, ?)
         ON CONFLICT (namespace, ${ownerColumn}, key) DO UPDATE SET value = excluded.value`,
      ),
      remove: db.prepare(`DELETE FROM ${table} WHERE namespace = ? AND ${ownerColumn} = ? AND key = ?`),
      clear: db.prepare(`DELETE FROM ${table} WHERE namespace = ? AND ${ownerColumn} = ?`),
    };
  }

  of(namespace: string, owner: string): Labels {
    // Object.fromEntries, not assignment, so a `__proto__` key stays a label.
    return Object.fromEntries(this.sql.of.all(namespace, owner).map((row) => [row.key, row.value]));
  }

  /** Labels of every owner in `namespace` that has any, by owner. */
  inNamespace(namespace: string): Map<string, Labels> {
    const entries = new Map<string, [string, string][]>();
    for (const row of this.sql.inNamespace.all(namespace)) {
      let list = entries.get(row.owner);
      if (!list) entries.set(row.owner, (list = []));
      list.push([row.key, row.value]);
    }
    return new Map([...entries].map(([owner, list]) => [owner, Object.fromEntries(list)]));
  }

  replace(namespace: string, owner: string, labels: Labels): void {
    this.sql.clear.run(namespace, owner);
    for (const [key, value] of Object.entries(labels)) {
      if (value !== '') this.sql.put.run(namespace, owner, key, value);
    }
  }
}

/**
 * Labels after a containerd-style update of `current` from `requested`:
 * `labels` replaces them all; `labels.<key>` sets that key from `requested`,
 * removing it when absent or empty. Other paths are returned for the caller
 * to handle (or refuse).
 */
export function applyLabelPaths(
  current: Labels,
  requested: Labels,
  paths: readonly string[],
): { labels: Labels; otherPaths: string[] } {
  const next = new Map(Object.entries(current));
  const otherPaths: string[] = [];
  for (const path of paths) {
    if (path === 'labels') {
      next.clear();
      for (const [key, value] of Object.entries(requested)) next.set(key, value);
    } else if (path.startsWith('labels.')) {
      const key = path.slice('labels.'.length);
      if (key === '') throw new InvalidArgumentError(`field path ${JSON.stringify(path)}: label key must not be empty`);
      const value = Object.prototype.hasOwnProperty.call(requested, key) ? requested[key] : '';
      next.set(key, value);
    } else {
      otherPaths.push(path);
    }
  }
  return { labels: withoutEmptyValues(Object.fromEntries(next)), otherPaths };
}

/** A copy without the empty values, which mean "no label". */
export function withoutEmptyValues(labels: Labels): Labels {
  return Object.fromEntries(Object.entries(labels).filter(([, value]) => value !== ''));
}
