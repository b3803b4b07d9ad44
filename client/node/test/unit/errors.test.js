// The details trailer decoded into typed errors, from bytes built the way a gRPC server sends them
// (the live tests check the same against Coord itself).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import grpc from "@grpc/grpc-js";
import { CoordError, fromGrpcError, InvalidArgument, ResourceExhausted, Unavailable } from "@coord/client";
import { Any } from "@coord/client/gen/google/protobuf/any";
import { BadRequest, ErrorInfo, RetryInfo } from "@coord/client/gen/google/rpc/error_details";
import { Status } from "@coord/client/gen/google/rpc/status";

/**
 * A grpc-js ServiceError carrying `details` in its `grpc-status-details-bin` trailer.
 * @param {number} code @param {string} message @param {import("@coord/client/gen/google/protobuf/any").Any[]} details
 */
function serviceError(code, message, details) {
  const metadata = new grpc.Metadata();
  metadata.set("grpc-status-details-bin", Buffer.from(Status.encode({ code, message, details }).finish()));
  return Object.assign(new Error(`${code} ${message}`), { code, details: message, metadata });
}

const any = (/** @type {string} */ type, /** @type {Uint8Array} */ value) => Any.fromPartial({ typeUrl: `type.googleapis.com/${type}`, value: Buffer.from(value) });

describe("errors", () => {
  it("reads reason, metadata and field violations", () => {
    const err = fromGrpcError(
      serviceError(grpc.status.INVALID_ARGUMENT, "key: must not be empty", [
        any("google.rpc.ErrorInfo", ErrorInfo.encode(ErrorInfo.fromPartial({ reason: "INVALID_FIELD", domain: "coord", metadata: { field: "key" } })).finish()),
        any("google.rpc.BadRequest", BadRequest.encode(BadRequest.fromPartial({ fieldViolations: [{ field: "key", description: "must not be empty" }] })).finish()),
      ]),
    );
    assert.ok(err instanceof InvalidArgument && err instanceof CoordError && err instanceof Error);
    assert.deepEqual([err.reason, err.domain, err.metadata, err.retryAfter], ["INVALID_FIELD", "coord", { field: "key" }, undefined]);
    assert.deepEqual(err.fieldViolations, [{ field: "key", description: "must not be empty" }]);
    assert.equal(err.message, "INVALID_ARGUMENT (INVALID_FIELD): key: must not be empty");
  });

  it("reads retryAfter, in milliseconds, from RetryInfo", () => {
    const err = fromGrpcError(
      serviceError(grpc.status.RESOURCE_EXHAUSTED, "slow down", [
        any("google.rpc.ErrorInfo", ErrorInfo.encode(ErrorInfo.fromPartial({ reason: "TENANT_RATE_LIMITED", domain: "coord" })).finish()),
        any("google.rpc.RetryInfo", RetryInfo.encode(RetryInfo.fromPartial({ retryDelay: { seconds: 1n, nanos: 250_000_000 } })).finish()),
      ]),
    );
    assert.ok(err instanceof ResourceExhausted);
    assert.deepEqual([err.reason, err.retryAfter], ["TENANT_RATE_LIMITED", 1250]);
  });

  it("keeps the code and message of an error without details", () => {
    const err = fromGrpcError(Object.assign(new Error("14 UNAVAILABLE: No connection established"), { code: 14, details: "No connection established", metadata: new grpc.Metadata() }));
    assert.ok(err instanceof Unavailable);
    assert.deepEqual([err.reason, err.fieldViolations, err.message], ["", [], "UNAVAILABLE: No connection established"]);
  });
});
