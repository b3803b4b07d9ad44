"""Cache: Get (hit) and Set of 100-byte values through Coord, against what a user would do instead.

Baselines, all in the same run:
- redis-py asyncio running Coord's own Lua script (EVALSHA get.lua / set.lua with the very keys and
  arguments Coord sends): the cost of the same atomic work without the gRPC hop.
- redis-py asyncio plain GET / SET PX: what most users compare a cache against (no version, no
  conditions, no atomic value+TTL+version).
- the gRPC echo floor: the fastest unary RPC this machine can serve from Python.

Plus Redis memory per entry for 16 B to 4 KiB values: Coord's entry (one string, a packed header
then the value, with a TTL) against a plain string key, and the cost of tags: tagged Get and Set
against the same untagged calls through the same Coord.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

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


def _set_request(key: str, tags: tuple[str, ...] = ()) -> cache_pb2.SetRequest:
    return cache_pb2.SetRequest(key=key, value=VALUE, ttl=Duration(seconds=TTL_MS // 1000), tags=tags)


def _tags_of(i: int) -> tuple[str, ...]:
    """Two tags per entry, as an application would: one shared by every entry, one by a tenth."""
    return ("bench:all", f"bench:group:{i % 10}")


async def _coord_set_all(
    stub: cache_pb2_grpc.CacheServiceAsyncStub, keys: list[str], *, tagged: bool = False
) -> None:
    for i in range(0, len(keys), BATCH):
        batch = [
            _set_request(k, _tags_of(i + j) if tagged else ()) for j, k in enumerate(keys[i : i + BATCH])
        ]
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
    coord_keys = CacheKeys(TENANT)
    channel = coord_keys.invalidations()  # as Coord sends it (COORD_CACHE_INVALIDATIONS on)
    lease_keys = [coord_keys.all(k) for k in s.keys]  # entry, tombstone, lease and its queue

    async def coord(i: int) -> None:
        await s.stub.Set(requests[i % KEYS])

    async def lua(i: int) -> None:
        await redis.evalsha(sha, 6, *lease_keys[i % KEYS], VALUE, TTL_MS, 0, "0", "", "0", channel, "")

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


async def bench_tags(env: Env) -> list[Row]:
    """The cost of tags through one Coord: a Get of a tagged entry (two Redis round trips: the entry,
    then its tags' generations) and a tagged Set (the generations first, then set.lua), each against
    the same call on an untagged entry."""
    s = _Sides(env)
    tagged_keys = _user_keys(KEYS, "tagged:")
    await _coord_set_all(s.stub, s.keys)
    await _coord_set_all(s.stub, tagged_keys, tagged=True)
    gets = [cache_pb2.GetRequest(key=k) for k in s.keys]
    tagged_gets = [cache_pb2.GetRequest(key=k) for k in tagged_keys]
    probe = await s.stub.Get(tagged_gets[0])
    if not probe.entry.found:
        raise RuntimeError("Coord Get missed a preloaded tagged key")
    sets = [_set_request(k) for k in s.keys]
    tagged_sets = [_set_request(k, _tags_of(i)) for i, k in enumerate(tagged_keys)]

    async def get_tagged(i: int) -> None:
        await s.stub.Get(tagged_gets[i % KEYS])

    async def get_plain(i: int) -> None:
        await s.stub.Get(gets[i % KEYS])

    async def set_tagged(i: int) -> None:
        await s.stub.Set(tagged_sets[i % KEYS])

    async def set_plain(i: int) -> None:
        await s.stub.Set(sets[i % KEYS])

    rows = await compare(
        env,
        "cache.tagged Get (hit, 100 B, 2 tags)",
        Side("Coord", get_tagged, env.coord_pid),
        [Side("Coord untagged Get", get_plain, env.coord_pid)],
    )
    rows += await compare(
        env,
        "cache.tagged Set (100 B, 2 tags)",
        Side("Coord", set_tagged, env.coord_pid),
        [Side("Coord untagged Set", set_plain, env.coord_pid)],
    )
    return rows


async def _used_memory(env: Env) -> int:
    """Redis ``used_memory`` without the clients' buffers and the script cache: Coord's pipelined
    BatchSets leave grown query buffers behind for a while, and its first calls cache its scripts,
    neither of which an entry costs."""
    info = await env.redis.info("memory")
    extra = int(info.get("mem_clients_normal", 0)) + int(info.get("used_memory_scripts", 0))
    return int(info["used_memory"]) - extra


# Value sizes of the memory rows: a small one (Redis keeps strings up to 44 bytes inside their object),
# the 100 B of the other rows, and two whose header is lost in the allocator's size classes.
MEMORY_SIZES = ((16, "16 B"), (100, "100 B"), (1024, "1 KiB"), (4096, "4 KiB"))


async def _coord_fill(stub: cache_pb2_grpc.CacheServiceStub, keys: list[str], value: bytes) -> None:
    ttl = Duration(seconds=TTL_MS // 1000)
    for i in range(0, len(keys), BATCH):
        batch = [cache_pb2.SetRequest(key=k, value=value, ttl=ttl) for k in keys[i : i + BATCH]]
        reply = await stub.BatchSet(cache_pb2.BatchSetRequest(requests=batch))
        if any(r.outcome != cache_pb2.WRITE_OUTCOME_STORED for r in reply.responses):
            raise RuntimeError("Coord did not store every entry")


async def _plain_fill(env: Env, keys: list[str], value: bytes) -> None:
    for i in range(0, len(keys), 1000):
        pipe = env.redis.pipeline(transaction=False)
        for key in keys[i : i + 1000]:
            pipe.set(key, value, px=TTL_MS)
        await pipe.execute()


async def _hash_fill(env: Env, keys: list[str], value: bytes) -> None:
    """The layout before this one, for the log: a hash (v, ver, x) per entry, as set.lua wrote it."""
    entries = CacheKeys(TENANT)
    expire_ms = (await env.redis.time())[0] * 1000 + TTL_MS
    for i in range(0, len(keys), 1000):
        pipe = env.redis.pipeline(transaction=False)
        for key in keys[i : i + 1000]:
            entry = entries.entry(key)
            pipe.hset(entry, mapping={"v": value, "ver": "1796204443762224", "x": str(expire_ms)})
            pipe.pexpireat(entry, expire_ms)
        await pipe.execute()


async def _per_key(env: Env, count: int, fill: Awaitable[None]) -> float:
    """``used_memory`` growth per key while ``fill`` writes ``count`` keys into an empty Redis."""
    await env.redis.flushall()
    before = await _used_memory(env)
    await fill
    # Redis grows its key tables by rehashing them step by step, holding the old and the new table
    # meanwhile; its cron finishes the job within a few runs (10 a second).
    await asyncio.sleep(0.5)
    grown = (await _used_memory(env) - before) / count
    await env.redis.flushall()
    return grown


async def bench_memory(env: Env) -> list[Row]:
    """``used_memory`` growth per entry over ``plan.memory_keys`` entries, each with a TTL, for each
    of :data:`MEMORY_SIZES`: Coord's entry (one string: a 14-byte header, then the value) against a
    plain ``SET PX`` of the same value under the user's key (Coord's Redis key adds its prefix)."""
    count = env.plan.memory_keys
    keys = _user_keys(count, "mem:")
    stub = cache_pb2_grpc.CacheServiceStub(env.coord)
    rows = []
    # The first writes through a server allocate what Redis keeps for good (a few hundred KiB, not
    # per entry): measured once that is done.
    await _per_key(env, count, _coord_fill(stub, keys, b"v"))
    for size, label in MEMORY_SIZES:
        value = b"v" * size
        coord = await _per_key(env, count, _coord_fill(stub, keys, value))
        plain = await _per_key(env, count, _plain_fill(env, keys, value))
        old = await _per_key(env, count, _hash_fill(env, keys, value))
        progress(
            f"cache memory, {label} values: Coord {coord:.0f} bytes/key, plain SET {plain:.0f} "
            f"({coord / plain:.2f}x); the former hash layout {old:.0f} ({old / plain:.2f}x)"
        )
        rows.append(Row(f"cache memory per entry ({label})", "redis-py SET PX", "bytes/key", coord, plain))
    return rows


BENCHMARKS = (
    Benchmark("cache.get", bench_get),
    Benchmark("cache.set", bench_set),
    Benchmark("cache.memory", bench_memory),
    Benchmark("cache.tags", bench_tags),
)
