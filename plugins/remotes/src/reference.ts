import { InvalidArgumentError } from '@berth/core';

/**
 * A parsed, normalised image reference: `domain/path[:tag][@digest]`.
 * Short Docker Hub names are expanded the way docker and containerd do it
 * (`busybox` → `docker.io/library/busybox:latest`).
 */
export interface ImageReference {
  /** Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`. */
  readonly domain: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  readonly path: string;
  readonly tag?: string;
  /** `sha256:<64 hex>` when the reference pins a digest. */
  readonly digest?: string;
}

// The grammar of github.com/distribution/reference, written out piece by piece
// so each rejection can say which part was wrong.
const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const domainComponent = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const ipv6Host = /^\[[a-fA-F0-9:.]+(?:%[a-zA-Z0-9]+)?\]$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const sha256Digest = /^sha256:[a-f0-9]{64}$/;
const digestShape = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const maxNameLength = 255;

export const DOCKER_HUB_DOMAIN = 'docker.io';
const legacyDockerHubDomain = 'index.docker.io';

function invalid(ref: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid image reference "${ref}": ${why}`);
}

function validDomain(domain: string): boolean {
  let host = domain;
  const portMatch = /^(.*):([0-9]+)$/.exec(domain);
  if (portMatch && !domain.endsWith(']')) {
    host = portMatch[1];
    const port = Number(portMatch[2]);
    if (port < 1 || port > 65535) return false;
  }
  if (ipv6Host.test(host)) return true;
  return host.length > 0 && host.split('.').every((c) => domainComponent.test(c));
}

/** `sha256:<64 hex>`; InvalidArgument otherwise (other algorithms are not supported). */
export function validateDigest(digest: string, context = 'digest'): string {
  if (sha256Digest.test(digest)) return digest;
  if (digestShape.test(digest) && !digest.startsWith('sha256:')) {
    throw new InvalidArgumentError(`${context} "${digest}" uses an unsupported algorithm; only sha256 is supported`);
  }
  throw new InvalidArgumentError(`${context} "${digest}" is not of the form sha256:<64 lowercase hex digits>`);
}

/**
 * Parses `[host[:port]/]repo[:tag][@sha256:...]` and normalises it. A reference
 * with neither tag nor digest gets `latest`. Throws InvalidArgument naming the
 * part that is wrong.
 */
export function parseReference(ref: string): ImageReference {
  if (typeof ref !== 'string' || ref.length === 0) throw invalid(String(ref), 'empty');
  if (ref !== ref.trim()) throw invalid(ref, 'contains leading or trailing whitespace');

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      digest = validateDigest(d);
    } catch (err) {
      throw invalid(ref, (err as Error).message);
    }
  }

  // A ':' after the last '/' separates the tag; one before it is a port.
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) {
      throw invalid(ref, `tag "${tag}" must be 1-128 of [A-Za-z0-9_.-] and not start with '.' or '-'`);
    }
  }

  if (rest.length === 0) throw invalid(ref, 'repository name is empty');
  const slash = rest.indexOf('/');
  let domain: string;
  let path: string;
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  // As in distribution/reference: the first component is a registry host only
  // if it looks like one; otherwise the name is on Docker Hub.
  const firstIsDomain =
    slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());
  if (firstIsDomain) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!validDomain(domain)) throw invalid(ref, `registry host "${domain}" is not a valid host[:port]`);
  } else {
    domain = DOCKER_HUB_DOMAIN;
    path = rest;
  }
  if (domain === legacyDockerHubDomain) domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !path.includes('/')) path = `library/${path}`;

  if (path.length === 0) throw invalid(ref, 'repository name is empty');
  for (const component of path.split('/')) {
    if (component !== component.toLowerCase()) throw invalid(ref, 'repository name must be lowercase');
    if (!pathComponent.test(component)) {
      throw invalid(
        ref,
        `repository path component "${component}" must be lowercase letters and digits separated by '.', '_', '__' or '-'`,
      );
    }
  }
  if (domain.length + 1 + path.length > maxNameLength) {
    throw invalid(ref, `repository name is longer than ${maxNameLength} characters`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { domain, path, tag, digest };
}

/** `domain/path`, the repository name without tag or digest. */
export function repositoryName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalised string, e.g. `docker.io/library/busybox:latest`. */
export function formatReference(ref: ImageReference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** Parses and reformats: the canonical form of any accepted reference. */
export function normalizeReference(ref: string): string {
  return formatReference(parseReference(ref));
}

/** What `/manifests/<x>` addresses: the digest when pinned, else the tag. */
export function manifestLocator(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}
