// Typed errors: every failed call rejects with a CoordError subclass chosen by its gRPC status code,
// with the rich details Coord sends in the `grpc-status-details-bin` trailer already decoded:
// `reason` (google.rpc.ErrorInfo, from coord.common.v1.ErrorReason), `fieldViolations`
// (google.rpc.BadRequest) and `retryAfter` (google.rpc.RetryInfo, in milliseconds).
//
// Branch on `reason` (stable), never on `message` (human text that may change between releases).
import { Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import type { Any } from "./gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo, RetryInfo } from "./gen/google/rpc/error_details.js";
import { Status } from "./gen/google/rpc/status.js";
import { msFromDuration } from "./convert.js";

const DETAILS_TRAILER = "grpc-status-details-bin";

/** One offending field of a request, from the google.rpc.BadRequest detail. */
export interface FieldViolation {
  /** field is the path of the field in the request, for example "key" or "requests[3].topic". */
  field: string;
  /** description says what is wrong with it. */
  description: string;
}

/** The fields a CoordError is made of (what the status and its details say). */
export interface ErrorFields {
  code: number;
  message: string;
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
  retryAfter?: number | undefined;
  fieldViolations?: FieldViolation[];
  trailers?: Metadata | undefined;
  cause?: unknown;
}

/** Base of every error a Coord call rejects with. */
export class CoordError extends Error {
  /** code is the gRPC status code (grpc.status.INVALID_ARGUMENT is 3). */
  readonly code: number;
  /** codeName is the code's name, for example "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** reason is ErrorInfo.reason, for example "INVALID_FIELD" ("" when the server sent none). */
  readonly reason: string;
  /** domain is ErrorInfo.domain ("coord" for Coord's own errors). */
  readonly domain: string;
  /** metadata is ErrorInfo.metadata, for example {field, limit, actual}. */
  readonly metadata: Readonly<Record<string, string>>;
  /** retryAfter is RetryInfo.retry_delay in milliseconds, when the server says a retry may succeed. */
  readonly retryAfter: number | undefined;
  /** fieldViolations lists the request's bad fields (BadRequest). */
  readonly fieldViolations: readonly FieldViolation[];
  /** trailers are the call's trailing metadata (for example `grpc-previous-rpc-attempts`). */
  readonly trailers: Metadata | undefined;

  constructor(fields: ErrorFields) {
    const codeName = Code[fields.code] ?? `CODE_${fields.code}`;
    const label = codeName + (fields.reason ? ` (${fields.reason})` : "");
    super(fields.message ? `${label}: ${fields.message}` : label, { cause: fields.cause });
    this.name = new.target.name;
    this.code = fields.code;
    this.codeName = codeName;
    this.reason = fields.reason ?? "";
    this.domain = fields.domain ?? "";
    this.metadata = fields.metadata ?? {};
    this.retryAfter = fields.retryAfter;
    this.fieldViolations = fields.fieldViolations ?? [];
    this.trailers = fields.trailers;
  }
}

export class Cancelled extends CoordError {}
export class Unknown extends CoordError {}
/** The request is malformed (fieldViolations says where); retrying it unchanged cannot succeed. */
export class InvalidArgument extends CoordError {}
/** The deadline passed before the call finished; a write may or may not have happened. */
export class DeadlineExceeded extends CoordError {}
export class NotFound extends CoordError {}
export class AlreadyExists extends CoordError {}
/** The caller's identity is valid but not allowed this method (metadata.permission names it). */
export class PermissionDenied extends CoordError {}
/** A size or quota limit was hit (VALUE_TOO_LARGE, TENANT_RATE_LIMITED...); see retryAfter. */
export class ResourceExhausted extends CoordError {}
/** The stored state does not allow the call (for example VALUE_NOT_INTEGER). */
export class FailedPrecondition extends CoordError {}
export class Aborted extends CoordError {}
/** A result would leave its valid range (for example INTEGER_OVERFLOW). */
export class OutOfRange extends CoordError {}
export class Unimplemented extends CoordError {}
/** An unexpected server fault; the details are in the server's log. */
export class Internal extends CoordError {}
/** The server or its Redis cannot be reached now; idempotent calls were already retried. */
export class Unavailable extends CoordError {}
export class DataLoss extends CoordError {}
/** The call carries no credential the server accepts. */
export class Unauthenticated extends CoordError {}

const BY_CODE: Record<number, new (fields: ErrorFields) => CoordError> = {
  [Code.CANCELLED]: Cancelled,
  [Code.UNKNOWN]: Unknown,
  [Code.INVALID_ARGUMENT]: InvalidArgument,
  [Code.DEADLINE_EXCEEDED]: DeadlineExceeded,
  [Code.NOT_FOUND]: NotFound,
  [Code.ALREADY_EXISTS]: AlreadyExists,
  [Code.PERMISSION_DENIED]: PermissionDenied,
  [Code.RESOURCE_EXHAUSTED]: ResourceExhausted,
  [Code.FAILED_PRECONDITION]: FailedPrecondition,
  [Code.ABORTED]: Aborted,
  [Code.OUT_OF_RANGE]: OutOfRange,
  [Code.UNIMPLEMENTED]: Unimplemented,
  [Code.INTERNAL]: Internal,
  [Code.UNAVAILABLE]: Unavailable,
  [Code.DATA_LOSS]: DataLoss,
  [Code.UNAUTHENTICATED]: Unauthenticated,
};

/** The error for a status and its google.rpc detail messages (`Any`s). */
export function errorFromStatus(
  code: number,
  message: string,
  details: readonly Any[],
  extra: Pick<ErrorFields, "trailers" | "cause"> = {},
): CoordError {
  const fields: ErrorFields = { code, message, ...extra };
  for (const any of details) {
    // type_url is "type.googleapis.com/google.rpc.ErrorInfo": the part after the last slash names it.
    const type = any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
    try {
      if (type === "google.rpc.ErrorInfo") {
        const info = ErrorInfo.decode(any.value);
        fields.reason = info.reason;
        fields.domain = info.domain;
        fields.metadata = { ...info.metadata };
      } else if (type === "google.rpc.BadRequest") {
        fields.fieldViolations = BadRequest.decode(any.value).fieldViolations.map((v) => ({
          field: v.field,
          description: v.description,
        }));
      } else if (type === "google.rpc.RetryInfo") {
        const delay = RetryInfo.decode(any.value).retryDelay;
        fields.retryAfter = delay === undefined ? undefined : msFromDuration(delay);
      }
    } catch {
      // A detail that does not decode is left out: the status code and message still stand.
    }
  }
  const Class = BY_CODE[code] ?? CoordError;
  return new Class(fields);
}

/** Turn what a @grpc/grpc-js call failed with into the matching CoordError (idempotent). */
export function fromGrpcError(error: unknown): CoordError {
  if (error instanceof CoordError) return error;
  const err = error as Partial<ServiceError>;
  const code = typeof err.code === "number" ? err.code : Code.UNKNOWN;
  let message = typeof err.details === "string" ? err.details : String(err.message ?? error);
  const trailers = err.metadata instanceof Metadata ? err.metadata : undefined;
  let details: Any[] = [];
  const raw = trailers?.get(DETAILS_TRAILER)[0];
  if (raw instanceof Buffer) {
    try {
      const status = Status.decode(raw);
      details = status.details;
      if (status.message) message = status.message;
    } catch {
      // Not a google.rpc.Status: keep what the transport said.
    }
  }
  return errorFromStatus(code, message, details, { trailers, cause: error });
}
