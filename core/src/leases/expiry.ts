import type { Labels } from '../metadata/types';
import { GcLabels } from './types';

const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/**
 * When a lease's `containerd.io/gc.expire` label says it ends (unix ms);
 * undefined when absent or unparsable, which (as in containerd) means never.
 */
export function leaseExpiry(labels: Labels): number | undefined {
  const text = labels[GcLabels.expire];
  if (text === undefined || !rfc3339.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/** RFC 3339 in UTC without fractions, as Go's time.RFC3339 prints it (and ctr shows). */
export function formatRfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
