import { createHash } from 'crypto';
import { pipeline, Readable, Transform } from 'stream';
import {
  BerthError,
  DataLossError,
  type Descriptor,
  errorKind,
  FailedPreconditionError,
  InvalidArgumentError,
  isNotFound,
  type Logger,
  NotFoundError,
  NotImplementedError,
  ResourceExhaustedError,
  UnavailableError,
} from '@berth/core';
import { type CredentialsOption, repositoryScope, toCredentialsProvider } from './auth';
import { configureHosts, type HostCapability, hostsWith, type RegistryHost } from './hosts';
import {
  baseMediaType,
  isIndexType,
  isManifestOrIndexType,
  manifestAcceptTypes,
  MediaTypes,
} from './media-types';
import {
  formatReference,
  type ImageReference,
  manifestLocator,
  parseReference,
  repositoryName,
  validateDigest,
} from './reference';
import {
  formatBytes,
  notFound,
  type RegistryResponse,
  RegistryTransport,
  registryErrorText,
  responseHeader,
  type SendOptions,
  tooLarge,
} from './transport';

/** How to reach registries. Every field is optional; defaults match containerd's. */
export interface ResolverOptions {
  /** Use plain HTTP for the registry's own server (hosts.toml entries say their scheme themselves). */
  plainHttp?: boolean;
  /** containerd's `config_path`: a directory of `<host[:port]>/hosts.toml` files. */
  hostsDir?: string;
  /** `user:password`, `{username, password}`, or a per-host function. Never logged or put in errors. */
  credentials?: CredentialsOption;
  /** PEM CA certificate(s) to trust for every host, on top of the system roots. */
  ca?: string | string[];
  /** Accept any TLS certificate. */
  skipVerify?: boolean;
  /** Abort a transfer that moves no bytes for this long (default 30 s). */
  progressTimeoutMs?: number;
  /** Largest manifest or index accepted (default 4 MiB). */
  maxManifestSize?: number;
  /** Extra attempts on connection errors, 5xx and 429 (default 3). */
  retries?: number;
  /** First retry delay, doubled per attempt (default 250 ms). */
  retryDelayMs?: number;
  userAgent?: string;
  logger?: Logger;
}

/** The result of resolving a reference: its canonical name and the manifest or index it points at. */
export interface Resolved {
  /** Normalised reference, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  descriptor: Descriptor;
}

export interface FetchOptions {
  /** Start at this byte (blobs only): sent as `Range: bytes=<offset>-`. */
  offset?: number;
  signal?: AbortSignal;
  /** Called with each chunk's size as it arrives. */
  onBytes?: (n: number) => void;
}

/** A body being downloaded. */
export interface FetchedContent {
  body: Readable;
  /**
   * Where `body` starts in the blob: the requested offset when the registry
   * honoured the Range (206), 0 when it sent the whole blob (200).
   */
  offset: number;
}

/** Downloads manifests and blobs of one repository (containerd's remotes.Fetcher). */
export interface Fetcher {
  fetch(descriptor: Descriptor, options?: FetchOptions): Promise<FetchedContent>;
}

/** Opens content to upload, from the start; called again for each attempt. */
export type ContentSource = () => Promise<Readable | Buffer> | Readable | Buffer;

export interface PushOptions {
  /** Push a manifest or index under this tag instead of its digest. */
  tag?: string;
  /** Repositories (paths on the same registry) to try a cross-repository mount from. */
  mountFrom?: readonly string[];
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
}

/** `exists`: the registry had it; `mounted`: linked from another repository; `pushed`: uploaded. */
export type PushStatus = 'pushed' | 'exists' | 'mounted';

/** Uploads manifests and blobs to one repository (containerd's remotes.Pusher). */
export interface Pusher {
  push(descriptor: Descriptor, content: ContentSource, options?: PushOptions): Promise<PushStatus>;
}

export const DEFAULT_PROGRESS_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_MANIFEST_SIZE = 4 * 1024 * 1024;
const userAgentDefault = 'berth/0.1';

function display(ref: ImageReference): string {
  return formatReference(ref);
}

/**
 * An OCI distribution client, shaped like containerd's docker.Resolver:
 * `resolve` a reference to a descriptor, then `fetcher(ref)` / `pusher(ref)`
 * for content. Hosts come from hosts.toml (mirrors first, then the server).
 * Holds connections and tokens: `close()` it when done.
 */
export class RegistryResolver {
  private readonly transport: RegistryTransport;
  private readonly hostsByDomain = new Map<string, Promise<RegistryHost[]>>();
  readonly maxManifestSize: number;

  constructor(private readonly options: ResolverOptions = {}) {
    this.transport = new RegistryTransport({
      credentials: toCredentialsProvider(options.credentials),
      progressTimeoutMs: options.progressTimeoutMs ?? DEFAULT_PROGRESS_TIMEOUT_MS,
      retries: options.retries ?? 3,
      retryDelayMs: options.retryDelayMs ?? 250,
      userAgent: options.userAgent ?? userAgentDefault,
      logger: options.logger,
    });
    this.maxManifestSize = options.maxManifestSize ?? DEFAULT_MAX_MANIFEST_SIZE;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /** The hosts tried for a registry, in order (hosts.toml mirrors, then the server). */
  hosts(domain: string): Promise<RegistryHost[]> {
    let hosts = this.hostsByDomain.get(domain);
    if (!hosts) {
      const ca = this.options.ca === undefined ? undefined : Array.isArray(this.options.ca) ? this.options.ca : [this.options.ca];
      hosts = configureHosts(domain, {
        hostsDir: this.options.hostsDir,
        plainHttp: this.options.plainHttp,
        tls: { ca, skipVerify: this.options.skipVerify },
      });
      this.hostsByDomain.set(domain, hosts);
      hosts.catch(() => this.hostsByDomain.delete(domain));
    }
    return hosts;
  }

  private async hostsFor(ref: ImageReference, capability: HostCapability): Promise<RegistryHost[]> {
    const hosts = hostsWith(await this.hosts(ref.domain), capability);
    if (hosts.length === 0) {
      throw new FailedPreconditionError(`no host configured for ${ref.domain} has the "${capability}" capability`);
    }
    return hosts;
  }

  /**
   * Resolves a reference to the descriptor of its manifest or index: HEAD on
   * `/manifests/<tag|digest>`, falling back to GET when the registry does not
   * answer HEAD with a digest and size.
   */
  async resolve(reference: string, options: { signal?: AbortSignal } = {}): Promise<Resolved> {
    const ref = parseReference(reference);
    const hosts = await this.hostsFor(ref, 'resolve');
    const descriptor = await this.tryHosts(hosts, (host) => this.resolveOn(host, ref, options.signal));
    return { name: formatReference(ref), descriptor };
  }

  /** Tries each host in turn; a 404 or a failing mirror moves on to the next. */
  private async tryHosts<T>(hosts: RegistryHost[], attempt: (host: RegistryHost) => Promise<T>): Promise<T> {
    let firstError: unknown;
    let notFoundError: unknown;
    for (const host of hosts) {
      try {
        return await attempt(host);
      } catch (err) {
        const kind = errorKind(err);
        if (kind === 'canceled' || kind === 'data-loss' || kind === 'resource-exhausted' || kind === 'not-implemented') {
          throw err;
        }
        if (isNotFound(err)) notFoundError ??= err;
        else firstError ??= err;
        if (hosts.length > 1) {
          this.options.logger?.debug({ host: host.origin, err: (err as Error).message }, 'registry host failed, trying next');
        }
      }
    }
    throw firstError ?? notFoundError;
  }

  private async resolveOn(host: RegistryHost, ref: ImageReference, signal: AbortSignal | undefined): Promise<Descriptor> {
    const what = `manifest ${manifestLocator(ref)} of ${repositoryName(ref)}`;
    const base: Omit<SendOptions, 'method'> = {
      host,
      path: `/${ref.path}/manifests/${manifestLocator(ref)}`,
      headers: { accept: manifestAcceptTypes.join(', ') },
      scopes: [repositoryScope(ref.path, 'pull')],
      signal,
      what,
    };
    const head = await this.transport.send({ ...base, method: 'HEAD' });
    await head.dump();
    if (head.status === 404) throw notFound(`${display(ref)}`, '');
    if (head.status === 200) {
      const mediaType = baseMediaType(responseHeader(head.headers, 'content-type'));
      const digest = responseHeader(head.headers, 'docker-content-digest') ?? ref.digest;
      const length = Number(responseHeader(head.headers, 'content-length') ?? NaN);
      if (Number.isFinite(length) && length > this.maxManifestSize) {
        throw tooLarge(`${what} (${digest ?? 'unknown digest'}) at ${host.origin}`, length, this.maxManifestSize);
      }
      if (mediaType && !isJsonish(mediaType)) this.checkManifestType(mediaType, ref);
      // A registry naming another digest than the one asked for is not trusted: the GET below checks.
      const consistent = !ref.digest || digest === ref.digest;
      if (digest && consistent && Number.isFinite(length) && length > 0 && manifestAcceptTypes.includes(mediaType)) {
        return { mediaType, digest: validateDigest(digest, `digest from ${host.origin}`), size: length };
      }
    } else if (head.status !== 405 && head.status !== 400 && head.status !== 501) {
      throw unexpectedStatus(head.status, what, host, '');
    }

    // HEAD was not good enough: read the manifest itself.
    const res = await this.transport.send({ ...base, method: 'GET' });
    if (res.status === 404) throw notFound(display(ref), await res.text().catch(() => ''));
    if (res.status !== 200) throw unexpectedStatus(res.status, what, host, await res.text().catch(() => ''));
    const bytes = await readCapped(res, this.maxManifestSize, `${what} at ${host.origin}`);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (ref.digest && digest !== ref.digest) {
      throw new DataLossError(`${what} from ${host.origin} has digest ${digest}, not the ${ref.digest} asked for`);
    }
    let mediaType = baseMediaType(responseHeader(res.headers, 'content-type'));
    if (!mediaType || isJsonish(mediaType)) mediaType = detectManifestType(bytes) ?? mediaType;
    this.checkManifestType(mediaType, ref);
    return { mediaType, digest, size: bytes.length };
  }

  private checkManifestType(mediaType: string, ref: ImageReference): void {
    if (manifestAcceptTypes.includes(mediaType)) return;
    const hint = mediaType.includes('manifest.v1+')
      ? ' (Docker schema 1 manifests are deprecated and not supported)'
      : '';
    throw new NotImplementedError(
      `${display(ref)}: unsupported manifest media type "${mediaType || '(none)'}"${hint}; ` +
        'berth reads OCI image indexes and manifests and Docker schema 2 manifest lists and manifests',
    );
  }

  /** A Fetcher for the repository of `reference` (tag and digest are ignored). */
  fetcher(reference: string): Fetcher {
    const ref = parseReference(reference);
    return { fetch: (descriptor, options) => this.fetch(ref, descriptor, options ?? {}) };
  }

  private async fetch(ref: ImageReference, desc: Descriptor, options: FetchOptions): Promise<FetchedContent> {
    validateDigest(desc.digest, 'descriptor digest');
    const isManifest = isManifestOrIndexType(desc.mediaType);
    const kind = isManifest ? (isIndexType(desc.mediaType) ? 'index' : 'manifest') : 'blob';
    const what = `${kind} ${desc.digest}`;
    if (isManifest && desc.size > this.maxManifestSize) throw tooLarge(what, desc.size, this.maxManifestSize);
    const offset = isManifest ? 0 : Math.max(0, options.offset ?? 0);
    if (offset > 0 && desc.size > 0 && offset >= desc.size) {
      throw new InvalidArgumentError(`${what}: offset ${offset} is not before the end (${desc.size} bytes)`);
    }
    const hosts = await this.hostsFor(ref, 'pull');
    return this.tryHosts(hosts, async (host) => {
      const headers: Record<string, string> = {};
      if (isManifest) headers.accept = [desc.mediaType, ...manifestAcceptTypes.filter((t) => t !== desc.mediaType)].join(', ');
      if (offset > 0) headers.range = `bytes=${offset}-`;
      const res = await this.transport.send({
        host,
        method: 'GET',
        path: `/${ref.path}/${isManifest ? 'manifests' : 'blobs'}/${desc.digest}`,
        headers,
        scopes: [repositoryScope(ref.path, 'pull')],
        signal: options.signal,
        what,
        onBytes: options.onBytes,
      });
      if (res.status === 404) throw notFound(`${what} in ${repositoryName(ref)} at ${host.origin}`, await res.text().catch(() => ''));
      if (res.status === 416) {
        await res.dump();
        throw new UnavailableError(`${what}: ${host.origin} cannot serve from byte ${offset} (HTTP 416)`);
      }
      if (res.status !== 200 && res.status !== 206) {
        throw unexpectedStatus(res.status, what, host, await res.text().catch(() => ''));
      }
      let start = 0;
      if (res.status === 206) {
        const range = /^bytes (\d+)-(\d+)?/.exec(responseHeader(res.headers, 'content-range') ?? '');
        start = range ? Number(range[1]) : offset;
        if (start !== offset) {
          await res.dump();
          throw new UnavailableError(`${what}: asked ${host.origin} for bytes from ${offset}, got a range from ${start}`);
        }
      }
      if (isManifest) {
        const length = Number(responseHeader(res.headers, 'content-length') ?? NaN);
        if (Number.isFinite(length) && length > this.maxManifestSize) {
          await res.dump();
          throw tooLarge(`${what} at ${host.origin}`, length, this.maxManifestSize);
        }
        return { body: capped(res.body, this.maxManifestSize, what), offset: 0 };
      }
      return { body: res.body, offset: start };
    });
  }

  /** A Pusher for the repository of `reference`. */
  pusher(reference: string): Pusher {
    const ref = parseReference(reference);
    return { push: (descriptor, content, options) => this.push(ref, descriptor, content, options ?? {}) };
  }

  private async push(ref: ImageReference, desc: Descriptor, content: ContentSource, options: PushOptions): Promise<PushStatus> {
    validateDigest(desc.digest, 'descriptor digest');
    // Pushes go to the first host that may push: mirrors are for reading.
    const [host] = await this.hostsFor(ref, 'push');
    const scopes = [repositoryScope(ref.path, 'pull,push')];
    const common = { host, scopes, signal: options.signal };
    if (isManifestOrIndexType(desc.mediaType)) {
      const locator = options.tag ?? desc.digest;
      const what = `manifest ${locator} (${desc.digest}) of ${repositoryName(ref)}`;
      const head = await this.transport.send({
        ...common,
        method: 'HEAD',
        path: `/${ref.path}/manifests/${locator}`,
        headers: { accept: [desc.mediaType, ...manifestAcceptTypes].join(', ') },
        what,
      });
      await head.dump();
      if (head.status === 200 && responseHeader(head.headers, 'docker-content-digest') === desc.digest) return 'exists';
      const bytes = await readAll(await content());
      if (bytes.length > this.maxManifestSize) throw tooLarge(what, bytes.length, this.maxManifestSize);
      const res = await this.transport.send({
        ...common,
        method: 'PUT',
        path: `/${ref.path}/manifests/${locator}`,
        headers: { 'content-type': desc.mediaType, 'content-length': String(bytes.length) },
        body: () => bytes,
        what,
        onBytes: options.onBytes,
      });
      const text = await res.text().catch(() => '');
      if (res.status !== 201 && res.status !== 200) throw pushFailed(res.status, what, host, text);
      options.onBytes?.(bytes.length);
      return 'pushed';
    }

    const what = `blob ${desc.digest}`;
    const head = await this.transport.send({ ...common, method: 'HEAD', path: `/${ref.path}/blobs/${desc.digest}`, what });
    await head.dump();
    if (head.status === 200) return 'exists';

    let location: string | undefined;
    for (const from of options.mountFrom ?? []) {
      if (from === ref.path) continue;
      const res = await this.transport.send({
        ...common,
        scopes: [...scopes, repositoryScope(from, 'pull')],
        method: 'POST',
        path: `/${ref.path}/blobs/uploads/`,
        query: { mount: desc.digest, from },
        headers: { 'content-length': '0' },
        what: `mount of ${what} from ${from}`,
      }).catch((err: unknown) => {
        // A mount is an optimisation: a refusal falls back to uploading.
        this.options.logger?.debug({ err: (err as Error).message }, 'cross-repository mount failed');
        return undefined;
      });
      if (!res) continue;
      await res.dump();
      if (res.status === 201) return 'mounted';
      if (res.status === 202 && res.headers.location) {
        location = new URL(responseHeader(res.headers, 'location')!, res.url).toString();
        break;
      }
    }
    if (!location) {
      const res = await this.transport.send({
        ...common,
        method: 'POST',
        path: `/${ref.path}/blobs/uploads/`,
        headers: { 'content-length': '0' },
        what: `upload of ${what}`,
      });
      const text = await res.text().catch(() => '');
      if (res.status !== 202 || !res.headers.location) throw pushFailed(res.status, `upload of ${what}`, host, text);
      location = new URL(responseHeader(res.headers, 'location')!, res.url).toString();
    }
    const putUrl = new URL(location);
    putUrl.searchParams.set('digest', desc.digest);
    const res = await this.transport.send({
      ...common,
      method: 'PUT',
      path: putUrl.toString(),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: content,
      what,
      onBytes: options.onBytes,
    });
    const text = await res.text().catch(() => '');
    if (res.status !== 201 && res.status !== 204) throw pushFailed(res.status, what, host, text);
    return 'pushed';
  }
}

function isJsonish(mediaType: string): boolean {
  return mediaType === 'application/json' || mediaType === 'text/plain' || mediaType === 'application/octet-stream';
}

/** The media type a manifest declares in its body, or infers from its shape. */
export function detectManifestType(bytes: Buffer): string | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown; config?: unknown; schemaVersion?: unknown };
    if (typeof doc.mediaType === 'string') return doc.mediaType;
    if (Array.isArray(doc.manifests)) return MediaTypes.ociIndex;
    if (doc.config !== undefined) return MediaTypes.ociManifest;
    if (doc.schemaVersion === 1) return 'application/vnd.docker.distribution.manifest.v1+json';
  } catch {
    // not JSON
  }
  return undefined;
}

function unexpectedStatus(status: number, what: string, host: RegistryHost, body: string): BerthError {
  const detail = body ? `: ${registryErrorText(body)}` : '';
  return new UnavailableError(`${what}: unexpected HTTP ${status} from ${host.origin}${detail}`);
}

function pushFailed(status: number, what: string, host: RegistryHost, body: string): BerthError {
  const detail = body ? `: ${registryErrorText(body)}` : '';
  const message = `push of ${what} to ${host.origin} failed with HTTP ${status}${detail}`;
  if (status === 404) return new NotFoundError(message);
  if (status >= 400 && status < 500) return new FailedPreconditionError(message);
  return new UnavailableError(message);
}

async function readAll(source: Readable | Buffer): Promise<Buffer> {
  if (Buffer.isBuffer(source)) return source;
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

async function readCapped(res: RegistryResponse, limit: number, what: string): Promise<Buffer> {
  const length = Number(responseHeader(res.headers, 'content-length') ?? NaN);
  if (Number.isFinite(length) && length > limit) {
    await res.dump();
    throw tooLarge(what, length, limit);
  }
  return readAll(capped(res.body, limit, what));
}

/** `body`, failing once it carries more than `limit` bytes: manifests are read into memory. */
function capped(body: Readable, limit: number, what: string): Readable {
  let seen = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      seen += chunk.length;
      if (seen > limit) {
        callback(
          new ResourceExhaustedError(`${what} is larger than the ${formatBytes(limit)} limit for manifests and indexes`),
        );
        return;
      }
      callback(null, chunk);
    },
  });
  // pipeline (unlike pipe) carries the source's errors, such as a progress deadline, to the reader.
  pipeline(body, cap, () => undefined);
  return cap;
}

