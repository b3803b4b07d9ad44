// The cache through the package: a round trip, compare-and-set on BigInt versions, bytes taken as
// given, 64-bit counters past 2^53, and the server's errors as typed errors with their details.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, CoordError, InvalidArgument, ResourceExhausted } from "@coord/client";
import { target, unique } from "../helpers.js";

describe("cache", () => {
  /** @type {import("@coord/client").Coord} */
  let coord;
  before(() => {
    coord = connect(target());
  });
  after(() => coord.close());

  it("round-trips a value and compares-and-sets on its BigInt version", async () => {
    const key = unique("cas");
    const written = await coord.cache.set(key, "hello", { ttl: 60_000 });
    assert.equal(written.outcome, "stored");
    assert.equal(typeof written.version, "bigint");
    const read = await coord.cache.get(key);
    assert.deepEqual([read.found, read.value.toString(), read.version], [true, "hello", written.version]);
    assert.ok(read.expireTime instanceof Date);

    const swapped = await coord.cache.set(key, "world", { ifVersion: written.version });
    assert.equal(swapped.outcome, "stored");
    assert.ok(swapped.version > written.version);
    const stale = await coord.cache.set(key, "lost", { ifVersion: written.version });
    assert.deepEqual([stale.outcome, stale.stored, stale.version], ["version_mismatch", false, swapped.version]);
    const kept = await coord.cache.delete(key, { ifVersion: written.version });
    assert.equal(kept.results[0]?.outcome, "version_mismatch");
    assert.equal((await coord.cache.get(key)).value.toString(), "world");

    const once = await coord.cache.set(key, "x", { ifAbsent: true });
    assert.equal(once.outcome, "already_exists");
    const entries = await coord.cache.getMany([key, unique("missing")]);
    assert.deepEqual(entries.map((e) => e.found), [true, false]);
    const gone = await coord.cache.delete(key, { ifVersion: swapped.version });
    assert.deepEqual([gone.deletedCount, gone.results[0]?.outcome], [1, "deleted"]);
  });

  it("stores a string as its UTF-8 and bytes as given, never base64-decoding", async () => {
    const key = unique("bytes");
    await coord.cache.set(key, "aGVsbG8=");
    assert.deepEqual((await coord.cache.get(key)).value, Buffer.from("aGVsbG8=", "utf8"));
    await coord.cache.set(key, "héllo ✓");
    assert.equal((await coord.cache.get(key)).value.toString("utf8"), "héllo ✓");
    const raw = new Uint8Array([0, 255, 1, 254]);
    await coord.cache.set(key, raw);
    assert.deepEqual(new Uint8Array((await coord.cache.get(key)).value), raw);
  });

  it("counts past 2^53 exactly with BigInt", async () => {
    const key = unique("counter");
    const big = 2n ** 60n + 1n;
    const first = await coord.cache.increment(key, big);
    assert.deepEqual([first.value, first.created], [big, true]);
    const second = await coord.cache.increment(key, -1n);
    assert.equal(second.value, 2n ** 60n);
    assert.ok(second.version > first.version);
  });

  it("rejects an empty key with InvalidArgument, its reason and field violations", async () => {
    const err = await coord.cache.get("").then(
      () => assert.fail("an empty key was accepted"),
      (/** @type {unknown} */ e) => e,
    );
    assert.ok(err instanceof InvalidArgument && err instanceof CoordError);
    assert.equal(err.code, 3);
    assert.equal(err.codeName, "INVALID_ARGUMENT");
    assert.equal(err.reason, "INVALID_FIELD");
    assert.equal(err.domain, "coord");
    assert.deepEqual(err.fieldViolations.map((v) => v.field), ["key"]);
  });

  it("rejects a value over the size limit with ResourceExhausted and the limit in its metadata", async () => {
    const err = await coord.cache.set(unique("big"), Buffer.alloc((1 << 20) + 1)).then(
      () => assert.fail("an oversized value was accepted"),
      (/** @type {unknown} */ e) => e,
    );
    assert.ok(err instanceof ResourceExhausted);
    assert.equal(err.reason, "VALUE_TOO_LARGE");
    assert.equal(err.metadata.limit, String(1 << 20));
  });
});
