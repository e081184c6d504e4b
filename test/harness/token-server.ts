import { randomBytes, sign } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';

/** One request the token server answered. Never holds the password. */
export interface TokenRequest {
  /** User name from Basic auth, or undefined when anonymous. */
  user?: string;
  scopes: string[];
  service?: string;
  status: number;
}

export interface TokenServerOptions {
  /** The registry's `auth.token.service`. */
  service: string;
  /** The registry's `auth.token.issuer`. */
  issuer: string;
  /** EC P-256 key (PEM path) that signs tokens; its certificate is the registry's rootcertbundle. */
  keyPath: string;
  certPath: string;
  /** user → password. */
  users: Record<string, string>;
  /** Grant `pull` to anonymous requests (default false: anonymous gets 401). */
  anonymousPull?: boolean;
  /** Token lifetime in seconds (default 300). */
  expiresIn?: number;
}

export interface TokenServerHandle {
  /** The realm to configure: http://127.0.0.1:<port>/token */
  realm: string;
  requests: TokenRequest[];
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A minimal Docker token server (distribution's token auth spec): checks Basic
 * credentials, grants what each `scope` asks, and returns an ES256 JWT whose
 * `x5c` header carries the signing certificate, which the registry verifies
 * against its rootcertbundle.
 */
export async function startTokenServer(options: TokenServerOptions): Promise<TokenServerHandle> {
  const key = fs.readFileSync(options.keyPath);
  const certPem = fs.readFileSync(options.certPath, 'utf8');
  const certDerB64 = certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const requests: TokenRequest[] = [];

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const scopes = url.searchParams.getAll('scope');
    const service = url.searchParams.get('service') ?? undefined;
    let user: string | undefined;
    let authenticated = false;
    const authorization = req.headers.authorization;
    if (authorization?.startsWith('Basic ')) {
      const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      user = decoded.slice(0, colon);
      authenticated = options.users[user] !== undefined && options.users[user] === decoded.slice(colon + 1);
    }
    const reply = (status: number, body: unknown) => {
      requests.push({ user, scopes, service, status });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token') return reply(404, { errors: [{ code: 'NOT_FOUND' }] });
    if (authorization && !authenticated) return reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid credentials' }] });
    if (!authorization && !options.anonymousPull) {
      return reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
    }
    const access = scopes.flatMap((scope) => {
      const [type, ...rest] = scope.split(':');
      const actions = rest.pop() ?? '';
      const name = rest.join(':');
      const granted = actions.split(',').filter((a) => a && (authenticated || a === 'pull'));
      return type && name ? [{ type, name, actions: granted }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = options.expiresIn ?? 300;
    const header = { typ: 'JWT', alg: 'ES256', x5c: [certDerB64] };
    const claims = {
      iss: options.issuer,
      sub: user ?? '',
      aud: options.service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
    const token = `${signingInput}.${b64url(signature)}`;
    reply(200, { token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
