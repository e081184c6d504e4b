import {
  AbortedError,
  AlreadyExistsError,
  BerthError,
  CanceledError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  GrpcCode,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  fromGrpcError,
} from '@berth/core';
import { ttrpcEnvelope } from '@berth/proto';

/**
 * The part of a ts-proto message codec ttrpc uses. Method syntax on purpose: the
 * generated codecs are checked bivariantly, so every message type fits.
 */
export interface TtrpcMessageType<T = unknown> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
  fromPartial(object: never): T;
}

/** One method of a ts-proto generic service definition (`XDefinition.methods.x`). */
export interface TtrpcMethodDefinition {
  readonly name: string;
  readonly requestType: TtrpcMessageType;
  readonly responseType: TtrpcMessageType;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** A ts-proto generic service definition, e.g. `shimTaskV2.TaskDefinition`. */
export interface TtrpcServiceDefinition {
  readonly name: string;
  /** The proto service name that travels in Request.service, e.g. `containerd.task.v2.Task`. */
  readonly fullName: string;
  readonly methods: { readonly [method: string]: TtrpcMethodDefinition };
}

type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;

/** What a codec's `fromPartial` accepts: every field optional, recursively (as ts-proto's own). */
export type DeepPartial<T> = T extends Builtin
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : T extends ReadonlyArray<infer U>
      ? ReadonlyArray<DeepPartial<U>>
      : T extends object
        ? { [K in keyof T]?: DeepPartial<T[K]> }
        : Partial<T>;

/** The decoded request message of a method. */
export type RequestOf<M> = M extends TtrpcMethodDefinition ? ReturnType<M['requestType']['decode']> : never;
/** The decoded response message of a method. */
export type ResponseOf<M> = M extends TtrpcMethodDefinition ? ReturnType<M['responseType']['decode']> : never;

/** Metadata as callers write it: a key with one value or several. */
export type TtrpcMetadata = Record<string, string | string[]>;

export interface CallOptions {
  /** Sent as the request's timeout; the call also fails locally with DeadlineExceededError when it passes. */
  timeoutMs?: number;
  /** Merged over the client's default metadata, key by key. */
  metadata?: TtrpcMetadata;
  /** Aborting fails the call with CanceledError (the server is not told; ttrpc has no cancel frame). */
  signal?: AbortSignal;
}

/** A typed client: one method per key of the definition's methods (`create`, `closeIO`, ...). */
export type TtrpcClientOf<D extends TtrpcServiceDefinition> = {
  -readonly [K in keyof D['methods']]: (
    request: DeepPartial<RequestOf<D['methods'][K]>>,
    options?: CallOptions,
  ) => Promise<ResponseOf<D['methods'][K]>>;
};

export interface TtrpcCallContext {
  /** Request metadata; keys lower-cased, values in the order they arrived. */
  metadata: Map<string, string[]>;
  /** Deadline from the request's timeout, in ms since the epoch. */
  deadline?: number;
  /** Aborted when the deadline passes or the connection closes. */
  signal: AbortSignal;
}

/** Handlers for a service; thrown errors reach the caller as their gRPC code (core's toGrpcStatus). */
export type TtrpcServiceImpl<D extends TtrpcServiceDefinition> = {
  -readonly [K in keyof D['methods']]: (
    request: RequestOf<D['methods'][K]>,
    context: TtrpcCallContext,
  ) => Promise<DeepPartial<ResponseOf<D['methods'][K]>>>;
};

/** Metadata as KeyValue pairs: keys lower-cased, a repeated key per extra value. */
export function metadataToWire(...sources: (TtrpcMetadata | undefined)[]): ttrpcEnvelope.KeyValue[] {
  const merged = new Map<string, string[]>();
  for (const source of sources) {
    for (const [key, value] of Object.entries(source ?? {})) {
      merged.set(key.toLowerCase(), Array.isArray(value) ? value : [value]);
    }
  }
  return [...merged].flatMap(([key, values]) => values.map((value) => ({ key, value })));
}

export function metadataFromWire(pairs: ttrpcEnvelope.KeyValue[]): Map<string, string[]> {
  const metadata = new Map<string, string[]>();
  for (const { key, value } of pairs) {
    const k = key.toLowerCase();
    metadata.set(k, [...(metadata.get(k) ?? []), value]);
  }
  return metadata;
}

type ErrorClass = new (message: string, options?: { cause?: unknown }) => BerthError;

// core's fromGrpcError yields a plain BerthError of the right kind; callers here
// expect the concrete classes (instanceof NotFoundError), so map codes to them.
const errorClassByCode = new Map<number, ErrorClass>([
  [GrpcCode.CANCELLED, CanceledError],
  [GrpcCode.INVALID_ARGUMENT, InvalidArgumentError],
  [GrpcCode.DEADLINE_EXCEEDED, DeadlineExceededError],
  [GrpcCode.NOT_FOUND, NotFoundError],
  [GrpcCode.ALREADY_EXISTS, AlreadyExistsError],
  [GrpcCode.PERMISSION_DENIED, PermissionDeniedError],
  [GrpcCode.RESOURCE_EXHAUSTED, ResourceExhaustedError],
  [GrpcCode.FAILED_PRECONDITION, FailedPreconditionError],
  [GrpcCode.ABORTED, AbortedError],
  [GrpcCode.OUT_OF_RANGE, OutOfRangeError],
  [GrpcCode.UNIMPLEMENTED, NotImplementedError],
  [GrpcCode.INTERNAL, InternalError],
  [GrpcCode.UNAVAILABLE, UnavailableError],
  [GrpcCode.DATA_LOSS, DataLossError],
  [GrpcCode.UNAUTHENTICATED, UnauthenticatedError],
]);

/** core's typed error for a non-OK status received from a peer. */
export function errorFromStatus(code: number, message: string): BerthError {
  const ErrorClass = errorClassByCode.get(code);
  return ErrorClass ? new ErrorClass(message) : fromGrpcError({ code, details: message });
}
