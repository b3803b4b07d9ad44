// The bound on unary calls in flight: past it, calls wait in the client, in order, and one whose
// deadline passes while it waits fails without being sent.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, DeadlineExceeded } from "@coord/client";
import { target, unique } from "../helpers.js";

describe("calls in flight", () => {
  it("queues calls past maxInFlight, in order, each deadline still running", async () => {
    const other = connect(target());
    const limited = connect(target(), { maxInFlight: 1 });
    try {
      const name = unique("slot");
      const held = await other.lock.acquire(name);
      assert.ok(held.grant);
      /** @type {string[]} */
      const done = [];
      // The only slot: an Acquire that waits on the server until the lock is released below.
      const waiting = limited.lock.acquire(name, { wait: 20_000 }).then((r) => {
        done.push("acquire");
        return r;
      });
      // Behind it: a call whose deadline passes in the queue, and one that waits its turn.
      const expired = limited.cache.get(name, { timeoutMs: 50 });
      const queued = limited.cache.get(name).then((r) => {
        done.push("get");
        return r;
      });
      await assert.rejects(expired, (/** @type {unknown} */ err) => err instanceof DeadlineExceeded && /not sent/.test(err.message));
      assert.deepEqual(done, []);
      await other.lock.release(name, held.grant.lockToken);
      const [acquired] = await Promise.all([waiting, queued]);
      assert.deepEqual(done, ["acquire", "get"]);
      assert.ok(acquired.grant);
      await limited.lock.release(name, acquired.grant.lockToken);
    } finally {
      other.close();
      limited.close();
    }
  });
});
