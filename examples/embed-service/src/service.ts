import { randomBytes } from 'crypto';
import * as http from 'http';
import { AddressInfo } from 'net';
import { Writable } from 'stream';
import { Berth, errorKind, InvalidArgumentError, type RegistryOptions, toGrpcCode } from '@berth/core';
import { createBerth, runContainer } from '@berth/builtins';

export interface EmbedServiceOptions {
  root: string;
  state: string;
  port?: number;
  host?: string;
  /** How `POST /run` pulls images it does not have yet (e.g. plainHttp for a local registry). */
  registry?: RegistryOptions;
  /** Namespace of everything the service does; `default` unless given. */
  namespace?: string;
}

/** What `POST /run` takes. */
export interface RunRequest {
  image: string;
  /** The command line; the image's own when absent. */
  args?: string[];
  env?: string[];
}

/** What `POST /run` answers. */
export interface RunResponse {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Output kept per stream; the rest is counted but dropped, so one noisy container cannot eat the service. */
const MAX_OUTPUT_BYTES = 1 << 20;

/** Keeps the first MAX_OUTPUT_BYTES written to it. */
class OutputBuffer extends Writable {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    const room = MAX_OUTPUT_BYTES - this.size;
    if (room > 0) {
      const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
      this.chunks.push(kept);
      this.size += kept.length;
    }
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function parseRunRequest(body: unknown): RunRequest {
  const input = (body ?? {}) as Record<string, unknown>;
  if (typeof input.image !== 'string' || input.image === '') {
    throw new InvalidArgumentError('POST /run needs "image": an image reference');
  }
  if (input.args !== undefined && !isStringArray(input.args)) throw new InvalidArgumentError('"args" must be an array of strings');
  if (input.env !== undefined && !isStringArray(input.env)) throw new InvalidArgumentError('"env" must be an array of K=V strings');
  return { image: input.image, args: input.args, env: input.env };
}

/** Runs one container to completion in-process and answers its output and exit code. */
async function runOnce(berth: Berth, request: RunRequest, registry: RegistryOptions | undefined): Promise<RunResponse> {
  const stdout = new OutputBuffer();
  const stderr = new OutputBuffer();
  const result = await runContainer(berth, {
    id: `embed-${randomBytes(6).toString('hex')}`,
    image: request.image,
    args: request.args,
    env: request.env,
    pull: { registry },
    stdout,
    stderr,
    rm: true,
  });
  return { exitCode: result.exitStatus ?? 0, stdout: stdout.text(), stderr: stderr.text() };
}

export interface RunningService {
  url: string;
  berth: Berth;
  close(): Promise<void>;
}

/** berth error kinds → HTTP statuses, so callers see NotFound as 404 and so on. */
function httpStatus(err: unknown): number {
  switch (errorKind(err)) {
    case 'invalid-argument':
      return 400;
    case 'not-found':
      return 404;
    case 'already-exists':
    case 'failed-precondition':
      return 409;
    default:
      return 500;
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
      if (body.length > 64 * 1024) reject(new Error('request body too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/**
 * A small service with berth inside: `GET /namespaces` lists namespaces,
 * `POST /namespaces` with `{"name": ..., "labels": {...}}` creates one, and
 * `POST /run` with `{"image": ..., "args": [...]}` runs a container (pulling
 * the image if needed) and answers `{"exitCode", "stdout", "stderr"}`.
 */
export async function startEmbedService(options: EmbedServiceOptions): Promise<RunningService> {
  const embedded = await createBerth({ root: options.root, state: options.state });
  const berth = options.namespace ? embedded.withNamespace(options.namespace) : embedded;
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body) + '\n');
    };
    const handle = async () => {
      if (req.url === '/namespaces' && req.method === 'GET') {
        return reply(200, { namespaces: await berth.namespaces.list() });
      }
      if (req.url === '/namespaces' && req.method === 'POST') {
        const input = JSON.parse((await readBody(req)) || '{}') as { name?: string; labels?: Record<string, string> };
        return reply(201, await berth.namespaces.create(input.name ?? '', input.labels ?? {}));
      }
      if (req.url === '/run' && req.method === 'POST') {
        const request = parseRunRequest(JSON.parse((await readBody(req)) || '{}'));
        return reply(200, await runOnce(berth, request, options.registry));
      }
      reply(404, { error: `no route for ${req.method} ${req.url}` });
    };
    handle().catch((err: unknown) =>
      reply(err instanceof SyntaxError ? 400 : httpStatus(err), {
        error: err instanceof Error ? err.message : String(err),
        code: toGrpcCode(err),
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}`,
    berth,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await embedded.close();
    },
  };
}
