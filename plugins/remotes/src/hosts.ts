import * as fs from 'fs';
import * as path from 'path';
import { parse as parseToml } from 'smol-toml';
import { InvalidArgumentError } from '@berth/core';
import { DOCKER_HUB_DOMAIN } from './reference';

/** What a host may be used for, as in containerd's hosts.toml. */
export type HostCapability = 'pull' | 'resolve' | 'push';

/** TLS settings for one host. Certificates and keys are PEM text, not paths. */
export interface HostTls {
  /** Extra CAs trusted on top of the system roots. */
  ca?: string[];
  /** Client certificates for mutual TLS. */
  clientCertificates?: { cert: string; key: string }[];
  /** Accept any server certificate (tests, private networks). */
  skipVerify?: boolean;
}

/** One endpoint that serves a registry: the server itself or a mirror of it. */
export interface RegistryHost {
  /** `scheme://host[:port]`; the scheme decides between HTTPS and plain HTTP. */
  origin: string;
  /** API root path, `/v2` unless hosts.toml sets `override_path`. */
  path: string;
  capabilities: readonly HostCapability[];
  tls: HostTls;
  /** Headers sent with every request to this host. */
  headers: Record<string, string>;
  /**
   * The registry the image reference names; a host that is not that registry
   * gets `?ns=<upstream>` on its requests, as containerd sends to mirrors.
   */
  upstream: string;
}

export interface HostsOptions {
  /** Directory of `<host>/hosts.toml` files (containerd's `config_path`, certs.d). */
  hostsDir?: string;
  /** Talk plain HTTP to the registry's own server (not to hosts.toml entries, whose URLs say). */
  plainHttp?: boolean;
  /** Applied to every host, under what hosts.toml adds. */
  tls?: HostTls;
}

const allCapabilities: readonly HostCapability[] = ['pull', 'resolve', 'push'];

/** Where the registry's own API is when nothing configures it (Docker Hub's differs from its name). */
export function defaultServerOrigin(domain: string, plainHttp = false): string {
  if (domain === DOCKER_HUB_DOMAIN) return 'https://registry-1.docker.io';
  return `${plainHttp ? 'http' : 'https'}://${domain}`;
}

/**
 * Every host to try for `domain`, in order: the mirrors of its hosts.toml as
 * listed there, then the server. Without a hosts.toml, the server alone.
 */
export async function configureHosts(domain: string, options: HostsOptions = {}): Promise<RegistryHost[]> {
  const baseTls = options.tls ?? {};
  const server: RegistryHost = {
    origin: defaultServerOrigin(domain, options.plainHttp),
    path: '/v2',
    capabilities: allCapabilities,
    tls: { ...baseTls },
    headers: {},
    upstream: domain,
  };
  if (!options.hostsDir) return [server];
  const file = await findHostsFile(options.hostsDir, domain);
  if (!file) return [withDockerCertsDir(server, path.join(options.hostsDir, domain))];
  const text = await fs.promises.readFile(file, 'utf8');
  return parseHostsToml(text, { domain, dir: path.dirname(file), file, defaultServer: server });
}

async function findHostsFile(hostsDir: string, domain: string): Promise<string | undefined> {
  // containerd looks in `<dir>/<host[:port]>` then in `<dir>/_default`.
  for (const name of [domain, '_default']) {
    const candidate = path.join(hostsDir, name, 'hosts.toml');
    try {
      await fs.promises.access(candidate, fs.constants.R_OK);
      return candidate;
    } catch {
      // try the next
    }
  }
  return undefined;
}

/**
 * Without hosts.toml, containerd reads a host directory the way Docker's
 * certs.d works: `*.crt` are CAs, `<name>.cert` with `<name>.key` a client pair.
 */
function withDockerCertsDir(server: RegistryHost, dir: string): RegistryHost {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    return server;
  }
  const tls: HostTls = { ...server.tls, ca: [...(server.tls.ca ?? [])] };
  for (const name of names) {
    if (name.endsWith('.crt')) tls.ca!.push(fs.readFileSync(path.join(dir, name), 'utf8'));
    if (name.endsWith('.cert')) {
      const key = path.join(dir, `${name.slice(0, -'.cert'.length)}.key`);
      if (!fs.existsSync(key)) throw new InvalidArgumentError(`${path.join(dir, name)} has no matching .key file`);
      tls.clientCertificates = [
        ...(tls.clientCertificates ?? []),
        { cert: fs.readFileSync(path.join(dir, name), 'utf8'), key: fs.readFileSync(key, 'utf8') },
      ];
    }
  }
  return { ...server, tls };
}

interface ParseContext {
  domain: string;
  /** hosts.toml's directory: relative cert paths are resolved against it. */
  dir: string;
  file: string;
  defaultServer: RegistryHost;
}

type TomlTable = Record<string, unknown>;

function isTable(v: unknown): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Parses hosts.toml text into the hosts to try, mirrors first. Exported for tests. */
export function parseHostsToml(text: string, ctx: ParseContext): RegistryHost[] {
  let doc: TomlTable;
  try {
    doc = parseToml(text) as TomlTable;
  } catch (err) {
    throw new InvalidArgumentError(`${ctx.file}: invalid TOML: ${(err as Error).message}`);
  }
  const hosts: RegistryHost[] = [];
  const hostTables = doc.host;
  if (hostTables !== undefined) {
    if (!isTable(hostTables)) throw new InvalidArgumentError(`${ctx.file}: "host" must be a table of URL → settings`);
    for (const [url, settings] of Object.entries(hostTables)) {
      if (!isTable(settings)) throw new InvalidArgumentError(`${ctx.file}: [host."${url}"] must be a table`);
      hosts.push(hostFromTable(url, settings, ctx, ctx.defaultServer.tls));
    }
  }
  let server: RegistryHost;
  if (typeof doc.server === 'string') {
    server = hostFromTable(doc.server, doc, ctx, ctx.defaultServer.tls);
  } else if (doc.server !== undefined) {
    throw new InvalidArgumentError(`${ctx.file}: "server" must be a URL string`);
  } else {
    // Top-level settings still apply to the default server.
    server = hostFromTable(ctx.defaultServer.origin, doc, ctx, ctx.defaultServer.tls);
  }
  hosts.push(server);
  return hosts;
}

function hostFromTable(url: string, t: TomlTable, ctx: ParseContext, baseTls: HostTls): RegistryHost {
  const where = `${ctx.file}: host "${url}"`;
  const withScheme = url.includes('://') ? url : `https://${url}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`${where} is not a valid URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InvalidArgumentError(`${where}: scheme must be http or https`);
  }
  if (parsed.username || parsed.password) {
    throw new InvalidArgumentError(`${ctx.file}: host URLs must not carry credentials`);
  }
  let apiPath = parsed.pathname.replace(/\/+$/, '');
  if (t.override_path !== true && !apiPath.endsWith('/v2')) apiPath = `${apiPath}/v2`;

  const capabilities = t.capabilities === undefined ? allCapabilities : stringList(t.capabilities, `${where} capabilities`);
  for (const c of capabilities) {
    if (!allCapabilities.includes(c as HostCapability)) {
      throw new InvalidArgumentError(`${where}: unknown capability "${c}" (pull, resolve, push)`);
    }
  }

  const tls: HostTls = { ...baseTls, ca: [...(baseTls.ca ?? [])] };
  if (t.ca !== undefined) {
    for (const file of stringList(t.ca, `${where} ca`)) tls.ca!.push(readPem(file, ctx, where));
  }
  if (t.client !== undefined) tls.clientCertificates = [...(baseTls.clientCertificates ?? []), ...clientPairs(t.client, ctx, where)];
  if (t.skip_verify !== undefined) {
    if (typeof t.skip_verify !== 'boolean') throw new InvalidArgumentError(`${where}: skip_verify must be true or false`);
    tls.skipVerify = t.skip_verify;
  }

  const headers: Record<string, string> = {};
  if (t.header !== undefined) {
    if (!isTable(t.header)) throw new InvalidArgumentError(`${where}: header must be a table`);
    for (const [k, v] of Object.entries(t.header)) {
      // containerd allows a list of values per header.
      headers[k] = Array.isArray(v) ? v.map(String).join(', ') : String(v);
    }
  }
  return {
    origin: `${parsed.protocol}//${parsed.host}`,
    path: apiPath,
    capabilities: capabilities as HostCapability[],
    tls,
    headers,
    upstream: ctx.domain,
  };
}

function stringList(v: unknown, what: string): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  throw new InvalidArgumentError(`${what} must be a string or a list of strings`);
}

function readPem(file: string, ctx: ParseContext, where: string): string {
  const full = path.isAbsolute(file) ? file : path.join(ctx.dir, file);
  try {
    return fs.readFileSync(full, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`${where}: cannot read ${full}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

/** `client` is a cert path (key inside), a [cert, key] pair, or a list of either. */
function clientPairs(v: unknown, ctx: ParseContext, where: string): { cert: string; key: string }[] {
  const one = (x: unknown): { cert: string; key: string } => {
    if (typeof x === 'string') {
      const pem = readPem(x, ctx, where);
      return { cert: pem, key: pem };
    }
    if (Array.isArray(x) && x.length === 2 && x.every((s) => typeof s === 'string')) {
      return { cert: readPem(x[0] as string, ctx, where), key: readPem(x[1] as string, ctx, where) };
    }
    throw new InvalidArgumentError(`${where}: client must be a path, a [cert, key] pair, or a list of those`);
  };
  if (typeof v === 'string') return [one(v)];
  if (Array.isArray(v) && v.length === 2 && v.every((s) => typeof s === 'string')) {
    // Ambiguous in containerd too: a pair of strings is one [cert, key].
    return [one(v)];
  }
  if (Array.isArray(v)) return v.map(one);
  return [one(v)];
}

/** The hosts among `hosts` that may do `capability`, in order. */
export function hostsWith(hosts: readonly RegistryHost[], capability: HostCapability): RegistryHost[] {
  return hosts.filter((h) => h.capabilities.includes(capability));
}
