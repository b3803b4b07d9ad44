"""The performance levers, each measured on and off in the same run.

Every benchmark here starts a second Coord server that differs from the main one in exactly one
setting and compares the two, rounds interleaved, on the same Redis. Each row reads "Coord with the
lever" against "Coord without it": a ratio above 1.00x means the lever pays.

- ``levers.uvloop``: the default uvloop event loop against ``COORD_EVENT_LOOP=asyncio``.
- ``levers.hiredis``: redis-py with the hiredis reply parser (installed) against its pure-Python
  parser (the second server starts with hiredis hidden from ``import``).
- ``levers.coalesce``: concurrent requests' scripts pipelined (on a single node: one shared,
  self-pipelining connection, coord_server/redis/pipe.py) against one redis-py round trip per request on
  pooled connections (``COORD_REDIS_COALESCE=0``).
- ``levers.workers``: ``--workers 2`` (two processes on one port, SO_REUSEPORT) against one. The load
  uses 4 channels with their own connections on both sides, since the kernel spreads connections,
  not calls, over the workers.
- ``levers.get_stream``: cache reads over ``GetStream`` against unary ``Get`` on the same server.
- ``levers.set_stream``: cache writes over ``SetStream`` against unary ``Set`` on the same server
  (the form the near-cache benchmark's other client writes in).
- ``levers.deny_cache``: checks of denied keys with ``COORD_RATELIMIT_DENY_CACHE=1`` (exact denials
  remembered until their retry_after) against the main server, which asks Redis every time.

Cache Get (hit) is the probe for the levers that touch every call, rate-limit Check for coalescing.
"""

from __future__ import annotations

import itertools

import grpc
from google.protobuf.duration_pb2 import Duration

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

from . import ratelimit
from ._harness import Benchmark, Env, Row, Side, compare, redis_cpu_rows
from ._stream import Multiplexed
from .cache import KEYS, VALUE, _coord_set_all, _user_keys

CHANNELS = 4  # for the workers lever: separate connections, spread by SO_REUSEPORT


async def _variant(env: Env, label: str, how: dict[str, object]) -> tuple[int, str, grpc.aio.Channel]:
    """Start a second Coord; ``how`` holds ``args``, ``env`` (settings) or ``without_hiredis``."""
    if env.spawn_coord is None:
        raise RuntimeError("this run cannot start Coord variants")
    return await env.spawn_coord(label, **how)


async def _cache_get_side(name: str, channel: grpc.aio.Channel, pid: int, keys: list[str]) -> Side:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    requests = [cache_pb2.GetRequest(key=k) for k in keys]

    async def op(i: int) -> None:
        await stub.Get(requests[i % KEYS])

    return Side(name, op, pid)


async def _preload(env: Env) -> list[str]:
    keys = _user_keys(KEYS)
    await _coord_set_all(cache_pb2_grpc.CacheServiceStub(env.coord), keys)
    return keys


async def _get_lever(env: Env, lever: str, without: str, how: dict[str, object]) -> list[Row]:
    keys = await _preload(env)
    pid, _, channel = await _variant(env, lever, how)
    with_lever = await _cache_get_side("Coord", env.coord, env.coord_pid, keys)
    without_lever = await _cache_get_side(without, channel, pid, keys)
    return await compare(env, f"lever {lever}: cache.Get", with_lever, [without_lever])


async def bench_uvloop(env: Env) -> list[Row]:
    return await _get_lever(env, "uvloop", "Coord, asyncio loop", {"env": {"COORD_EVENT_LOOP": "asyncio"}})


async def bench_hiredis(env: Env) -> list[Row]:
    return await _get_lever(env, "hiredis", "Coord, pure-Python parser", {"without_hiredis": True})


async def bench_coalesce(env: Env) -> list[Row]:
    s = ratelimit._Sides(env)
    await s.prepare()
    pid, _, channel = await _variant(env, "coalesce", {"env": {"COORD_REDIS_COALESCE": "0"}})
    with_lever = s.unary()
    stub = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
    requests = s.requests

    async def op(i: int) -> None:
        await stub.Check(requests[i % ratelimit.KEYS])

    rows = await compare(
        env,
        "lever coalesce: ratelimit.Check",
        Side("Coord", with_lever.op, env.coord_pid),
        [Side("Coord, no coalescing", op, pid)],
    )
    async with (
        Multiplexed(s.stub.CheckStream, ratelimit_pb2.CheckStreamRequest) as on,
        Multiplexed(stub.CheckStream, ratelimit_pb2.CheckStreamRequest) as off,
    ):

        async def streamed_on(i: int) -> None:
            await on.call(check=requests[i % ratelimit.KEYS])

        async def streamed_off(i: int) -> None:
            await off.call(check=requests[i % ratelimit.KEYS])

        rows += await compare(
            env,
            "lever coalesce: ratelimit.CheckStream",
            Side("Coord", streamed_on, env.coord_pid),
            [Side("Coord, no coalescing", streamed_off, pid)],
        )
    keys = await _preload(env)
    rows += await compare(
        env,
        "lever coalesce: cache.Get",
        await _cache_get_side("Coord", env.coord, env.coord_pid, keys),
        [await _cache_get_side("Coord, no coalescing", channel, pid, keys)],
    )
    return rows


def _channels(target: str) -> list[grpc.aio.Channel]:
    # A local subchannel pool gives each channel its own TCP connection.
    return [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]


async def _spread_side(
    name: str, target: str, pid: int, keys: list[str]
) -> tuple[Side, list[grpc.aio.Channel]]:
    channels = _channels(target)
    stubs = [cache_pb2_grpc.CacheServiceStub(c) for c in channels]
    requests = [cache_pb2.GetRequest(key=k) for k in keys]
    turn = itertools.count()

    async def op(i: int) -> None:
        await stubs[next(turn) % CHANNELS].Get(requests[i % KEYS])

    return Side(name, op, pid), channels


async def bench_workers(env: Env) -> list[Row]:
    keys = await _preload(env)
    pid, target, _ = await _variant(env, "workers", {"args": ["--workers", "2"]})
    two, mine = await _spread_side("Coord, 2 workers", target, pid, keys)
    one, theirs = await _spread_side("Coord, 1 worker", env.coord_target, env.coord_pid, keys)
    try:
        for channel in (*mine, *theirs):
            await channel.channel_ready()
        return await compare(env, "lever workers: cache.Get, 4 connections", two, [one])
    finally:
        for channel in (*mine, *theirs):
            await channel.close(None)


async def bench_get_stream(env: Env) -> list[Row]:
    keys = await _preload(env)
    stub = cache_pb2_grpc.CacheServiceStub(env.coord)
    requests = [cache_pb2.GetRequest(key=k) for k in keys]
    unary = await _cache_get_side("Coord Get (unary)", env.coord, env.coord_pid, keys)
    async with Multiplexed(stub.GetStream, cache_pb2.GetStreamRequest) as stream:

        async def op(i: int) -> None:
            answer = await stream.call(get=requests[i % KEYS])
            if answer.get.entry.value != VALUE:
                raise RuntimeError("GetStream missed a preloaded key")

        return await compare(
            env, "lever stream: cache.GetStream", Side("Coord GetStream", op, env.coord_pid), [unary]
        )


async def bench_set_stream(env: Env) -> list[Row]:
    keys = _user_keys(KEYS)
    stub = cache_pb2_grpc.CacheServiceStub(env.coord)
    ttl = Duration(seconds=60)
    requests = [cache_pb2.SetRequest(key=k, value=VALUE, ttl=ttl) for k in keys]

    async def unary(i: int) -> None:
        await stub.Set(requests[i % KEYS])

    async with Multiplexed(stub.SetStream, cache_pb2.SetStreamRequest) as stream:

        async def op(i: int) -> None:
            answer = await stream.call(set=requests[i % KEYS])
            if answer.set.outcome != cache_pb2.WRITE_OUTCOME_STORED:
                raise RuntimeError("a SetStream write was not stored")

        return await compare(
            env,
            "lever stream: cache.SetStream",
            Side("Coord SetStream", op, env.coord_pid),
            [Side("Coord Set (unary)", unary, env.coord_pid)],
        )


DENIED_KEYS = 1000


async def bench_deny_cache(env: Env) -> list[Row]:
    """Checks of keys that are denied (each allows one unit per hour and has used it): a server that
    remembers exact denials (``COORD_RATELIMIT_DENY_CACHE=1``) against the main one, which asks Redis
    every time. The rows also give Redis CPU per check: what denied traffic costs Redis."""
    pid, _, channel = await _variant(env, "deny_cache", {"env": {"COORD_RATELIMIT_DENY_CACHE": "1"}})
    rule = ratelimit_pb2.Rule(
        algorithm=ratelimit_pb2.ALGORITHM_FIXED_WINDOW, limit=1, period=Duration(seconds=3600)
    )
    requests = [
        ratelimit_pb2.CheckRequest(descriptors=[ratelimit_pb2.Descriptor(key=f"denied:{i:06d}", rule=rule)])
        for i in range(DENIED_KEYS)
    ]
    remembering = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
    asking = ratelimit_pb2_grpc.RateLimitServiceStub(env.coord)
    for request in requests:
        await asking.Check(request)  # each key's one unit is used: from now on every check denies

    def side(name: str, stub: ratelimit_pb2_grpc.RateLimitServiceStub, server_pid: int) -> Side:
        async def op(i: int) -> None:
            if (await stub.Check(requests[i % DENIED_KEYS])).allowed:
                raise RuntimeError("a key that had used its hourly unit was allowed")

        return Side(name, op, server_pid, env.redis_pid)

    rows = await compare(
        env,
        "lever deny cache: ratelimit.Check of denied keys",
        side("Coord, denials remembered", remembering, pid),
        [side("Coord, every check to Redis", asking, env.coord_pid)],
    )
    return rows + redis_cpu_rows(rows, "lever deny cache: Redis CPU per denied check", "µs/check")


BENCHMARKS = (
    Benchmark("levers.uvloop", bench_uvloop),
    Benchmark("levers.hiredis", bench_hiredis),
    Benchmark("levers.coalesce", bench_coalesce),
    Benchmark("levers.workers", bench_workers),
    Benchmark("levers.get_stream", bench_get_stream),
    Benchmark("levers.set_stream", bench_set_stream),
    Benchmark("levers.deny_cache", bench_deny_cache),
)
