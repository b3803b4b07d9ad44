// Events through the package: subscribe() as an async iterator that resumes from its cursors after
// a disconnect, with no gap and no duplicate, and that ends quietly when cancelled.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { connect, InvalidArgument } from "@coord/client";
import { startProxy, target, unique } from "../helpers.js";

/**
 * The next `n` events of a subscription.
 * @param {AsyncIterator<import("@coord/client").Event>} iterator
 * @param {number} n
 */
async function take(iterator, n) {
  const events = [];
  while (events.length < n) {
    const next = await iterator.next();
    if (next.done) throw new Error(`the subscription ended after ${events.length} of ${n} events`);
    events.push(next.value);
  }
  return events;
}

describe("events", () => {
  /** @type {import("@coord/client").Coord} */
  let coord;
  before(() => {
    coord = connect(target());
  });
  after(() => coord.close());

  it("publishes and subscribes, and resumes from the cursors it hands out", async () => {
    const topic = unique("orders");
    const ids = [];
    for (const n of [1, 2, 3]) ids.push((await coord.events.publish(topic, `order ${n}`, { dedupId: `order-${n}` })).id);
    const first = coord.events.subscribe(topic, { start: "earliest" });
    const two = await take(first, 2);
    assert.deepEqual(two.map((e) => e.data.toString()), ["order 1", "order 2"]);
    assert.deepEqual(first.cursors, { [topic]: ids[1] });
    first.close();
    const resumed = coord.events.subscribe(topic, { after: first.cursors });
    const [third] = await take(resumed, 1);
    assert.equal(third?.id, ids[2]);
    resumed.close();
    assert.equal((await coord.events.publish(topic, "again", { dedupId: "order-1" })).duplicate, true);
  });

  it("yields every event exactly once across a dropped connection", async () => {
    const proxy = await startProxy(target());
    const through = connect(proxy.target);
    const topic = unique("resume");
    const publish = async (/** @type {number[]} */ ns) => {
      const out = [];
      for (const n of ns) out.push((await coord.events.publish(topic, `event ${n}`)).id);
      return out;
    };
    try {
      const sub = through.events.subscribe(topic, { start: "earliest", heartbeat: 500 });
      const published = await publish([1, 2, 3]);
      const received = await take(sub, 3);
      assert.ok(proxy.cut() > 0); // the Subscribe call's connection is gone
      published.push(...(await publish([4, 5, 6]))); // while it is disconnected
      received.push(...(await take(sub, 3)));
      published.push(...(await publish([7])));
      received.push(...(await take(sub, 1)));
      assert.deepEqual(received.map((e) => e.id), published);
      assert.deepEqual(received.map((e) => e.data.toString()), [1, 2, 3, 4, 5, 6, 7].map((n) => `event ${n}`));
      assert.ok(sub.reconnects >= 1, `reconnects: ${sub.reconnects}`);
      assert.ok(proxy.connections() >= 2);
      sub.close();
      assert.deepEqual(await sub.next(), { value: undefined, done: true });
    } finally {
      through.close();
      await proxy.close();
    }
  });

  it("ends a for-await loop quietly on break, close() and abort", async () => {
    const topic = unique("cancel");
    await coord.events.publish(topic, "one");
    for await (const event of coord.events.subscribe(topic, { start: "earliest" })) {
      assert.equal(event.data.toString(), "one");
      break; // return() cancels the call
    }
    const sub = coord.events.subscribe(topic, { start: "latest" });
    const pending = sub.next();
    sub.close();
    assert.deepEqual(await pending, { value: undefined, done: true });

    const controller = new AbortController();
    const aborted = coord.events.subscribe(topic, { start: "latest", signal: controller.signal });
    const waiting = aborted.next();
    controller.abort();
    assert.deepEqual(await waiting, { value: undefined, done: true });
  });

  it("throws an error it cannot resume from out of the loop", async () => {
    const sub = coord.events.subscribe("", { start: "earliest" });
    await assert.rejects(sub.next(), (/** @type {unknown} */ err) => err instanceof InvalidArgument && err.reason === "INVALID_FIELD");
    assert.deepEqual(await sub.next(), { value: undefined, done: true });
  });

  it("does not crash a program that cancels its streams and has no error handler", () => {
    // A separate process, with no 'error' or 'uncaughtException' handler of its own: cancelled
    // subscriptions, a released hold and a closed connection with a subscription still open.
    const program = `
      import { connect } from "@coord/client";
      const coord = connect(process.env.COORD_TARGET);
      const topic = "crash-check-" + process.pid;
      await coord.events.publish(topic, "x");
      const sub = coord.events.subscribe(topic, { start: "earliest" });
      await sub.next();
      sub.close();
      const open = coord.events.subscribe(topic, { start: "latest" });
      const lease = await coord.lock.hold(topic);
      await lease.release();
      coord.close();
      const last = await open.next();
      await new Promise((resolve) => setTimeout(resolve, 200));
      console.log("ok", JSON.stringify(last.done));
    `;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", program], {
      cwd: new URL("../..", import.meta.url),
      env: { ...process.env, COORD_TARGET: target() },
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(run.stderr, "");
    assert.equal(run.status, 0);
    assert.equal(run.stdout.trim(), "ok true");
  });
});
