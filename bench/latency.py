"""Latency one blocking caller sees: Coord's sync ``Client`` against sync redis-py, at concurrency 1.

``latency.sync``: a cache Get of a 100-byte entry through ``coord_client.Client`` (the sync client,
on grpcio's sync channel) against sync redis-py running the same get.lua (EVALSHA) and a plain GET,
and the bare echo floor called from a sync channel. The operations block the event loop on purpose:
with one caller, that is exactly a sync program. Reported as usual, plus the issue's figure: the p50
Coord adds over direct redis-py (goal at most 0.4 ms).

The asyncio benchmarks elsewhere measure throughput with grpc.aio, whose client pays an extra thread
hop per call; a latency-sensitive sync caller does not.
"""

from __future__ import annotations

import grpc
import redis

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord_client import Client
from coord_server.cache.keys import CacheKeys
from coord_server.redis import ScriptSet

from ._harness import Benchmark, Env, Row, Side, compare, progress
from .floor import ECHO_METHOD, FLOOR_NAME

KEYS = 1000
VALUE = b"v" * 100
TENANT = "default"


async def bench_sync(env: Env) -> list[Row]:
    keys = [f"lat:{i:06d}" for i in range(KEYS)]
    stub = cache_pb2_grpc.CacheServiceStub(env.coord)
    for i in range(0, KEYS, 100):
        batch = [cache_pb2.SetRequest(key=k, value=VALUE) for k in keys[i : i + 100]]
        await stub.BatchSet(cache_pb2.BatchSetRequest(requests=batch))
    script = ScriptSet("coord_server.cache")["get"]
    entries = [CacheKeys(TENANT).entry(k) for k in keys]
    redis_url = env.redis_url
    floor_target = env.floor_target

    with (
        Client(env.coord_target) as client,
        redis.Redis.from_url(redis_url) as direct,
        grpc.insecure_channel(floor_target) as floor_channel,
    ):
        direct.script_load(script.source)
        for key in (keys[0], keys[1]):  # connections open before timing starts
            if not client.cache.get(key).found:
                raise RuntimeError("Coord missed a preloaded key")
        echo = floor_channel.unary_unary(ECHO_METHOD)

        async def coord(i: int) -> None:
            client.cache.get(keys[i % KEYS])

        async def lua(i: int) -> None:
            direct.evalsha(script.sha, 1, entries[i % KEYS])

        async def plain(i: int) -> None:
            direct.get(keys[i % KEYS])

        async def floor(_: int) -> None:
            echo(VALUE)

        rows = await compare(
            env,
            "cache.Get via sync Client (blocking caller)",
            Side("Coord sync Client", coord, env.coord_pid),
            [
                Side("sync redis-py EVALSHA get.lua", lua, env.redis_pid),
                Side("sync redis-py GET", plain, env.redis_pid),
                Side(f"{FLOOR_NAME} (sync channel)", floor, env.floor_pid),
            ],
            levels=(1,),
        )
    added = []
    for row in rows:
        if row.coord_stats is None or row.baseline_stats is None or "redis-py" not in row.baseline_name:
            continue
        extra = row.coord_stats.p50_ms - row.baseline_stats.p50_ms
        progress(f"sync Get c=1: Coord adds {extra:.3f} ms p50 over {row.baseline_name}")
        # The baseline column holds the goal, so the ratio reads as "share of the budget used".
        added.append(
            Row(
                "Coord's added p50, sync cache.Get",
                f"goal 0.4 ms over {row.baseline_name}",
                "ms",
                extra,
                0.4,
                1,
            )
        )
    return rows + added


BENCHMARKS = (Benchmark("latency.sync", bench_sync),)
