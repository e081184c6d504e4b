/**
 * A closed set of error kinds, shaped like containerd's errdefs. Code inside berth
 * throws these; only the RPC boundary turns them into gRPC status codes and back.
 */

/** Every kind berth distinguishes. The string is stable and travels in logs. */
export type ErrorKind =
  | 'unknown'
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'unavailable'
  | 'not-implemented'
  | 'canceled'
  | 'deadline-exceeded'
  | 'aborted'
  | 'out-of-range'
  | 'resource-exhausted'
  | 'permission-denied'
  | 'unauthenticated'
  | 'data-loss'
  | 'internal';

/** gRPC status codes (numbers are part of the wire protocol). */
export enum GrpcCode {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

const kindToCode: Record<ErrorKind, GrpcCode> = {
  unknown: GrpcCode.UNKNOWN,
  'invalid-argument': GrpcCode.INVALID_ARGUMENT,
  'not-found': GrpcCode.NOT_FOUND,
  'already-exists': GrpcCode.ALREADY_EXISTS,
  'failed-precondition': GrpcCode.FAILED_PRECONDITION,
  unavailable: GrpcCode.UNAVAILABLE,
  'not-implemented': GrpcCode.UNIMPLEMENTED,
  canceled: GrpcCode.CANCELLED,
  'deadline-exceeded': GrpcCode.DEADLINE_EXCEEDED,
  aborted: GrpcCode.ABORTED,
  'out-of-range': GrpcCode.OUT_OF_RANGE,
  'resource-exhausted': GrpcCode.RESOURCE_EXHAUSTED,
  'permission-denied': GrpcCode.PERMISSION_DENIED,
  unauthenticated: GrpcCode.UNAUTHENTICATED,
  'data-loss': GrpcCode.DATA_LOSS,
  internal: GrpcCode.INTERNAL,
};

const codeToKind = new Map<number, ErrorKind>(
  (Object.entries(kindToCode) as [ErrorKind, GrpcCode][]).map(([k, c]) => [c, k]),
);

/** Base class of every berth error; `kind` says which class of failure it is. */
export class BerthError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
  override get name(): string {
    return `BerthError(${this.kind})`;
  }
}

function declare(kind: ErrorKind) {
  return class extends BerthError {
    constructor(message: string, options?: { cause?: unknown }) {
      super(kind, message, options);
    }
  };
}

export class InvalidArgumentError extends declare('invalid-argument') {}
export class NotFoundError extends declare('not-found') {}
export class AlreadyExistsError extends declare('already-exists') {}
export class FailedPreconditionError extends declare('failed-precondition') {}
export class UnavailableError extends declare('unavailable') {}
export class NotImplementedError extends declare('not-implemented') {}
export class CanceledError extends declare('canceled') {}
export class DeadlineExceededError extends declare('deadline-exceeded') {}
export class AbortedError extends declare('aborted') {}
export class OutOfRangeError extends declare('out-of-range') {}
export class ResourceExhaustedError extends declare('resource-exhausted') {}
export class PermissionDeniedError extends declare('permission-denied') {}
export class UnauthenticatedError extends declare('unauthenticated') {}
export class DataLossError extends declare('data-loss') {}
export class InternalError extends declare('internal') {}

/**
 * The kind of an error: the outermost BerthError in the `cause` chain wins, as in
 * containerd's errdefs.Resolve. Errors that carry no kind are 'unknown'.
 * Duck-typed on `kind` so copies of this package loaded twice still agree.
 */
export function errorKind(err: unknown): ErrorKind {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 32; depth++) {
    const k = (cur as { kind?: unknown }).kind;
    if (typeof k === 'string' && k in kindToCode) return k as ErrorKind;
    cur = (cur as { cause?: unknown }).cause;
  }
  return 'unknown';
}

const is = (kind: ErrorKind) => (err: unknown): boolean => errorKind(err) === kind;
export const isInvalidArgument = is('invalid-argument');
export const isNotFound = is('not-found');
export const isAlreadyExists = is('already-exists');
export const isFailedPrecondition = is('failed-precondition');
export const isUnavailable = is('unavailable');
export const isNotImplemented = is('not-implemented');
export const isCanceled = is('canceled');
export const isDeadlineExceeded = is('deadline-exceeded');
export const isAborted = is('aborted');

/** The gRPC status code for an error (boundary use only). */
export function toGrpcCode(err: unknown): GrpcCode {
  return kindToCode[errorKind(err)];
}

/** A gRPC status object for a thrown error, as grpc-js servers send it. */
export function toGrpcStatus(err: unknown): { code: GrpcCode; details: string } {
  const details = err instanceof Error ? err.message : String(err);
  return { code: toGrpcCode(err), details };
}

/**
 * Turns an error received over gRPC (anything with a numeric `code` and a
 * `details` string, like grpc-js ServiceError) back into a BerthError of the
 * matching kind, with the server's message and no transport prefix.
 */
export function fromGrpcError(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof e?.code === 'number') {
    const kind = codeToKind.get(e.code) ?? 'unknown';
    const message =
      typeof e.details === 'string' && e.details
        ? e.details
        : typeof e.message === 'string'
          ? e.message
          : 'unknown error';
    return new BerthError(kind, message, { cause: err });
  }
  return new BerthError('unknown', err instanceof Error ? err.message : String(err), { cause: err });
}
