// Checks that need no server: the version matches Coord's, the shipped service config is the one the
// channel gets, the package ships the protos it was generated from, and mistakes a JavaScript caller
// makes are refused before any call is made.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { channelOptions, connect, SERVICE_CONFIG_JSON, VERSION } from "@coord/client";

const PACKAGE = new URL("../../", import.meta.url);
const REPO = new URL("../../", PACKAGE);

describe("the package", () => {
  it("has the version of Coord (pyproject.toml), which its protos are versioned with", () => {
    const pyproject = readFileSync(new URL("pyproject.toml", REPO), "utf8");
    const coordVersion = /^version = "([^"]+)"$/m.exec(pyproject)?.[1];
    const pkg = JSON.parse(readFileSync(new URL("package.json", PACKAGE), "utf8"));
    const lock = JSON.parse(readFileSync(new URL("package-lock.json", PACKAGE), "utf8"));
    assert.ok(coordVersion);
    assert.deepEqual([pkg.version, lock.version, lock.packages[""].version, VERSION], Array(4).fill(coordVersion));
  });

  it("applies the shipped service config, byte for byte, with retries on", () => {
    const shipped = readFileSync(new URL("client/coord_client/service_config.json", REPO), "utf8");
    assert.equal(SERVICE_CONFIG_JSON, shipped);
    const options = channelOptions();
    assert.equal(options["grpc.service_config"], shipped);
    assert.equal(options["grpc.enable_retries"], 1);
  });

  it("ships the protos it was generated from, google/rpc's status and error details included", () => {
    for (const file of ["coord/cache/v1/cache.proto", "coord/common/v1/errors.proto", "google/rpc/status.proto", "google/rpc/error_details.proto"]) {
      assert.ok(existsSync(new URL(`protos/${file}`, PACKAGE)), file);
    }
    const shipped = readFileSync(new URL("protos/coord/lock/v1/lock.proto", PACKAGE), "utf8");
    assert.equal(shipped, readFileSync(new URL("protos/coord/lock/v1/lock.proto", REPO), "utf8"));
  });
});

describe("arguments checked before any call", () => {
  // Nothing listens on port 1: a call that reached the network would fail with UNAVAILABLE instead.
  /** @type {import("@coord/client").Coord} */
  let coord;
  before(() => {
    coord = connect("127.0.0.1:1", { timeoutMs: 2000 });
  });
  after(() => coord.close());

  /** @param {Promise<unknown>} promise @param {new (...args: any[]) => Error} type @param {RegExp} message */
  const refused = (promise, type, message) => assert.rejects(promise, (/** @type {Error} */ err) => err instanceof type && message.test(err.message));

  it("takes durations as numbers of milliseconds, never strings", async () => {
    // @ts-expect-error the mistake under test
    await refused(coord.cache.set("k", "v", { ttl: "30s" }), TypeError, /ttl must be a number of milliseconds.*"30s"/);
    await refused(coord.cache.set("k", "v", { ttl: -1 }), RangeError, /ttl must be a finite, non-negative/);
    await refused(coord.cache.set("k", "v", { ttl: Infinity }), RangeError, /ttl/);
    // @ts-expect-error the mistake under test
    await refused(coord.lock.acquire("l", { wait: { seconds: 1 } }), TypeError, /wait must be a number of milliseconds/);
  });

  it("refuses snake_case and unknown options instead of dropping them", async () => {
    // @ts-expect-error the mistake under test
    await refused(coord.cache.set("k", "v", { if_version: 3n }), TypeError, /unknown option 'if_version' \(did you mean 'ifVersion'\?\)/);
    // @ts-expect-error the mistake under test
    await refused(coord.events.publish("t", "d", { content_type: "text/plain" }), TypeError, /did you mean 'contentType'/);
    // @ts-expect-error the mistake under test
    assert.throws(() => coord.events.subscribe("t", { strat: "earliest" }), /unknown option 'strat'/);
    // @ts-expect-error the mistake under test
    assert.throws(() => connect("127.0.0.1:1", { keepCase: true }), /unknown option 'keepCase'/);
  });

  it("takes 64-bit integers as BigInt or safe integers, never strings or rounded numbers", async () => {
    // @ts-expect-error the mistake under test
    await refused(coord.cache.set("k", "v", { ifVersion: "12" }), TypeError, /ifVersion must be a BigInt/);
    await refused(coord.cache.set("k", "v", { ifVersion: 2 ** 53 + 2 }), RangeError, /safe|2\^53/);
    await refused(coord.cache.set("k", "v", { ifVersion: -1n }), RangeError, /uint64/);
    await refused(coord.cache.increment("n", 2n ** 63n), RangeError, /int64/);
  });

  it("takes bytes as a Uint8Array or a UTF-8 string, and nothing else", async () => {
    // @ts-expect-error the mistake under test
    await refused(coord.cache.set("k", 42), TypeError, /value must be a Uint8Array, a Buffer or a string/);
    // @ts-expect-error the mistake under test
    await refused(coord.session.create("s", { attributes: { role: ["admin"] } }), TypeError, /attributes.role must be/);
  });

  it("rejects conflicting conditions", async () => {
    await refused(coord.cache.set("k", "v", { ifAbsent: true, ifVersion: 1n }), TypeError, /exclude each other/);
  });
});
