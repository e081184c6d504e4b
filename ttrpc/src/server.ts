import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import {
  AlreadyExistsError,
  CanceledError,
  DeadlineExceededError,
  FailedPreconditionError,
  GrpcCode,
  InvalidArgumentError,
  NotImplementedError,
  toGrpcStatus,
} from '@berth/core';
import { ttrpcEnvelope } from '@berth/proto';
import { socketPathOf } from './connection';
import {
  TtrpcCallContext,
  TtrpcMethodDefinition,
  TtrpcServiceDefinition,
  TtrpcServiceImpl,
  metadataFromWire,
} from './definition';
import { DecodedFrame, FrameDecoder, FrameType, encodeFrame, oversizedError } from './frame';

type Handler = (request: unknown, context: TtrpcCallContext) => Promise<unknown>;

interface RegisteredMethod {
  definition: TtrpcMethodDefinition;
  handler: Handler;
}

interface Status {
  code: number;
  message: string;
}

/** A ttrpc server on a unix socket: unary calls, any number of services. */
export class TtrpcServer {
  /** Service full name → method name (as on the wire, `Create`) → handler. */
  private readonly services = new Map<string, Map<string, RegisteredMethod>>();
  private readonly connections = new Set<net.Socket>();
  private server: net.Server | undefined;
  private socketPath: string | undefined;

  register<D extends TtrpcServiceDefinition>(definition: D, impl: TtrpcServiceImpl<D>): void {
    if (this.services.has(definition.fullName)) {
      throw new AlreadyExistsError(`ttrpc service ${definition.fullName} is already registered`);
    }
    const handlers = impl as unknown as Record<string, Handler>;
    const methods = new Map<string, RegisteredMethod>();
    for (const [key, method] of Object.entries(definition.methods)) {
      const handler = handlers[key];
      if (typeof handler !== 'function') {
        throw new InvalidArgumentError(`ttrpc service ${definition.fullName} has no handler for ${key}`);
      }
      methods.set(method.name, { definition: method, handler: handler.bind(impl) });
    }
    this.services.set(definition.fullName, methods);
  }

  /**
   * Listens on a unix socket (`/path` or `unix:///path`). A socket file left by a
   * dead server is removed; a live one is an AlreadyExistsError.
   */
  async listen(socketPath: string): Promise<void> {
    if (this.server) throw new FailedPreconditionError(`ttrpc server is already listening on ${this.socketPath}`);
    const path = socketPathOf(socketPath);
    await removeStaleSocket(path);
    const server = net.createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.socketPath = path;
  }

  /** Stops listening, closes every connection (their in-flight calls see an aborted signal), removes the socket. */
  async close(): Promise<void> {
    const server = this.server;
    const path = this.socketPath;
    this.server = undefined;
    this.socketPath = undefined;
    if (!server || !path) return;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.connections) socket.destroy();
    await stopped;
    await fs.rm(path, { force: true });
  }

  private serve(socket: net.Socket): void {
    this.connections.add(socket);
    const decoder = new FrameDecoder();
    const inFlight = new Set<AbortController>();
    let lastStreamId = 0;

    const respond = (streamId: number, response: ttrpcEnvelope.Response) => {
      if (socket.destroyed) return;
      const data = ttrpcEnvelope.Response.encode(response).finish();
      let frame: Buffer;
      try {
        frame = encodeFrame({ streamId, type: FrameType.Response, flags: 0 }, data);
      } catch (err) {
        frame = encodeFrame(
          { streamId, type: FrameType.Response, flags: 0 },
          ttrpcEnvelope.Response.encode(failure(statusOf(err))).finish(),
        );
      }
      socket.write(frame);
    };

    const onFrame = (decoded: DecodedFrame) => {
      const header = decoded.kind === 'frame' ? decoded.frame : decoded.header;
      // Data frames only exist for streaming calls, which this server does not offer.
      if (header.type !== FrameType.Request) return;
      if (header.streamId % 2 !== 1) {
        respond(header.streamId, invalid('stream id must be odd for client-initiated streams'));
        return;
      }
      if (header.streamId <= lastStreamId) {
        respond(header.streamId, invalid('stream id must increase and cannot be reused'));
        return;
      }
      lastStreamId = header.streamId;
      if (decoded.kind === 'oversized') {
        respond(header.streamId, failure(statusOf(oversizedError(decoded.length))));
        return;
      }
      const controller = new AbortController();
      inFlight.add(controller);
      void this.handle(decoded.frame.data, controller).then((response) => {
        inFlight.delete(controller);
        respond(header.streamId, response);
      });
    };

    socket.on('data', (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) onFrame(decoded);
    });
    socket.on('error', () => {}); // a peer vanishing is routine; 'close' follows
    socket.once('close', () => {
      this.connections.delete(socket);
      for (const controller of inFlight) controller.abort(new CanceledError('ttrpc connection closed'));
    });
  }

  /** Runs one request to completion; never throws, failures become a status. */
  private async handle(data: Buffer, controller: AbortController): Promise<ttrpcEnvelope.Response> {
    let request: ttrpcEnvelope.Request;
    try {
      request = ttrpcEnvelope.Request.decode(data);
    } catch (err) {
      return failure(statusOf(new InvalidArgumentError('malformed ttrpc request', { cause: err })));
    }
    const methods = this.services.get(request.service);
    if (!methods) return failure({ code: GrpcCode.UNIMPLEMENTED, message: `service ${request.service}` });
    const method = methods.get(request.method);
    if (!method) return failure({ code: GrpcCode.UNIMPLEMENTED, message: `method ${request.method}` });
    const { definition, handler } = method;
    if (definition.requestStream || definition.responseStream) {
      return failure(statusOf(new NotImplementedError(`streaming method ${request.method} is not supported`)));
    }

    const timeoutMs = request.timeoutNano > 0 ? request.timeoutNano / 1e6 : undefined;
    const timer = timeoutMs
      ? setTimeout(
          () => controller.abort(new DeadlineExceededError(`${request.service}/${request.method} deadline exceeded`)),
          timeoutMs,
        )
      : undefined;
    try {
      const message = definition.requestType.decode(request.payload);
      const result = await handler(message, {
        metadata: metadataFromWire(request.metadata),
        deadline: timeoutMs ? Date.now() + timeoutMs : undefined,
        signal: controller.signal,
      });
      const response = definition.responseType.fromPartial((result ?? {}) as never);
      const payload = definition.responseType.encode(response).finish();
      return { payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) };
    } catch (err) {
      return failure(statusOf(err));
    } finally {
      clearTimeout(timer);
    }
  }
}

function failure(status: Status): ttrpcEnvelope.Response {
  return { status: { ...status, details: [] }, payload: Buffer.alloc(0) };
}

function invalid(message: string): ttrpcEnvelope.Response {
  return failure({ code: GrpcCode.INVALID_ARGUMENT, message });
}

function statusOf(err: unknown): Status {
  const { code, details } = toGrpcStatus(err);
  return { code, message: details };
}

/** Removes a socket file nobody listens on; refuses to touch a live socket or a non-socket. */
async function removeStaleSocket(path: string): Promise<void> {
  const stat = await fs.lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!stat) return;
  if (!stat.isSocket()) throw new FailedPreconditionError(`cannot listen on ${path}: it exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new AlreadyExistsError(`cannot listen on ${path}: another server is listening there`);
  await fs.rm(path, { force: true });
}
