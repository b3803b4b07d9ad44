// What the test files share: where the server is, unique names, and a TCP proxy whose connections
// can be cut, to drop a call's connection the way a network failure or a server restart would.
import net from "node:net";
import { randomUUID } from "node:crypto";

/** The Coord under test (COORD_TARGET, host:port); the live tests need one. */
export function target() {
  const value = process.env.COORD_TARGET;
  if (!value) throw new Error("set COORD_TARGET=host:port of a running Coord server");
  return value;
}

/** @param {string} prefix */
export function unique(prefix) {
  return `${prefix}-${randomUUID()}`;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `upstream`; `cut()` destroys every connection through it (the
 * proxy keeps listening, so clients reconnect; it returns how many sockets it destroyed), and
 * `connections()` counts the connections it accepted.
 * @param {string} upstream host:port
 * @returns {Promise<{target: string, cut: () => number, connections: () => number, close: () => Promise<void>}>}
 */
export async function startProxy(upstream) {
  const [host, port] = [upstream.slice(0, upstream.lastIndexOf(":")), Number(upstream.slice(upstream.lastIndexOf(":") + 1))];
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted += 1;
    const server = net.connect(port, host);
    for (const [a, b] of [[client, server], [server, client]]) {
      sockets.add(a);
      a.on("error", () => b.destroy());
      a.on("close", () => {
        sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = /** @type {net.AddressInfo} */ (server.address());
  return {
    target: `127.0.0.1:${address.port}`,
    cut() {
      const n = sockets.size;
      for (const s of sockets) s.destroy();
      return n;
    },
    connections: () => accepted,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve(undefined));
      }),
  };
}

/**
 * Wait until `condition()` holds, checking every 20 ms; fails after `limitMs` (a bound, not a measurement).
 * @param {() => boolean | Promise<boolean>} condition
 * @param {string} what
 */
export async function until(condition, what, limitMs = 20_000) {
  const stop = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > stop) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
