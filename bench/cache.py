"""Cache: Get (hit) and Set of 100-byte values through Coord, against what a user would do instead.

Baselines, all in the same run:
- redis-py asyncio running Coord's own Lua script (EVALSHA get.lua / set.lua with the very keys and
  arguments Coord sends): the cost of the same atomic work without the gRPC hop.
- redis-py asyncio plain GET / SET PX: what most users compare a cache against (no version, no
  conditions, no atomic value+TTL+version).
- the gRPC echo floor: the fastest unary RPC this machine can serve from Python.

Plus Redis memory per entry: Coord's hash (value + version, with a TTL) against a plain string key.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord_server.cache.keys import CacheKeys
from coord_server.redis import ScriptSet

from ._harness import Benchmark, Env, Row, Side, compare, progress
from .floor import echo_side

KEYS = 1000  # distinct keys the operations cycle through
VALUE = b"v" * 100
TTL_MS = 60_000
BATCH = 100
TENANT = "default"  # the tenant a Coord server without authentication uses


def _user_keys(count: int, prefix: str = "bench:") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(count)]


def _set_request(key: str) -> cache_pb2.SetRequest:
    return cache_pb2.SetRequest(key=key, value=VALUE, ttl=Duration(seconds=TTL_MS // 1000))


async def _coord_set_all(stub: cache_pb2_grpc.CacheServiceAsyncStub, keys: list[str]) -> None:
    for i in range(0, len(keys), BATCH):
        batch = [_set_request(k) for k in keys[i : i + BATCH]]
        reply = await stub.BatchSet(cache_pb2.BatchSetRequest(requests=batch))
        if any(r.outcome != cache_pb2.WRITE_OUTCOME_STORED for r in reply.responses):
            raise RuntimeError("Coord did not store every preloaded entry")


async def _plain_set_all(env: Env, keys: list[str]) -> None:
    pipe = env.redis.pipeline(transaction=False)
    for key in keys:
        pipe.set(key, VALUE, px=TTL_MS)
    await pipe.execute()


class _Sides:
    """Coord and the Redis baselines for one operation, sharing keys and scripts."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.stub = cache_pb2_grpc.CacheServiceStub(env.coord)
        self.scripts = ScriptSet("coord_server.cache")
        self.keys = _user_keys(KEYS)
        coord_keys = CacheKeys(TENANT)
        self.both = [coord_keys.both(k) for k in self.keys]

    async def load_scripts(self) -> None:
        for script in self.scripts:
            await self.env.redis.script_load(script.source)

    def floor(self) -> Side:
        return echo_side(self.env.floor, VALUE, self.env.floor_pid)


async def bench_get(env: Env) -> list[Row]:
    s = _Sides(env)
    await s.load_scripts()
    await _coord_set_all(s.stub, s.keys)
    await _plain_set_all(env, s.keys)
    requests = [cache_pb2.GetRequest(key=k) for k in s.keys]
    probe = await s.stub.Get(requests[0])
    if not probe.entry.found or probe.entry.value != VALUE:
        raise RuntimeError("Coord Get missed a preloaded key")
    sha = s.scripts["get"].sha
    redis = env.redis

    async def coord(i: int) -> None:
        await s.stub.Get(requests[i % KEYS])

    async def lua(i: int) -> None:
        await redis.evalsha(sha, 1, s.both[i % KEYS][0])

    async def plain(i: int) -> None:
        await redis.get(s.keys[i % KEYS])

    return await compare(
        env,
        "cache.Get (hit, 100 B)",
        Side("Coord", coord, env.coord_pid),
        [
            Side("redis-py EVALSHA get.lua", lua, env.redis_pid),
            Side("redis-py GET", plain, env.redis_pid),
            s.floor(),
        ],
    )


async def bench_set(env: Env) -> list[Row]:
    s = _Sides(env)
    await s.load_scripts()
    requests = [_set_request(k) for k in s.keys]
    sha = s.scripts["set"].sha
    redis = env.redis

    async def coord(i: int) -> None:
        await s.stub.Set(requests[i % KEYS])

    async def lua(i: int) -> None:
        entry, tomb = s.both[i % KEYS]
        await redis.evalsha(sha, 2, entry, tomb, VALUE, TTL_MS, 0, "0", "", "0")

    async def plain(i: int) -> None:
        await redis.set(s.keys[i % KEYS], VALUE, px=TTL_MS)

    return await compare(
        env,
        "cache.Set (100 B, ttl 60 s)",
        Side("Coord", coord, env.coord_pid),
        [
            Side("redis-py EVALSHA set.lua", lua, env.redis_pid),
            Side("redis-py SET PX", plain, env.redis_pid),
            s.floor(),
        ],
    )


async def _used_memory(env: Env) -> int:
    info = await env.redis.info("memory")
    return int(info["used_memory"])


async def bench_memory(env: Env) -> list[Row]:
    """``used_memory`` growth per entry, over ``plan.memory_keys`` entries of 100 B, each with a TTL."""
    count = env.plan.memory_keys
    keys = _user_keys(count, "mem:")
    stub = cache_pb2_grpc.CacheServiceStub(env.coord)
    await env.redis.flushall()
    before = await _used_memory(env)
    await _coord_set_all(stub, keys)
    coord = (await _used_memory(env) - before) / count
    await env.redis.flushall()
    before = await _used_memory(env)
    await _plain_set_all(env, keys)
    plain = (await _used_memory(env) - before) / count
    await env.redis.flushall()
    progress(f"cache memory: Coord {coord:.0f} bytes/key, plain SET {plain:.0f} bytes/key")
    return [Row("cache memory per entry (100 B)", "redis-py SET PX", "bytes/key", coord, plain)]


BENCHMARKS = (
    Benchmark("cache.get", bench_get),
    Benchmark("cache.set", bench_set),
    Benchmark("cache.memory", bench_memory),
)
