// Against a Coord whose Redis is down (COORD_TARGET): every call fails with UNAVAILABLE and a
// RetryInfo. The shipped service config makes gRPC itself retry the idempotent Get, never Increment;
// grpc-js reports the retries it made in the `grpc-previous-rpc-attempts` trailer.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, Unavailable } from "@coord/client";
import { target } from "../helpers.js";

/** @param {import("@coord/client").CoordError} err */
function previousAttempts(err) {
  const [value] = err.trailers?.get("grpc-previous-rpc-attempts") ?? [];
  return value === undefined ? 0 : Number(value);
}

describe("with Redis down", () => {
  /** @type {import("@coord/client").Coord} */
  let coord;
  before(() => {
    coord = connect(target(), { timeoutMs: 10_000 });
  });
  after(() => coord.close());

  it("retries an idempotent Get, then rejects with Unavailable, its reason and retryAfter", async () => {
    const err = await coord.cache.get("k").then(
      () => assert.fail("Get succeeded with Redis down"),
      (/** @type {unknown} */ e) => e,
    );
    assert.ok(err instanceof Unavailable);
    assert.equal(err.reason, "BACKEND_UNAVAILABLE");
    assert.ok(err.retryAfter !== undefined && err.retryAfter > 0, `retryAfter ${err.retryAfter}`);
    assert.ok(previousAttempts(err) >= 1, `Get was attempted ${previousAttempts(err) + 1} time(s)`);
  });

  it("never retries Increment, although the server says a retry is possible", async () => {
    const err = await coord.cache.increment("n", 1n).then(
      () => assert.fail("Increment succeeded with Redis down"),
      (/** @type {unknown} */ e) => e,
    );
    assert.ok(err instanceof Unavailable);
    assert.ok(err.retryAfter !== undefined && err.retryAfter > 0);
    assert.equal(previousAttempts(err), 0);
  });
});
