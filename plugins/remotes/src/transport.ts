import { pipeline, Readable, Transform } from 'stream';
import * as tls from 'tls';
import { Agent, Dispatcher } from 'undici';
import {
  BerthError,
  CanceledError,
  DeadlineExceededError,
  errorKind,
  type Logger,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from '@berth/core';
import {
  type AuthChallenge,
  type Credentials,
  type CredentialsProvider,
  mergeScopes,
  parseWwwAuthenticate,
  redact,
} from './auth';
import type { HostTls, RegistryHost } from './hosts';

/** Knobs shared by every request a resolver makes. */
export interface TransportOptions {
  credentials: CredentialsProvider;
  /** Abort a request that makes no progress (no headers, no body bytes) for this long. */
  progressTimeoutMs: number;
  /** Extra attempts after a connection error, 5xx or 429. */
  retries: number;
  /** First backoff delay; doubled per attempt, with jitter. */
  retryDelayMs: number;
  userAgent: string;
  logger?: Logger;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A request body that can be produced again: auth challenges and retries resend it. */
export type BodySource = () => Promise<Readable | Buffer> | Readable | Buffer;

export interface SendOptions {
  host: RegistryHost;
  method: HttpMethod;
  /** Path under the host's API root (`/<repo>/manifests/latest`) or an absolute URL (upload locations). */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: BodySource;
  /** Token scopes this request needs. */
  scopes: readonly string[];
  signal?: AbortSignal;
  /** What is being transferred, for messages: `manifest sha256:...`, `blob sha256:...`. */
  what: string;
  /** Called with each chunk's size as body bytes flow (either direction). */
  onBytes?: (n: number) => void;
}

/** A response whose body, if read, is still guarded by the progress deadline. */
export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  url: URL;
  body: Readable;
  /** Reads the body as text (small bodies: errors, manifests under a cap). */
  text(): Promise<string>;
  /** Discards the body and releases the connection. */
  dump(): Promise<void>;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const retryableNetworkCodes = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

const tlsErrorCodes = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

function header(headers: RegistryResponse['headers'], name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
export { header as responseHeader };

/** `host[:port]` of an origin, the key credentials are looked up by. */
export function hostOf(origin: string): string {
  return new URL(origin).host;
}

function errnoCode(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let i = 0; cur && i < 8; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Formats the `errors` array of a distribution API error body, if there is one. */
export function registryErrorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
    if (Array.isArray(parsed.errors) && parsed.errors.length) {
      return parsed.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    }
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 200);
}

/** Resets on every sign of progress; fires `onStall` when there has been none for `timeoutMs`. */
class ProgressWatchdog {
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly timeoutMs: number,
    private readonly onStall: () => void,
  ) {
    this.touch();
  }
  touch(): void {
    if (this.timeoutMs <= 0) return;
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(this.onStall, this.timeoutMs);
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * HTTP to registries: one undici Agent per TLS setup, the distribution auth
 * dance (Basic, Bearer tokens cached per scope), retries with backoff,
 * redirects, and a progress deadline on every request.
 */
export class RegistryTransport {
  private readonly agents = new Map<string, Agent>();
  /** The challenge each origin answered with last: sent proactively afterwards. */
  private readonly challenges = new Map<string, AuthChallenge>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly tokenFetches = new Map<string, Promise<string>>();
  private closed = false;

  constructor(readonly options: TransportOptions) {}

  async close(): Promise<void> {
    this.closed = true;
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
  }

  private agentFor(hostTls: HostTls): Agent {
    const key = JSON.stringify([hostTls.ca ?? [], hostTls.clientCertificates ?? [], !!hostTls.skipVerify]);
    let agent = this.agents.get(key);
    if (!agent) {
      const client = hostTls.clientCertificates?.[0];
      agent = new Agent({
        connect: {
          // A custom CA adds to the system roots rather than replacing them, so
          // redirects to public storage still verify.
          ca: hostTls.ca?.length ? [...tls.rootCertificates, ...hostTls.ca] : undefined,
          rejectUnauthorized: !hostTls.skipVerify,
          cert: client?.cert,
          key: client?.key,
        },
        // Our own watchdog enforces the progress deadline with a clearer message.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.agents.set(key, agent);
    }
    return agent;
  }

  private async credentialsFor(origin: string): Promise<Credentials | undefined> {
    return this.options.credentials(hostOf(origin));
  }

  private backoff(attempt: number): number {
    const base = this.options.retryDelayMs * 2 ** attempt;
    return Math.min(base + Math.random() * base * 0.5, 10_000);
  }

  /**
   * Sends a request, handling auth challenges, redirects and retries. Statuses
   * other than 401, 5xx and 429 are returned for the caller to interpret;
   * a 401 that survives authentication becomes UnauthenticatedError or
   * PermissionDeniedError, 5xx/429 after the last retry UnavailableError.
   */
  async send(req: SendOptions): Promise<RegistryResponse> {
    if (this.closed) throw new UnavailableError('registry transport is closed');
    let url = this.urlFor(req);
    let sameOrigin = url.origin === new URL(req.host.origin).origin;
    let authRetried = false;
    let redirects = 0;
    for (let attempt = 0; ; ) {
      let res: RegistryResponse;
      try {
        const authorization = sameOrigin ? await this.authorization(req.host, req.scopes) : undefined;
        res = await this.once(req, url, authorization);
      } catch (err) {
        if (isRetryable(err) && attempt < this.options.retries && !req.signal?.aborted) {
          this.options.logger?.debug({ err: (err as Error).message, what: req.what, attempt }, 'retrying registry request');
          await sleep(this.backoff(attempt++), req.signal);
          continue;
        }
        // Retries are spent here; callers must not multiply them.
        if (err instanceof BerthError) (err as { retryable?: boolean }).retryable = false;
        throw err;
      }

      if (res.status === 401 && sameOrigin) {
        const bodyText = await res.text().catch(() => '');
        const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
        if (!authRetried) {
          authRetried = true;
          await this.acceptChallenge(req.host, challenges, req.scopes);
          continue;
        }
        throw await this.unauthorized(req, challenges, bodyText);
      }
      if (res.status === 403) {
        const bodyText = await res.text().catch(() => '');
        const creds = await this.credentialsFor(req.host.origin);
        throw new PermissionDeniedError(
          `${hostOf(req.host.origin)}: access denied to ${req.what} (HTTP 403${
            bodyText ? `: ${redact(registryErrorText(bodyText), creds)}` : ''
          })`,
        );
      }
      if (res.status >= 300 && res.status < 400 && res.headers.location && (req.method === 'GET' || req.method === 'HEAD')) {
        await res.dump();
        if (++redirects > 5) throw new UnavailableError(`too many redirects fetching ${req.what}`);
        const next = new URL(header(res.headers, 'location')!, url);
        // Credentials stay with the registry; storage backends get signed URLs instead.
        if (next.origin !== url.origin) sameOrigin = false;
        url = next;
        continue;
      }
      if ((res.status >= 500 || res.status === 429) && attempt < this.options.retries) {
        await res.dump();
        this.options.logger?.debug({ status: res.status, what: req.what, attempt }, 'retrying registry request');
        await sleep(this.backoff(attempt++), req.signal);
        continue;
      }
      if (res.status >= 500 || res.status === 429) {
        const bodyText = await res.text().catch(() => '');
        const detail = bodyText ? `: ${registryErrorText(bodyText)}` : '';
        const error = new UnavailableError(
          `${url.origin} answered HTTP ${res.status} for ${req.what} after ${attempt + 1} attempts${detail}`,
        );
        (error as { retryable?: boolean }).retryable = false;
        throw error;
      }
      return res;
    }
  }

  private urlFor(req: SendOptions): URL {
    // Upload locations are absolute and used as given, even on another origin.
    const absolute = /^https?:\/\//.test(req.path);
    const url = absolute ? new URL(req.path) : new URL(req.host.origin + req.host.path + req.path);
    for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.append(k, v);
    if (!absolute && isMirrorOf(hostOf(req.host.origin), req.host.upstream)) url.searchParams.set('ns', req.host.upstream);
    return url;
  }

  /** One HTTP exchange, its response headers and body under the progress deadline. */
  private async once(req: SendOptions, url: URL, authorization: string | undefined): Promise<RegistryResponse> {
    const controller = new AbortController();
    const onCallerAbort = () => controller.abort(new CanceledError(`${req.what}: canceled`));
    if (req.signal?.aborted) throw new CanceledError(`${req.what}: canceled`);
    req.signal?.addEventListener('abort', onCallerAbort, { once: true });
    const timeoutS = Math.round(this.options.progressTimeoutMs / 100) / 10;
    const watchdog = new ProgressWatchdog(this.options.progressTimeoutMs, () =>
      controller.abort(
        new DeadlineExceededError(`${req.what}: no progress for ${timeoutS}s from ${url.origin}, transfer aborted`),
      ),
    );
    const done = () => {
      watchdog.stop();
      req.signal?.removeEventListener('abort', onCallerAbort);
    };

    const headers: Record<string, string> = {
      'user-agent': this.options.userAgent,
      ...req.host.headers,
      ...(req.headers ?? {}),
    };
    if (authorization) headers.authorization = authorization;

    let body: Readable | Buffer | undefined;
    if (req.body) {
      const produced = await req.body();
      if (Buffer.isBuffer(produced)) {
        body = produced;
      } else {
        // Upload progress counts as progress too. A Transform, not a 'data'
        // listener, so nothing flows before undici reads.
        const counted = new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            watchdog.touch();
            req.onBytes?.(chunk.length);
            callback(null, chunk);
          },
        });
        pipeline(produced, counted, () => undefined);
        body = counted;
      }
    }

    let raw: Dispatcher.ResponseData;
    try {
      raw = await this.agentFor(req.host.tls).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: req.method,
        headers,
        body,
        signal: controller.signal,
      });
    } catch (err) {
      done();
      if (Buffer.isBuffer(body) === false && body) (body as Readable).destroy();
      throw this.translate(err, controller, req, url);
    }
    watchdog.touch();

    const translate = (err: unknown) => this.translate(err, controller, req, url);
    const source = raw.body;
    async function* guarded(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of source) {
          watchdog.touch();
          req.onBytes?.((chunk as Buffer).length);
          yield chunk as Buffer;
        }
      } catch (err) {
        throw translate(err);
      } finally {
        done();
        if (!source.destroyed) source.destroy();
      }
    }
    const guardedBody = Readable.from(guarded(), { objectMode: false });
    if (req.method === 'HEAD') done();
    return {
      status: raw.statusCode,
      headers: raw.headers,
      url,
      body: guardedBody,
      async text() {
        const chunks: Buffer[] = [];
        for await (const c of guardedBody) chunks.push(c as Buffer);
        return Buffer.concat(chunks).toString('utf8');
      },
      async dump() {
        guardedBody.destroy();
        done();
        await raw.body.dump().catch(() => undefined);
      },
    };
  }

  /** Maps undici and socket errors to berth kinds, preferring the reason we aborted with. */
  private translate(err: unknown, controller: AbortController, req: SendOptions, url: URL): Error {
    if (controller.signal.aborted && controller.signal.reason instanceof BerthError) return controller.signal.reason;
    if (err instanceof BerthError) return err;
    const code = errnoCode(err);
    const message = (err instanceof Error ? err.message : String(err)).replace(/^Error: /, '');
    if (code && tlsErrorCodes.has(code)) {
      const error = new UnavailableError(
        `TLS verification of ${url.origin} failed (${code}: ${message}); configure the registry's CA (ca option or hosts.toml "ca") or skip_verify`,
        { cause: err },
      );
      // Another attempt meets the same certificate.
      (error as { retryable?: boolean }).retryable = false;
      return error;
    }
    const error = new UnavailableError(`${req.what}: connection to ${url.origin} failed: ${code ?? message}`, {
      cause: err,
    });
    (error as { retryable?: boolean }).retryable = code === undefined || retryableNetworkCodes.has(code);
    return error;
  }

  // ---- auth ----

  private async authorization(host: RegistryHost, scopes: readonly string[]): Promise<string | undefined> {
    const challenge = this.challenges.get(host.origin);
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      const creds = await this.credentialsFor(host.origin);
      return creds ? basicHeader(creds) : undefined;
    }
    if (challenge.scheme === 'bearer') {
      const token = await this.bearerToken(host, challenge, scopes);
      return `Bearer ${token}`;
    }
    return undefined;
  }

  private async acceptChallenge(host: RegistryHost, challenges: AuthChallenge[], scopes: readonly string[]): Promise<void> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    const chosen = bearer ?? basic;
    if (!chosen) {
      const offered = challenges.map((c) => c.scheme).join(', ') || 'none';
      throw new UnauthenticatedError(
        `${hostOf(host.origin)} requires authentication with an unsupported scheme (offered: ${offered})`,
      );
    }
    if (chosen.scheme === 'basic' && !(await this.credentialsFor(host.origin))) {
      throw new UnauthenticatedError(
        `${hostOf(host.origin)} requires authentication (HTTP 401) and no credentials were given for it`,
      );
    }
    // A repeated challenge means the cached token no longer works (expired, or scope changed).
    if (chosen.scheme === 'bearer') {
      const merged = mergeScopes([...scopes, ...(chosen.params.scope ? [chosen.params.scope] : [])]);
      this.tokens.delete(tokenKey(chosen, merged));
    }
    this.challenges.set(host.origin, chosen);
  }

  private async unauthorized(req: SendOptions, challenges: AuthChallenge[], bodyText: string): Promise<BerthError> {
    const creds = await this.credentialsFor(req.host.origin);
    const host = hostOf(req.host.origin);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const detail = bodyText ? `: ${redact(registryErrorText(bodyText), creds)}` : '';
    if (bearer?.params.error === 'insufficient_scope') {
      return new PermissionDeniedError(
        `${host}: the token does not grant ${bearer.params.scope ?? req.scopes.join(' ')} for ${req.what}${detail}`,
      );
    }
    if (!creds) {
      return new UnauthenticatedError(`${host} requires authentication (HTTP 401) and no credentials were given for it${detail}`);
    }
    return new UnauthenticatedError(`${host} rejected the credentials (HTTP 401) for ${req.what}${detail}`);
  }

  private async bearerToken(host: RegistryHost, challenge: AuthChallenge, scopes: readonly string[]): Promise<string> {
    const merged = mergeScopes([...scopes, ...(challenge.params.scope ? [challenge.params.scope] : [])]);
    const key = tokenKey(challenge, merged);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.token;
    let pending = this.tokenFetches.get(key);
    if (!pending) {
      pending = this.fetchToken(host, challenge, merged).finally(() => this.tokenFetches.delete(key));
      this.tokenFetches.set(key, pending);
    }
    return pending;
  }

  private async fetchToken(host: RegistryHost, challenge: AuthChallenge, scopes: string[]): Promise<string> {
    const realm = challenge.params.realm;
    const registry = hostOf(host.origin);
    if (!realm) throw new UnauthenticatedError(`${registry} sent a Bearer challenge without a realm`);
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new UnauthenticatedError(`${registry} sent a Bearer challenge with an invalid realm`);
    }
    // Only the realm's origin and path go into messages: the query is the server's business.
    const realmName = realmUrl.origin + realmUrl.pathname;
    if (challenge.params.service) realmUrl.searchParams.set('service', challenge.params.service);
    for (const scope of scopes) realmUrl.searchParams.append('scope', scope);
    realmUrl.searchParams.set('client_id', 'berth');

    const creds = await this.credentialsFor(host.origin);
    const headers: Record<string, string> = { 'user-agent': this.options.userAgent, accept: 'application/json' };
    if (creds) headers.authorization = basicHeader(creds);

    let res: Dispatcher.ResponseData | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        res = await this.agentFor(host.tls).request({
          origin: realmUrl.origin,
          path: realmUrl.pathname + realmUrl.search,
          method: 'GET',
          headers,
          signal: AbortSignal.timeout(this.options.progressTimeoutMs || 60_000),
        });
      } catch (err) {
        if (attempt < this.options.retries && isRetryableCode(errnoCode(err))) {
          await sleep(this.backoff(attempt));
          continue;
        }
        const error = new UnavailableError(
          `token server ${realmName} for ${registry} unreachable: ${errnoCode(err) ?? 'error'}`,
          { cause: err },
        );
        (error as { retryable?: boolean }).retryable = false;
        throw error;
      }
      if (res.statusCode >= 500 && attempt < this.options.retries) {
        await res.body.dump();
        await sleep(this.backoff(attempt));
        continue;
      }
      break;
    }
    const text = await res.body.text();
    if (res.statusCode === 401) {
      throw creds
        ? new UnauthenticatedError(`token server ${realmName} rejected the credentials for ${registry} (HTTP 401)`)
        : new UnauthenticatedError(`token server ${realmName} requires credentials for ${registry} (HTTP 401)`);
    }
    if (res.statusCode === 403) {
      throw new PermissionDeniedError(`token server ${realmName} denied ${scopes.join(' ')} for ${registry} (HTTP 403)`);
    }
    if (res.statusCode !== 200) {
      throw new UnavailableError(
        `token server ${realmName} answered HTTP ${res.statusCode} for ${registry}: ${redact(registryErrorText(text), creds)}`,
      );
    }
    let parsed: { token?: string; access_token?: string; expires_in?: number };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new UnavailableError(`token server ${realmName} sent a response that is not JSON`);
    }
    const token = parsed.token ?? parsed.access_token;
    if (!token) throw new UnavailableError(`token server ${realmName} sent no token`);
    // Renew a little early; the spec's default lifetime is 60 s.
    const lifetimeS = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    this.tokens.set(tokenKey(challenge, scopes), { token, expiresAt: Date.now() + Math.max(lifetimeS - 5, 1) * 1000 });
    return token;
  }
}

/** containerd's isProxy: any other host than the registry's own (Docker Hub's API host counts as its own). */
function isMirrorOf(host: string, upstream: string): boolean {
  if (host === upstream) return false;
  return !(upstream === 'docker.io' && host === 'registry-1.docker.io');
}

function tokenKey(challenge: AuthChallenge, scopes: readonly string[]): string {
  return `${challenge.params.realm ?? ''}|${challenge.params.service ?? ''}|${scopes.join(' ')}`;
}

function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

function isRetryableCode(code: string | undefined): boolean {
  return code !== undefined && retryableNetworkCodes.has(code);
}

/** Whether an error is worth another attempt: lost connections, not bad data or refusals. */
export function isRetryable(err: unknown): boolean {
  const flagged = (err as { retryable?: unknown } | undefined)?.retryable;
  if (typeof flagged === 'boolean') return flagged;
  return errorKind(err) === 'unavailable';
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CanceledError('canceled'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CanceledError('canceled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** NotFound for a 404, with the registry's own error code when it sent one. */
export function notFound(what: string, bodyText: string): NotFoundError {
  const detail = bodyText ? ` (${registryErrorText(bodyText)})` : '';
  return new NotFoundError(`${what}: not found${detail}`);
}

export function tooLarge(what: string, size: number, limit: number): ResourceExhaustedError {
  return new ResourceExhaustedError(
    `${what} is ${formatBytes(size)}, over the ${formatBytes(limit)} limit for manifests and indexes`,
  );
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}
