import * as net from 'node:net';
import {
  BerthError,
  CanceledError,
  DeadlineExceededError,
  NotImplementedError,
  UnavailableError,
} from '@berth/core';
import { ttrpcEnvelope } from '@berth/proto';
import {
  CallOptions,
  TtrpcClientOf,
  TtrpcMetadata,
  TtrpcServiceDefinition,
  errorFromStatus,
  metadataToWire,
} from './definition';
import { DecodedFrame, FrameDecoder, FrameType, encodeFrame, oversizedError } from './frame';

/** Strips the `unix://` scheme containerd and shims print in front of socket paths. */
export function socketPathOf(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

interface PendingCall {
  resolve(payload: Buffer): void;
  reject(err: BerthError): void;
}

/**
 * A client connection to a ttrpc server. Calls are multiplexed on one socket, each
 * on its own odd stream id, and complete in whatever order the server answers.
 */
export class TtrpcConnection {
  /** Resolves when the socket closes, for whatever reason. */
  readonly closed: Promise<void>;

  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, PendingCall>();
  private nextStreamId = 1;
  private isClosed = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly address: string,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      for (const decoded of this.decoder.push(chunk)) this.onFrame(decoded);
    });
    // 'close' always follows 'error'; pending calls are failed there.
    socket.on('error', () => {});
    socket.once('close', () => this.onClose());
  }

  /** Connects to a unix socket (`/path` or `unix:///path`); UnavailableError when nothing answers. */
  static connect(socketPath: string, options: { timeoutMs?: number } = {}): Promise<TtrpcConnection> {
    const path = socketPathOf(socketPath);
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path });
      let settled = false;
      const fail = (reason: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(new UnavailableError(`cannot connect to ttrpc server at ${path}: ${reason}`));
      };
      // Timers run before I/O callbacks: after a busy event loop the deadline would
      // win over a connect that completed long ago. setImmediate lets it report first.
      const timer = setTimeout(() => setImmediate(() => fail(`no connection after ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', (err) => fail(err.message));
      socket.once('connect', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new TtrpcConnection(socket, path));
      });
    });
  }

  /** A typed client for `definition`; `defaults.metadata` goes with every call. */
  client<D extends TtrpcServiceDefinition>(
    definition: D,
    defaults: { metadata?: TtrpcMetadata } = {},
  ): TtrpcClientOf<D> {
    const client: Record<string, (request: unknown, options?: CallOptions) => Promise<unknown>> = {};
    for (const [key, method] of Object.entries(definition.methods)) {
      client[key] = async (request, options = {}) => {
        if (method.requestStream || method.responseStream) {
          throw new NotImplementedError(
            `${definition.fullName}/${method.name} is a streaming method; this ttrpc client is unary-only`,
          );
        }
        const message = method.requestType.fromPartial(request as never);
        const encoded = method.requestType.encode(message).finish();
        const payload = await this.call(definition.fullName, method.name, encoded, options, defaults.metadata);
        return method.responseType.decode(payload);
      };
    }
    return client as TtrpcClientOf<D>;
  }

  /**
   * One unary call with an already encoded request; resolves with the response
   * payload bytes or rejects with core's error for the returned status.
   * `options.metadata` overrides `defaultMetadata` key by key.
   */
  call(
    service: string,
    method: string,
    payload: Uint8Array,
    options: CallOptions = {},
    defaultMetadata?: TtrpcMetadata,
  ): Promise<Buffer> {
    const what = `ttrpc call ${service}/${method}`;
    if (this.isClosed) return Promise.reject(this.closedError());
    if (options.signal?.aborted) return Promise.reject(new CanceledError(`${what} was canceled`));

    const timeoutMs = options.timeoutMs && options.timeoutMs > 0 ? options.timeoutMs : undefined;
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    const request = ttrpcEnvelope.Request.encode({
      service,
      method,
      payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      timeoutNano: timeoutMs ? Math.round(timeoutMs * 1e6) : 0,
      metadata: metadataToWire(defaultMetadata, options.metadata),
    }).finish();
    let frame: Buffer;
    try {
      frame = encodeFrame({ streamId, type: FrameType.Request, flags: 0 }, request);
    } catch (err) {
      return Promise.reject(err);
    }

    return new Promise<Buffer>((resolve, reject) => {
      const onAbort = () => settle(new CanceledError(`${what} was canceled`));
      const timer = timeoutMs
        ? setTimeout(() => settle(new DeadlineExceededError(`${what} timed out after ${timeoutMs} ms`)), timeoutMs)
        : undefined;
      const settle = (result: Buffer | BerthError) => {
        this.pending.delete(streamId);
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (result instanceof BerthError) reject(result);
        else resolve(result);
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(streamId, { resolve: settle, reject: settle });
      this.socket.write(frame);
    });
  }

  /** Closes the socket; pending calls fail with UnavailableError. */
  close(): void {
    this.socket.destroy();
  }

  private onFrame(decoded: DecodedFrame): void {
    if (decoded.kind === 'oversized') {
      this.pending.get(decoded.header.streamId)?.reject(oversizedError(decoded.length));
      return;
    }
    const { frame } = decoded;
    // Data frames belong to streaming calls, which this client never starts.
    if (frame.type !== FrameType.Response) return;
    const call = this.pending.get(frame.streamId);
    if (!call) return; // timed out or canceled already
    let response: ttrpcEnvelope.Response;
    try {
      response = ttrpcEnvelope.Response.decode(frame.data);
    } catch (err) {
      call.reject(new UnavailableError(`malformed ttrpc response from ${this.address}`, { cause: err }));
      return;
    }
    if (response.status && response.status.code !== 0) {
      call.reject(errorFromStatus(response.status.code, response.status.message));
    } else {
      call.resolve(response.payload);
    }
  }

  private onClose(): void {
    this.isClosed = true;
    for (const call of [...this.pending.values()]) call.reject(this.closedError());
  }

  private closedError(): UnavailableError {
    return new UnavailableError(`ttrpc connection closed (${this.address})`);
  }
}
