// Locks through the package: hold() keeps a lock past its TTL by renewing it over the Hold stream,
// and signals a loss (signal, ended, onLost) without throwing into the event loop.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, LockLost, LockNotAcquired } from "@coord/client";
import { startProxy, target, unique, until } from "../helpers.js";

describe("lock", () => {
  /** @type {import("@coord/client").Coord} */
  let coord;
  before(() => {
    coord = connect(target());
  });
  after(() => coord.close());

  it("acquires with a try-lock, waits in the queue, and fences with growing BigInt tokens", async () => {
    const name = unique("lock");
    const mine = await coord.lock.acquire(name, { ttl: 30_000, owner: "node-a" });
    assert.ok(mine.acquired && mine.grant);
    assert.equal(typeof mine.grant.fencingToken, "bigint");
    const busy = await coord.lock.acquire(name, { owner: "node-b" });
    assert.deepEqual([busy.acquired, busy.holders[0]?.owner], [false, "node-a"]);
    const waiting = coord.lock.acquire(name, { owner: "node-b", wait: 10_000 });
    assert.equal(await coord.lock.release(name, mine.grant.lockToken), "released");
    const next = await waiting;
    assert.ok(next.grant && next.grant.fencingToken > mine.grant.fencingToken);
    assert.equal(await coord.lock.release(name, next.grant.lockToken), "released");
  });

  it("holds a lock for longer than its TTL by renewing it, then releases it", async () => {
    const name = unique("hold");
    const ttl = 600;
    const lease = await coord.lock.hold(name, { ttl, owner: "holder" });
    // A heartbeat goes out every third of the TTL: four confirmed renewals span more than one TTL.
    await until(() => lease.renewals >= 4, "four renewals");
    assert.ok(lease.held);
    lease.check();
    const described = await coord.lock.describe(name);
    assert.deepEqual(described.holders.map((h) => h.fencingToken), [lease.fencingToken]);
    const other = await coord.lock.acquire(name);
    assert.equal(other.acquired, false);

    assert.equal(await lease.release(), "released");
    assert.equal(await lease.ended, undefined);
    assert.equal(lease.signal.aborted, false);
    assert.equal((await coord.lock.describe(name)).holderCount, 0);
  });

  it("signals the loss when the grant is released elsewhere", async () => {
    const name = unique("stolen");
    /** @type {LockLost[]} */
    const lost = [];
    const lease = await coord.lock.hold(name, { ttl: 900, onLost: (e) => lost.push(e) });
    // Whoever has the token can end the grant; the next heartbeat finds it gone.
    assert.equal(await coord.lock.release(name, lease.lockToken), "released");
    const error = await lease.ended;
    assert.ok(error instanceof LockLost);
    assert.equal(error.reason, "not_held");
    assert.equal(lease.signal.aborted, true);
    assert.equal(lease.signal.reason, error);
    assert.deepEqual(lost, [error]);
    assert.equal(lease.held, false);
    assert.throws(() => lease.check(), LockLost);
    assert.equal(await lease.release(), "lost");
  });

  it("signals the loss when the Hold stream breaks, and the server frees the lock at once", async () => {
    const proxy = await startProxy(target());
    const through = connect(proxy.target);
    try {
      const name = unique("broken");
      const lease = await through.lock.hold(name, { ttl: 30_000 });
      assert.ok(proxy.cut() > 0);
      const error = await lease.ended;
      assert.equal(error?.reason, "stream_broken");
      // Freed when its stream broke, long before the 30 s lease would have run out.
      const next = await coord.lock.acquire(name, { wait: 10_000 });
      assert.ok(next.grant && next.grant.fencingToken > lease.fencingToken);
      await coord.lock.release(name, next.grant.lockToken);
    } finally {
      through.close();
      await proxy.close();
    }
  });

  it("rejects a hold that is not granted with LockNotAcquired", async () => {
    const name = unique("taken");
    const first = await coord.lock.hold(name, { owner: "first" });
    await assert.rejects(coord.lock.hold(name), (/** @type {unknown} */ err) => {
      assert.ok(err instanceof LockNotAcquired);
      assert.deepEqual(err.holders.map((h) => h.owner), ["first"]);
      return true;
    });
    await first.release();
  });

  it("runs work under withLock and releases after it", async () => {
    const name = unique("with");
    const token = await coord.lock.withLock(name, async (lease) => {
      const described = await coord.lock.describe(name);
      assert.equal(described.holderCount, 1);
      return lease.fencingToken;
    });
    assert.equal(typeof token, "bigint");
    assert.equal((await coord.lock.describe(name)).holderCount, 0);
  });
});
