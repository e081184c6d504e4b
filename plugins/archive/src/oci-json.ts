import { InvalidArgumentError, type Descriptor, type Platform } from '@berth/core';

/** An OCI image index (or Docker manifest list): what index.json holds too. */
export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** An OCI image manifest (or Docker schema 2 manifest). */
export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** One image in a docker-save `manifest.json`. */
export interface DockerArchiveEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

// Lowercase only, like the content store: two spellings of one digest would be two blobs.
const sha256Pattern = /^sha256:[0-9a-f]{64}$/;

export function isSha256Digest(value: unknown): value is string {
  return typeof value === 'string' && sha256Pattern.test(value);
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(what: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`${what}: ${why}`);
}

export function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw invalid(what, `not valid JSON (${(err as Error).message})`);
  }
}

function stringRecord(value: unknown, what: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw invalid(what, 'must map strings to strings');
  }
  return { ...(value as Record<string, string>) };
}

function parsePlatformField(value: unknown, what: string): Platform | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value) || typeof value.os !== 'string' || typeof value.architecture !== 'string') {
    throw invalid(what, 'platform needs string os and architecture');
  }
  const platform: Platform = { os: value.os, architecture: value.architecture };
  if (typeof value.variant === 'string' && value.variant) platform.variant = value.variant;
  if (typeof value['os.version'] === 'string' && value['os.version']) platform.osVersion = value['os.version'];
  if (Array.isArray(value['os.features']) && value['os.features'].every((f) => typeof f === 'string')) {
    platform.osFeatures = value['os.features'] as string[];
  }
  return platform;
}

/** A descriptor from untrusted JSON: sha256 digest, non-negative size, media type. */
export function parseDescriptor(value: unknown, what: string): Descriptor {
  if (!isObject(value)) throw invalid(what, 'descriptor must be an object');
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || !mediaType) throw invalid(what, 'descriptor has no mediaType');
  if (!isSha256Digest(digest)) {
    throw invalid(what, `descriptor digest ${JSON.stringify(digest)} is not sha256:<64 lowercase hex>`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(what, `descriptor ${digest} has an invalid size ${JSON.stringify(size)}`);
  }
  const descriptor: Descriptor = { mediaType, digest, size };
  const annotations = stringRecord(value.annotations, `${what} (annotations of ${digest})`);
  if (annotations) descriptor.annotations = annotations;
  if (Array.isArray(value.urls) && value.urls.every((u) => typeof u === 'string')) descriptor.urls = [...value.urls];
  const platform = parsePlatformField(value.platform, `${what} (${digest})`);
  if (platform) descriptor.platform = platform;
  return descriptor;
}

export function parseImageIndex(bytes: Uint8Array, what: string): ImageIndex {
  const value = parseJson(bytes, what);
  if (!isObject(value)) throw invalid(what, 'must be a JSON object');
  if (value.schemaVersion !== 2) throw invalid(what, `schemaVersion must be 2, not ${JSON.stringify(value.schemaVersion)}`);
  if (!Array.isArray(value.manifests)) throw invalid(what, 'has no manifests array');
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: value.manifests.map((m, i) => parseDescriptor(m, `${what} manifests[${i}]`)),
  };
  if (typeof value.mediaType === 'string') index.mediaType = value.mediaType;
  const annotations = stringRecord(value.annotations, `${what} annotations`);
  if (annotations) index.annotations = annotations;
  return index;
}

export function parseImageManifest(bytes: Uint8Array, what: string): ImageManifest {
  const value = parseJson(bytes, what);
  if (!isObject(value)) throw invalid(what, 'must be a JSON object');
  if (value.schemaVersion !== 2) throw invalid(what, `schemaVersion must be 2, not ${JSON.stringify(value.schemaVersion)}`);
  if (!Array.isArray(value.layers)) throw invalid(what, 'has no layers array');
  const manifest: ImageManifest = {
    schemaVersion: 2,
    config: parseDescriptor(value.config, `${what} config`),
    layers: value.layers.map((l, i) => parseDescriptor(l, `${what} layers[${i}]`)),
  };
  if (typeof value.mediaType === 'string') manifest.mediaType = value.mediaType;
  return manifest;
}

export function parseDockerArchiveManifest(bytes: Uint8Array): DockerArchiveEntry[] {
  const what = 'manifest.json';
  const value = parseJson(bytes, what);
  if (!Array.isArray(value)) throw invalid(what, 'must be a JSON array');
  return value.map((entry, i) => {
    const where = `${what}[${i}]`;
    if (!isObject(entry)) throw invalid(where, 'must be an object');
    const { Config, RepoTags, Layers } = entry;
    if (typeof Config !== 'string' || !Config) throw invalid(where, 'Config must name a file');
    if (!Array.isArray(Layers) || !Layers.every((l) => typeof l === 'string' && l)) {
      throw invalid(where, 'Layers must be a list of file names');
    }
    if (RepoTags !== undefined && RepoTags !== null && !(Array.isArray(RepoTags) && RepoTags.every((t) => typeof t === 'string'))) {
      throw invalid(where, 'RepoTags must be a list of names');
    }
    return { Config, RepoTags: (RepoTags as string[] | null | undefined) ?? null, Layers: Layers as string[] };
  });
}

/** The platform an image config declares (`os`, `architecture`, `variant`), if any. */
export function platformOfConfig(bytes: Uint8Array): Platform | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(value) || typeof value.os !== 'string' || typeof value.architecture !== 'string') return undefined;
  if (!value.os || !value.architecture) return undefined;
  const platform: Platform = { os: value.os, architecture: value.architecture };
  if (typeof value.variant === 'string' && value.variant) platform.variant = value.variant;
  if (typeof value['os.version'] === 'string' && value['os.version']) platform.osVersion = value['os.version'];
  return platform;
}

/** Descriptor JSON in OCI's field order, without fields that are unset. */
export function descriptorJson(d: Descriptor): JsonObject {
  const out: JsonObject = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.urls?.length) out.urls = d.urls;
  if (d.annotations && Object.keys(d.annotations).length) out.annotations = d.annotations;
  if (d.platform) {
    const p: JsonObject = { architecture: d.platform.architecture, os: d.platform.os };
    if (d.platform.osVersion) p['os.version'] = d.platform.osVersion;
    if (d.platform.osFeatures?.length) p['os.features'] = d.platform.osFeatures;
    if (d.platform.variant) p.variant = d.platform.variant;
    out.platform = p;
  }
  return out;
}
