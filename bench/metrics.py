"""The cost of Prometheus metrics (``COORD_METRICS_LISTEN``) on the hottest call.

- ``metrics.cost``: cache.Get (hit) at c=64 on a Coord server started with metrics on, against one
  started alike with metrics off, rounds interleaved on the same Redis. The ratio is "with metrics" over
  "without": the goal is 0.95x or more (at most 5% fewer calls per second). Afterwards the second
  server's /metrics is read, to be sure its calls were counted (a cost measured on a server that
  counted nothing would be no measure).
"""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from ._harness import Benchmark, Env, Row, compare, progress
from ._procs import free_port
from .levers import _cache_get_side, _preload, _variant

CONCURRENCY = 64
GOAL = 0.95


def _handled_gets(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "grpc_server_handled_total"
                and labels.get("grpc_service") == "coord.cache.v1.CacheService"
                and labels.get("grpc_method") == "Get"
            ):
                total += sample.value
    return total


async def bench_cost(env: Env) -> list[Row]:
    keys = await _preload(env)
    port = free_port()
    # Both servers started for this row, alike but for the setting: the main server has served every
    # benchmark before this one, and would not be a like-for-like baseline.
    pid, _, channel = await _variant(env, "metrics", {"env": {"COORD_METRICS_LISTEN": f"127.0.0.1:{port}"}})
    off_pid, _, off_channel = await _variant(env, "metrics_off", {})
    rows = await compare(
        env,
        "metrics cost: cache.Get",
        await _cache_get_side("Coord, metrics on", channel, pid, keys),
        [await _cache_get_side("Coord, metrics off", off_channel, off_pid, keys)],
        levels=[CONCURRENCY],
    )
    counted = await asyncio.to_thread(_handled_gets, port)
    if counted <= 0:
        raise RuntimeError("the server with metrics on counted no cache.Get")
    for row in rows:
        verdict = "meets" if row.ratio >= GOAL else "MISSES"
        progress(
            f"metrics cost c={row.concurrency}: {row.ratio:.3f}x of the calls/s without ({verdict} {GOAL}x)"
        )
    return rows


BENCHMARKS = (Benchmark("metrics.cost", bench_cost),)
