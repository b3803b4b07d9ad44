// Rate limits and sessions through the package: BigInt counts, durations in milliseconds, outcomes
// as results rather than errors.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@coord/client";
import { target, unique } from "../helpers.js";

describe("ratelimit", () => {
  /** @type {import("@coord/client").Coord} */
  let coord;
  before(() => {
    coord = connect(target());
  });
  after(() => coord.close());

  it("allows up to the limit, then denies with a retry delay", async () => {
    const key = unique("user");
    /** @type {import("@coord/client").Descriptor} */
    const descriptor = { key, rule: { algorithm: "token_bucket", limit: 2, period: 60_000, name: "minute" } };
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await coord.ratelimit.check(descriptor));
    assert.deepEqual(results.map((r) => r.allowed), [true, true, false]);
    const denied = results[2];
    assert.ok(denied);
    assert.deepEqual([denied.limit, denied.remaining], [2n, 0n]);
    assert.ok(denied.retryAfter > 0 && denied.retryAfter <= 60_000);
    assert.equal(denied.statuses[0]?.name, "minute");
    assert.match(denied.ratelimitHeader, /"minute";r=0/);
    assert.equal(await coord.ratelimit.reset(key), true);
    assert.equal((await coord.ratelimit.check(descriptor)).allowed, true);
  });
});

describe("session", () => {
  /** @type {import("@coord/client").Coord} */
  let coord;
  before(() => {
    coord = connect(target());
  });
  after(() => coord.close());

  it("creates, validates, updates and revokes a session", async () => {
    const subject = unique("alice");
    const created = await coord.session.create(subject, { attributes: { role: "admin" }, idleTimeout: 1_800_000, client: { label: "laptop" } });
    assert.match(created.token, /^cs1_/);
    const checked = await coord.session.validate(created.token, { attributeNames: ["role"] });
    assert.ok(checked.valid);
    assert.equal(checked.session.subject, subject);
    assert.equal(checked.session.attributes.role?.toString(), "admin");
    assert.equal(typeof checked.session.version, "bigint");

    const updated = await coord.session.update(created.token, { increment: { visits: 7n }, ifVersion: checked.session.version });
    assert.ok(updated.outcome === "updated");
    assert.equal(updated.incrementResults.visits, 7n);
    const conflict = await coord.session.update(created.token, { set: { role: "user" }, ifVersion: checked.session.version });
    assert.equal(conflict.outcome, "conflict");

    assert.equal(await coord.session.revoke({ token: created.token }), true);
    assert.deepEqual(await coord.session.validate(created.token), { valid: false, reason: "revoked" });
  });
});
