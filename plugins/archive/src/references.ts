import { InvalidArgumentError } from '@berth/core';

/** Annotation with an image's full name (containerd's `images.AnnotationImageName`). */
export const IMAGE_NAME_ANNOTATION = 'io.containerd.image.name';
/** OCI's reference name: by the spec only the tag part (`latest`). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

const DOCKER_HUB = 'docker.io';

// distribution/reference's grammar, reduced to what normalising needs.
const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const domainPattern = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const digestPattern = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;

interface DockerReference {
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
}

function parseDockerReference(ref: string): DockerReference {
  const invalid = (why: string) => new InvalidArgumentError(`invalid image reference ${JSON.stringify(ref)}: ${why}`);
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestPattern.test(digest)) throw invalid('bad digest');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw invalid('bad tag');
  }
  let domain = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // Docker's rule: the first component is a registry host if it looks like one.
    if (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first === 'index.docker.io' ? DOCKER_HUB : first;
      path = rest.slice(slash + 1);
      if (!domainPattern.test(domain)) throw invalid('bad registry host');
    }
  }
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (!path || !path.split('/').every((c) => pathComponent.test(c))) {
    throw invalid('repository must be lowercase letters, digits and separators');
  }
  return { domain, path, tag, digest };
}

/**
 * Docker's full form of a short name, as `docker load` and containerd store it:
 * `busybox` → `docker.io/library/busybox:latest`.
 */
export function normalizeDockerReference(ref: string): string {
  const r = parseDockerReference(ref);
  const tag = r.tag ?? (r.digest ? undefined : 'latest');
  return `${r.domain}/${r.path}${tag ? `:${tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/**
 * The short form docker's manifest.json carries in RepoTags
 * (`docker.io/library/busybox:latest` → `busybox:latest`); undefined for names
 * RepoTags cannot hold (digest references, names docker would not parse).
 */
export function familiarDockerTag(name: string): string | undefined {
  let r: DockerReference;
  try {
    r = parseDockerReference(name);
  } catch {
    return undefined;
  }
  if (r.digest) return undefined;
  let repository = `${r.domain}/${r.path}`;
  if (r.domain === DOCKER_HUB) {
    repository = r.path.startsWith('library/') && r.path.split('/').length === 2 ? r.path.slice(8) : r.path;
  }
  return `${repository}:${r.tag ?? 'latest'}`;
}

/**
 * The OCI ref name for a full image name, as containerd writes it: what follows
 * the repository (`latest`, `latest@sha256:…`, `@sha256:…`); a name with no
 * `/` is kept whole.
 */
export function ociReferenceName(name: string): string {
  const slash = name.indexOf('/');
  if (slash < 0) return name;
  const path = name.slice(slash + 1);
  const split = path.search(/[:@]/);
  if (split < 0) return '';
  return path[split] === ':' ? path.slice(split + 1) : path.slice(split);
}

/**
 * ctr's treatment of OCI ref names (`archive.AddRefPrefix` / `FilterRefPrefix`):
 * a bare tag becomes `<prefix>:<tag>`; a full reference is kept, and when
 * `onlyPrefixed` is set, kept only if it is under `prefix`.
 */
export function translateRefName(ref: string, prefix: string, onlyPrefixed: boolean): string | undefined {
  if (!ref) return undefined;
  if (!/[/:@]/.test(ref)) return `${prefix}:${ref}`;
  if (!onlyPrefixed || hasImagePrefix(ref, prefix)) return ref;
  // ctr also accepts a fully qualified name whose last component is the short prefix (nginx ↔ docker.io/library/nginx).
  const last = ref.slice(ref.lastIndexOf('/') + 1);
  if (last.startsWith(prefix) && (last.length === prefix.length || ':@'.includes(last[prefix.length]))) return ref;
  return undefined;
}

function hasImagePrefix(name: string, prefix: string): boolean {
  if (!name.startsWith(prefix)) return false;
  return name.length === prefix.length || '/:@'.includes(name[prefix.length]);
}
