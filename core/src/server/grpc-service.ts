import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, toGrpcStatus } from '../errdefs';

/**
 * What a plugin of type `io.berth.grpc.v1` returns: it adds its service(s) to
 * the daemon's gRPC server. Third-party plugins can serve their own APIs this way.
 */
export interface GrpcService {
  register(server: grpc.Server): void;
}

/** gRPC metadata keys carrying the namespace and the lease, as containerd reads them. */
export const NAMESPACE_METADATA_KEY = 'containerd-namespace';
export const LEASE_METADATA_KEY = 'containerd-lease';

/** The lease a call's new resources join, if the caller named one. */
export function leaseOf(call: { metadata: grpc.Metadata }): string | undefined {
  const value = call.metadata.get(LEASE_METADATA_KEY)[0];
  const lease = typeof value === 'string' ? value : value?.toString('utf8');
  return lease || undefined;
}

/** The namespace a call acts in; InvalidArgument when the caller sent none. */
export function namespaceOf(call: { metadata: grpc.Metadata }): string {
  const value = call.metadata.get(NAMESPACE_METADATA_KEY)[0];
  const ns = typeof value === 'string' ? value : value?.toString('utf8');
  if (!ns) throw new InvalidArgumentError('namespace is required: set the containerd-namespace header');
  return ns;
}

/** The namespace a call names, if any. */
export function optionalNamespaceOf(call: { metadata: grpc.Metadata }): string | undefined {
  const value = call.metadata.get(NAMESPACE_METADATA_KEY)[0];
  const ns = typeof value === 'string' ? value : value?.toString('utf8');
  return ns || undefined;
}

/**
 * Adapts an async handler to grpc-js's unary callback style; thrown berth
 * errors become gRPC statuses here and nowhere else.
 */
export function unary<Req, Res>(
  handler: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    handler(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toGrpcStatus(err) as unknown as Partial<grpc.StatusObject>),
    );
  };
}

/** Adapts an async server-streaming handler; errors end the stream with a status. */
export function serverStream<Req, Res>(
  handler: (request: Req, call: grpc.ServerWritableStream<Req, Res>, signal: AbortSignal) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort());
    call.on('close', () => abort.abort());
    handler(call.request, call, abort.signal).then(
      () => call.end(),
      (err: unknown) => {
        if (abort.signal.aborted) return;
        call.emit('error', toGrpcStatus(err));
      },
    );
  };
}
