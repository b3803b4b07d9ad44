// Cache Get throughput through the package: one key set, then Get calls kept in flight at a fixed
// concurrency for a fixed time, over one connection (one HTTP/2 channel, the shipped service config).
//
//   COORD_TARGET=127.0.0.1:50051 node bench/get.mjs [concurrency] [seconds]
//
// Concurrency and duration also come from BENCH_CONCURRENCY and BENCH_SECONDS (defaults 64 and 5).
// Prints one JSON line: {"ops_per_s", "calls", "errors", "concurrency", "seconds"}.
import { connect } from "@coord/client";

const concurrency = Number(process.argv[2] ?? process.env.BENCH_CONCURRENCY ?? 64);
const seconds = Number(process.argv[3] ?? process.env.BENCH_SECONDS ?? 5);
if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
if (!(seconds > 0)) throw new RangeError(`seconds must be positive, got ${seconds}`);

const coord = connect(process.env.COORD_TARGET ?? "127.0.0.1:50051");
const key = `bench-node-get-${process.pid}`;
await coord.cache.set(key, Buffer.alloc(100, 120), { ttl: 600_000 });
await coord.cache.get(key); // the channel is connected before the clock starts

let calls = 0;
let errors = 0;
const started = performance.now();
const stopAt = started + seconds * 1000;

async function worker() {
  while (performance.now() < stopAt) {
    try {
      await coord.cache.get(key);
      calls += 1;
    } catch {
      errors += 1;
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
const elapsed = (performance.now() - started) / 1000;
await coord.cache.delete(key);
coord.close();
console.log(JSON.stringify({ ops_per_s: Math.round(calls / elapsed), calls, errors, concurrency, seconds: Number(elapsed.toFixed(3)) }));
if (errors > 0) process.exitCode = 1;
