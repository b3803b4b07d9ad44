"""Collections: the common operation of each structure through Coord, against redis-py doing the same
thing directly on the plain Redis structure, and Redis memory per element.

Operations (Coord: the service's gRPC async stub; baseline: redis-py asyncio, one command per call):
- ``collections.map.set`` / ``.get``: one 20-byte value in one field of a map of 100 fields (10-byte
  names), against ``HSET`` / ``HGET``.
- ``collections.list.push`` / ``.pop``: one 20-byte value to the back, or from the front without a
  wait, against ``RPUSH`` / ``LPOP``. A pop that finds its list empty refills it with 1,000 values
  (through the same side) before the next one, so neither side ever times empty pops.
- ``collections.set.add`` / ``.contains``: a new 10-byte member each call, or a member the set holds
  (100 members), against ``SADD`` / ``SISMEMBER``.
- ``collections.sorted_set.increment`` / ``.rank`` / ``.top10``: leaderboards of 1,000 players;
  Increment a player's score by 1, GetRank (descending: rank and score in one call) and RangeByRank
  0..9 descending, against ``ZINCRBY``, ``ZREVRANK`` + ``ZSCORE`` (one pipeline: Redis 7.0's
  ``ZREVRANK`` has no ``WITHSCORE``) and ``ZREVRANGE 0 9 WITHSCORES``.

Every Coord write also refreshes the collection's TTL and version in the same script; the plain
baselines set no TTL (what a user calling ``HSET`` does). A third side is the gRPC echo floor, echoing
the very bytes of the Coord request: the goal is Coord ≥ 0.7x of it, as for the cache.

To keep nine operations x three sides x two levels short (about three minutes), these rows run rounds
of at most ``ROUND_S`` seconds after a warm-up of at most ``WARMUP_S`` (the plan's when shorter); the
rows' JSON says so (``round_s``).

``collections.<structure>.memory``: Redis memory per element of collections of 100 and 1,000
elements, Coord against the plain structure holding the same elements with a TTL. ``MEMORY USAGE ...
SAMPLES 0`` (every element counted) of Coord's data key plus its meta hash (kind, version, expiry),
against that of the plain key. Neither figure holds the entry in Redis's expires table that each key
with a TTL adds (Coord: two keys, plain: one). Goal: ≤ 1.2x for 100+ elements.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Awaitable, Callable, Sequence

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from coord.collections.v1 import (
    collection_pb2,
    list_pb2,
    list_pb2_grpc,
    map_pb2,
    map_pb2_grpc,
    set_pb2,
    set_pb2_grpc,
    sorted_set_pb2,
    sorted_set_pb2_grpc,
)
from coord_server.collections.keys import CollectionKeys

from ._harness import Benchmark, Env, Row, Side, compare, progress
from .floor import FLOOR_NAME, echo_side

TENANT = "default"  # the tenant a Coord server without authentication uses
NAMES = 100  # collections per structure the operations cycle through
ELEMENTS = 100  # fields or members preloaded in each map or set
BOARDS = 10  # leaderboards (sorted sets) the operations cycle through
PLAYERS = 1000  # members of each leaderboard
REFILL = 1000  # values a pop list gets when it is found empty (and at the start)
VALUE = b"v" * 20
TTL_MS = 60_000
OPTIONS = collection_pb2.WriteOptions(ttl=Duration(seconds=TTL_MS // 1000))
ROUND_S = 1.0
WARMUP_S = 0.5
FLOOR_GOAL = 0.7
MEMORY_SIZES = (100, 1000)
MEMORY_COLLECTIONS = 10  # collections per size and side, so allocator rounding averages out
MEMORY_GOAL = 1.2

_keys = CollectionKeys(TENANT)


def _field(j: int) -> str:
    return f"field{j:05d}"  # 10 bytes


def _member(j: int) -> str:
    return f"member{j:04d}"  # 10 bytes


def _player(j: int) -> str:
    return f"player{j:04d}"  # 10 bytes


def _names(kind: str, count: int = NAMES) -> list[str]:
    return [f"bench:{kind}:{i:04d}" for i in range(count)]


def _pairs(names: int, elements: int) -> list[tuple[int, int]]:
    """Every (collection, element) pair once, in a fixed shuffled order: the calls of a round spread
    over all collections and all positions in them."""
    pairs = [(n, e) for n in range(names) for e in range(elements)]
    random.Random(17).shuffle(pairs)
    return pairs


def _short(env: Env) -> Env:
    plan = env.plan
    short = dataclasses.replace(plan, duration=min(plan.duration, ROUND_S), warmup=min(plan.warmup, WARMUP_S))
    return dataclasses.replace(env, plan=short)


async def _compare(env: Env, operation: str, coord: Side, plain: Side, request: Message) -> list[Row]:
    """Coord against the plain command and the echo floor (echoing ``request``'s bytes)."""
    short = _short(env)
    floor = echo_side(env.floor, request.SerializeToString(), env.floor_pid)
    rows = await compare(short, operation, coord, [plain, floor])
    for row in rows:
        if row.baseline_name == FLOOR_NAME:
            verdict = "met" if row.ratio >= FLOOR_GOAL else "missed"
            progress(
                f"{operation} c={row.concurrency}: Coord {row.ratio:.2f}x the echo floor "
                f"(goal >= {FLOOR_GOAL}x: {verdict})"
            )
    extra = {"round_s": short.plan.duration}
    return [dataclasses.replace(row, extra=row.extra | extra) for row in rows]


async def _unlink(env: Env, keys: Sequence[str]) -> None:
    for i in range(0, len(keys), 500):
        await env.redis.unlink(*keys[i : i + 500])


def _coord_keys(names: Sequence[str]) -> list[str]:
    """Every key Coord may have written for these collections (a list's waiter queue keys too)."""
    return [key for name in names for key in _keys.all(name)]


# -- maps ------------------------------------------------------------------------------------------


async def _coord_maps(stub: map_pb2_grpc.MapServiceAsyncStub, names: Sequence[str], size: int) -> None:
    fields = [map_pb2.MapField(field=_field(j), value=VALUE) for j in range(size)]
    for name in names:
        reply = await stub.Set(map_pb2.MapServiceSetRequest(name=name, fields=fields, options=OPTIONS))
        if reply.collection.length != size:
            raise RuntimeError(f"Coord map {name!r} holds {reply.collection.length} fields, not {size}")


async def _plain_maps(env: Env, keys: Sequence[str], size: int) -> None:
    mapping = {_field(j): VALUE for j in range(size)}
    pipe = env.redis.pipeline(transaction=False)
    for key in keys:
        pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
        pipe.pexpire(key, TTL_MS)
    await pipe.execute()


class _Maps:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.stub = map_pb2_grpc.MapServiceStub(env.coord)
        self.names = _names("map")
        self.plain = _names("plain:map")
        self.pairs = _pairs(NAMES, ELEMENTS)

    async def __aenter__(self) -> _Maps:
        await _coord_maps(self.stub, self.names, ELEMENTS)
        await _plain_maps(self.env, self.plain, ELEMENTS)
        return self

    async def __aexit__(self, *_: object) -> None:
        await _unlink(self.env, [*_coord_keys(self.names), *self.plain])


async def bench_map_set(env: Env) -> list[Row]:
    async with _Maps(env) as m:
        requests = [
            map_pb2.MapServiceSetRequest(
                name=m.names[n], fields=[map_pb2.MapField(field=_field(f), value=VALUE)], options=OPTIONS
            )
            for n, f in m.pairs
        ]
        plain = [(m.plain[n], _field(f)) for n, f in m.pairs]
        count, stub, redis = len(requests), m.stub, env.redis

        async def coord(i: int) -> None:
            await stub.Set(requests[i % count])

        async def hset(i: int) -> None:
            key, field = plain[i % count]
            await redis.hset(key, field, VALUE)

        return await _compare(
            env,
            "map.Set (1 field, 20 B, map of 100)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py HSET", hset, env.redis_pid),
            requests[0],
        )


async def bench_map_get(env: Env) -> list[Row]:
    async with _Maps(env) as m:
        requests = [map_pb2.MapServiceGetRequest(name=m.names[n], fields=[_field(f)]) for n, f in m.pairs]
        plain = [(m.plain[n], _field(f)) for n, f in m.pairs]
        probe = await m.stub.Get(requests[0])
        if not probe.values[0].found or probe.values[0].value != VALUE:
            raise RuntimeError("Coord map Get missed a preloaded field")
        count, stub, redis = len(requests), m.stub, env.redis

        async def coord(i: int) -> None:
            await stub.Get(requests[i % count])

        async def hget(i: int) -> None:
            key, field = plain[i % count]
            await redis.hget(key, field)

        return await _compare(
            env,
            "map.Get (1 field, 20 B, map of 100)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py HGET", hget, env.redis_pid),
            requests[0],
        )


# -- lists -----------------------------------------------------------------------------------------


async def bench_list_push(env: Env) -> list[Row]:
    stub = list_pb2_grpc.ListServiceStub(env.coord)
    names, plain = _names("list"), _names("plain:list")
    requests = [
        list_pb2.ListServicePushRequest(name=n, values=[VALUE], end=list_pb2.END_BACK, options=OPTIONS)
        for n in names
    ]
    probe = await stub.Push(requests[0])
    if probe.collection.length != 1:
        raise RuntimeError("Coord list Push did not create its list")
    redis = env.redis

    async def coord(i: int) -> None:
        await stub.Push(requests[i % NAMES])

    async def rpush(i: int) -> None:
        await redis.rpush(plain[i % NAMES], VALUE)

    try:
        return await _compare(
            env,
            "list.Push (1 value, 20 B, back)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py RPUSH", rpush, env.redis_pid),
            requests[0],
        )
    finally:
        await _unlink(env, [*_coord_keys(names), *plain])


async def bench_list_pop(env: Env) -> list[Row]:
    stub = list_pb2_grpc.ListServiceStub(env.coord)
    names, plain = _names("lpop"), _names("plain:lpop")
    refills = [
        list_pb2.ListServicePushRequest(
            name=n, values=[VALUE] * REFILL, end=list_pb2.END_BACK, options=OPTIONS
        )
        for n in names
    ]
    requests = [list_pb2.ListServicePopRequest(name=n, end=list_pb2.END_FRONT) for n in names]
    redis = env.redis
    for request in refills:
        await stub.Push(request)
    pipe = redis.pipeline(transaction=False)
    for key in plain:
        pipe.rpush(key, *([VALUE] * REFILL))
    await pipe.execute()
    probe = await stub.Pop(requests[0])
    if list(probe.values) != [VALUE]:
        raise RuntimeError("Coord list Pop did not take a preloaded value")

    async def coord(i: int) -> None:
        reply = await stub.Pop(requests[i % NAMES])
        if not reply.values:
            await stub.Push(refills[i % NAMES])

    async def lpop(i: int) -> None:
        key = plain[i % NAMES]
        if await redis.lpop(key) is None:
            await redis.rpush(key, *([VALUE] * REFILL))

    try:
        return await _compare(
            env,
            "list.Pop (1 value, 20 B, front, no wait)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py LPOP", lpop, env.redis_pid),
            requests[0],
        )
    finally:
        await _unlink(env, [*_coord_keys(names), *plain])


# -- sets ------------------------------------------------------------------------------------------


async def bench_set_add(env: Env) -> list[Row]:
    stub = set_pb2_grpc.SetServiceStub(env.coord)
    names, plain = _names("set"), _names("plain:set")
    redis = env.redis
    # A member no call has added yet, on each side: every Add changes its set (a new version).
    coord_seq, plain_seq = itertools.count(1), itertools.count(1)
    first = set_pb2.SetServiceAddRequest(name=names[0], members=["m000000000"], options=OPTIONS)

    async def coord(_: int) -> None:
        n = next(coord_seq)
        await stub.Add(
            set_pb2.SetServiceAddRequest(name=names[n % NAMES], members=[f"m{n:09d}"], options=OPTIONS)
        )

    async def sadd(_: int) -> None:
        n = next(plain_seq)
        await redis.sadd(plain[n % NAMES], f"m{n:09d}")

    probe = await stub.Add(first)
    if probe.added != 1:
        raise RuntimeError("Coord set Add did not add a new member")
    try:
        return await _compare(
            env,
            "set.Add (1 new member, 10 B)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py SADD", sadd, env.redis_pid),
            first,
        )
    finally:
        await _unlink(env, [*_coord_keys(names), *plain])


async def _coord_sets(stub: set_pb2_grpc.SetServiceAsyncStub, names: Sequence[str], size: int) -> None:
    members = [_member(j) for j in range(size)]
    for name in names:
        reply = await stub.Add(set_pb2.SetServiceAddRequest(name=name, members=members, options=OPTIONS))
        if reply.collection.length != size:
            raise RuntimeError(f"Coord set {name!r} holds {reply.collection.length} members, not {size}")


async def _plain_sets(env: Env, keys: Sequence[str], size: int) -> None:
    members = [_member(j) for j in range(size)]
    pipe = env.redis.pipeline(transaction=False)
    for key in keys:
        pipe.sadd(key, *members)
        pipe.pexpire(key, TTL_MS)
    await pipe.execute()


async def bench_set_contains(env: Env) -> list[Row]:
    stub = set_pb2_grpc.SetServiceStub(env.coord)
    names, plain = _names("set"), _names("plain:set")
    pairs = _pairs(NAMES, ELEMENTS)
    try:
        await _coord_sets(stub, names, ELEMENTS)
        await _plain_sets(env, plain, ELEMENTS)
        requests = [set_pb2.SetServiceContainsRequest(name=names[n], members=[_member(e)]) for n, e in pairs]
        keyed = [(plain[n], _member(e)) for n, e in pairs]
        probe = await stub.Contains(requests[0])
        if list(probe.contains) != [True]:
            raise RuntimeError("Coord set Contains missed a preloaded member")
        count, redis = len(requests), env.redis

        async def coord(i: int) -> None:
            await stub.Contains(requests[i % count])

        async def sismember(i: int) -> None:
            key, member = keyed[i % count]
            await redis.sismember(key, member)

        return await _compare(
            env,
            "set.Contains (1 member, set of 100)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py SISMEMBER", sismember, env.redis_pid),
            requests[0],
        )
    finally:
        await _unlink(env, [*_coord_keys(names), *plain])


# -- sorted sets (leaderboards) --------------------------------------------------------------------


async def _coord_boards(
    stub: sorted_set_pb2_grpc.SortedSetServiceAsyncStub, names: Sequence[str], size: int
) -> None:
    members = [sorted_set_pb2.ScoredMember(member=_player(j), score=float(j)) for j in range(size)]
    for name in names:
        reply = await stub.Put(
            sorted_set_pb2.SortedSetServicePutRequest(name=name, members=members, options=OPTIONS)
        )
        if reply.collection.length != size:
            raise RuntimeError(
                f"Coord sorted set {name!r} holds {reply.collection.length} members, not {size}"
            )


async def _plain_boards(env: Env, keys: Sequence[str], size: int) -> None:
    mapping = {_player(j): float(j) for j in range(size)}
    pipe = env.redis.pipeline(transaction=False)
    for key in keys:
        pipe.zadd(key, mapping)
        pipe.pexpire(key, TTL_MS)
    await pipe.execute()


class _Boards:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.stub = sorted_set_pb2_grpc.SortedSetServiceStub(env.coord)
        self.names = _names("zset", BOARDS)
        self.plain = _names("plain:zset", BOARDS)
        self.pairs = _pairs(BOARDS, PLAYERS)

    async def __aenter__(self) -> _Boards:
        await _coord_boards(self.stub, self.names, PLAYERS)
        await _plain_boards(self.env, self.plain, PLAYERS)
        return self

    async def __aexit__(self, *_: object) -> None:
        await _unlink(self.env, [*_coord_keys(self.names), *self.plain])


async def bench_sorted_set_increment(env: Env) -> list[Row]:
    async with _Boards(env) as b:
        requests = [
            sorted_set_pb2.SortedSetServiceIncrementRequest(
                name=b.names[n], member=_player(p), delta=1.0, options=OPTIONS
            )
            for n, p in b.pairs
        ]
        plain = [(b.plain[n], _player(p)) for n, p in b.pairs]
        count, stub, redis = len(requests), b.stub, env.redis

        async def coord(i: int) -> None:
            await stub.Increment(requests[i % count])

        async def zincrby(i: int) -> None:
            key, member = plain[i % count]
            await redis.zincrby(key, 1.0, member)

        return await _compare(
            env,
            "sorted_set.Increment (1 player, board of 1,000)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py ZINCRBY", zincrby, env.redis_pid),
            requests[0],
        )


async def bench_sorted_set_rank(env: Env) -> list[Row]:
    async with _Boards(env) as b:
        requests = [
            sorted_set_pb2.SortedSetServiceGetRankRequest(
                name=b.names[n], members=[_player(p)], order=sorted_set_pb2.ORDER_DESCENDING
            )
            for n, p in b.pairs
        ]
        plain = [(b.plain[n], _player(p)) for n, p in b.pairs]
        n0, p0 = b.pairs[0]
        probe = await b.stub.GetRank(requests[0])
        if not probe.ranks[0].found or probe.ranks[0].rank != PLAYERS - 1 - p0:
            raise RuntimeError(f"Coord GetRank of {_player(p0)} in {b.names[n0]!r}: {probe.ranks[0]}")
        count, stub, redis = len(requests), b.stub, env.redis

        async def coord(i: int) -> None:
            await stub.GetRank(requests[i % count])

        async def zrevrank(i: int) -> None:
            key, member = plain[i % count]
            pipe = redis.pipeline(transaction=False)
            pipe.zrevrank(key, member)
            pipe.zscore(key, member)
            await pipe.execute()

        return await _compare(
            env,
            "sorted_set.GetRank (descending, with score, board of 1,000)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py ZREVRANK + ZSCORE (pipeline)", zrevrank, env.redis_pid),
            requests[0],
        )


async def bench_sorted_set_top10(env: Env) -> list[Row]:
    async with _Boards(env) as b:
        window = sorted_set_pb2.RankWindow(start=0, stop=9)
        requests = [
            sorted_set_pb2.SortedSetServiceRangeByRankRequest(
                name=name, ranks=window, order=sorted_set_pb2.ORDER_DESCENDING
            )
            for name in b.names
        ]
        probe = await b.stub.RangeByRank(requests[0])
        if [m.member for m in probe.members] != [_player(PLAYERS - 1 - r) for r in range(10)]:
            raise RuntimeError("Coord RangeByRank did not return the top 10")
        stub, redis, plain = b.stub, env.redis, b.plain

        async def coord(i: int) -> None:
            await stub.RangeByRank(requests[i % BOARDS])

        async def zrevrange(i: int) -> None:
            await redis.zrevrange(plain[i % BOARDS], 0, 9, withscores=True)

        return await _compare(
            env,
            "sorted_set.RangeByRank (top 10, descending, board of 1,000)",
            Side("Coord", coord, env.coord_pid),
            Side("redis-py ZREVRANGE 0 9 WITHSCORES", zrevrange, env.redis_pid),
            requests[0],
        )


# -- memory ----------------------------------------------------------------------------------------


async def _usage(env: Env, keys: Sequence[str]) -> int:
    total = 0
    for key in keys:
        used = await env.redis.memory_usage(key, samples=0)
        if used is None:
            raise RuntimeError(f"no key {key!r} to measure")
        total += int(used)
    return total


Fill = Callable[[Sequence[str], int], Awaitable[None]]


async def _memory(
    env: Env, structure: str, element: str, baseline: str, *, coord_fill: Fill, plain_fill: Fill
) -> list[Row]:
    """Bytes per element of ``MEMORY_COLLECTIONS`` collections of each size, Coord against plain."""
    rows = []
    for size in MEMORY_SIZES:
        names = _names(f"mem:{structure}:{size}", MEMORY_COLLECTIONS)
        plain = _names(f"plain:mem:{structure}:{size}", MEMORY_COLLECTIONS)
        try:
            await coord_fill(names, size)
            await plain_fill(plain, size)
            elements = MEMORY_COLLECTIONS * size
            coord = await _usage(env, [key for name in names for key in _keys.both(name)]) / elements
            theirs = await _usage(env, plain) / elements
        finally:
            await _unlink(env, [*_coord_keys(names), *plain])
        ratio = coord / theirs
        verdict = "met" if ratio <= MEMORY_GOAL else "missed"
        progress(
            f"{structure} memory, {size} {element}s: Coord {coord:.1f} bytes/{element}, plain {theirs:.1f} "
            f"bytes/{element}: {ratio:.2f}x (goal <= {MEMORY_GOAL}x: {verdict})"
        )
        rows.append(
            Row(
                f"{structure} memory per {element} ({size:,} {element}s)",
                baseline,
                f"bytes/{element}",
                coord,
                theirs,
            )
        )
    return rows


async def bench_map_memory(env: Env) -> list[Row]:
    stub = map_pb2_grpc.MapServiceStub(env.coord)

    async def coord(names: Sequence[str], size: int) -> None:
        await _coord_maps(stub, names, size)

    async def plain(keys: Sequence[str], size: int) -> None:
        await _plain_maps(env, keys, size)

    return await _memory(env, "map", "field", "plain HASH with a TTL", coord_fill=coord, plain_fill=plain)


def _list_values(size: int) -> list[bytes]:
    return [f"value{j:015d}".encode() for j in range(size)]  # 20 bytes, distinct


async def bench_list_memory(env: Env) -> list[Row]:
    stub = list_pb2_grpc.ListServiceStub(env.coord)

    async def coord(names: Sequence[str], size: int) -> None:
        for name in names:
            reply = await stub.Push(
                list_pb2.ListServicePushRequest(name=name, values=_list_values(size), options=OPTIONS)
            )
            if reply.collection.length != size:
                raise RuntimeError(f"Coord list {name!r} holds {reply.collection.length} values, not {size}")

    async def plain(keys: Sequence[str], size: int) -> None:
        pipe = env.redis.pipeline(transaction=False)
        for key in keys:
            pipe.rpush(key, *_list_values(size))
            pipe.pexpire(key, TTL_MS)
        await pipe.execute()

    return await _memory(env, "list", "value", "plain LIST with a TTL", coord_fill=coord, plain_fill=plain)


async def bench_set_memory(env: Env) -> list[Row]:
    stub = set_pb2_grpc.SetServiceStub(env.coord)

    async def coord(names: Sequence[str], size: int) -> None:
        await _coord_sets(stub, names, size)

    async def plain(keys: Sequence[str], size: int) -> None:
        await _plain_sets(env, keys, size)

    return await _memory(env, "set", "member", "plain SET with a TTL", coord_fill=coord, plain_fill=plain)


async def bench_sorted_set_memory(env: Env) -> list[Row]:
    stub = sorted_set_pb2_grpc.SortedSetServiceStub(env.coord)

    async def coord(names: Sequence[str], size: int) -> None:
        await _coord_boards(stub, names, size)

    async def plain(keys: Sequence[str], size: int) -> None:
        await _plain_boards(env, keys, size)

    return await _memory(
        env, "sorted_set", "member", "plain ZSET with a TTL", coord_fill=coord, plain_fill=plain
    )


BENCHMARKS = (
    Benchmark("collections.map.set", bench_map_set),
    Benchmark("collections.map.get", bench_map_get),
    Benchmark("collections.map.memory", bench_map_memory),
    Benchmark("collections.list.push", bench_list_push),
    Benchmark("collections.list.pop", bench_list_pop),
    Benchmark("collections.list.memory", bench_list_memory),
    Benchmark("collections.set.add", bench_set_add),
    Benchmark("collections.set.contains", bench_set_contains),
    Benchmark("collections.set.memory", bench_set_memory),
    Benchmark("collections.sorted_set.increment", bench_sorted_set_increment),
    Benchmark("collections.sorted_set.rank", bench_sorted_set_rank),
    Benchmark("collections.sorted_set.top10", bench_sorted_set_top10),
    Benchmark("collections.sorted_set.memory", bench_sorted_set_memory),
)
