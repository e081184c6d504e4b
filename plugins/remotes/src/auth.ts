import { InvalidArgumentError } from '@berth/core';

/** A user name and password (or token used as password) for a registry. */
export interface Credentials {
  username: string;
  password: string;
}

/**
 * Credentials for a registry host (`host[:port]`, as in the URL), or undefined
 * for anonymous access. Called for mirrors and token servers' registries too.
 */
export type CredentialsProvider = (host: string) => Credentials | undefined | Promise<Credentials | undefined>;

/**
 * How credentials may be given: `user:password` (the CLI's form), an object
 * used for every host, or a per-host function.
 */
export type CredentialsOption = string | Credentials | CredentialsProvider;

export function toCredentialsProvider(option: CredentialsOption | undefined): CredentialsProvider {
  if (option === undefined) return () => undefined;
  if (typeof option === 'function') return option;
  if (typeof option === 'string') {
    const colon = option.indexOf(':');
    // Never echo the string: it holds the password.
    if (colon <= 0) throw new InvalidArgumentError('credentials must have the form user:password');
    const creds = { username: option.slice(0, colon), password: option.slice(colon + 1) };
    return () => creds;
  }
  return () => option;
}

/** One challenge from a `WWW-Authenticate` header. Scheme is lower-cased. */
export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses `WWW-Authenticate` (RFC 7235): one or more challenges, each a scheme
 * and comma-separated `key=value` or `key="quoted, value"` parameters.
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  // Each item is a bare token (a scheme) or `key=value` / `key="quoted"` (a parameter of the last scheme).
  const item = /[\s,]*([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?/y;
  const challenges: AuthChallenge[] = [];
  let current: AuthChallenge | undefined;
  let m: RegExpExecArray | null;
  while (item.lastIndex < text.length && (m = item.exec(text)) !== null) {
    const [, name, quoted, bare] = m;
    if (quoted === undefined && bare === undefined) {
      current = { scheme: name.toLowerCase(), params: {} };
      challenges.push(current);
    } else if (current) {
      current.params[name.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare!;
    }
  }
  return challenges;
}

/** `repository:<path>:<actions>` scopes, merged per resource so a token covers all of them. */
export function mergeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes) {
    for (const one of scope.split(' ').filter(Boolean)) {
      const lastColon = one.lastIndexOf(':');
      if (lastColon < 0) {
        byResource.set(one, byResource.get(one) ?? new Set());
        continue;
      }
      const resource = one.slice(0, lastColon);
      const actions = byResource.get(resource) ?? new Set<string>();
      for (const a of one.slice(lastColon + 1).split(',').filter(Boolean)) actions.add(a);
      byResource.set(resource, actions);
    }
  }
  return [...byResource.entries()]
    .map(([resource, actions]) => (actions.size ? `${resource}:${[...actions].sort().join(',')}` : resource))
    .sort();
}

export function repositoryScope(path: string, actions: 'pull' | 'pull,push'): string {
  return `repository:${path}:${actions}`;
}

/** Replaces every occurrence of the secrets in server-supplied text before it reaches a message. */
export function redact(text: string, creds: Credentials | undefined): string {
  if (!creds) return text;
  let out = text;
  for (const secret of [creds.password, creds.username]) {
    if (secret && secret.length >= 1) out = out.split(secret).join('<redacted>');
  }
  return out;
}
