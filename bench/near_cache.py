"""Near cache: hot-key reads through the Python client's near cache against redis-py GET of the same
keys, and how long an invalidation takes to reach a watcher.

``near_cache.reads``: K workers read ``HOT`` keys (100-byte values) back to back, and another client
writes them meanwhile: every 100th read hands a write of one of them to that client, a process of
its own (``WRITERS`` writes at once), so there is one write per 100 reads and the hot keys keep
being changed. A reader does not wait for the write it handed over, unless the other client falls
``BACKLOG`` writes behind: then it waits for room, so the writes keep up with the reads. (The other
client has its own process, as it has in production: sharing the readers' event loop, its writes
waited for 64 busy readers to yield and held them up in turn.) Coord:
``AsyncClient(near_cache=NearCache(prefixes=["hot:"]))`` reads (a hit is answered from memory; an
invalidation that carries the new entry replaces the held one; one that does not makes the next
read go to Coord); the other client makes plain Sets (the Set, its Lua script and its PUBLISH) with
client/go's ``coord-bench -write -stream`` when Go is installed (over one SetStream, the form a
process that writes often uses: a stream message costs the server about a quarter less than a unary
call), else with Python's generated stub (bench._writer, unary Set): on a 2-core machine every
microsecond the other client spends is taken from the server, and a production writer runs
elsewhere. Baseline: redis-py asyncio ``GET`` of the same keys
as plain strings, and ``SET PX`` by the other client through redis-py (at the baseline's rate, a few
hundred a second, it costs little). Only reads are counted. The Coord row also reports the near
cache's hit ratio, the entries replaced in place over its rounds, and which other client wrote.

``near_cache.invalidation``: one operation is one write of a watched key by another client, and it
ends when a watcher holds the invalidation; the figure is that delay, from just before the write is
sent to the watcher reading it (``time.perf_counter_ns`` of this process), p50 and p99. Coord: unary
Set on one channel, a ``WatchInvalidations`` stream read on another (the path every near cache's
invalidations take: script PUBLISH, the server's subscription, the stream). Baseline: redis-py
``PUBLISH`` to a channel a redis-py ``PubSub`` connection listens on: the bare Pub/Sub hop Coord's
invalidations ride on. At c=1: the staleness bound of a near cache under light load.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import redis.asyncio as aioredis
from google.protobuf.duration_pb2 import Duration

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord_client import AsyncClient, NearCache

from ._harness import Benchmark, Env, Row, Side, compare, progress, sample_rows
from .clients import go_bench

HOT = 100  # hot keys the readers cycle through
VALUE = b"v" * 100
TTL_S = 600
WRITE_EVERY = 100  # one write by another client per this many reads (1%)
WRITERS = 16  # writes the other client makes at once
BACKLOG = 64  # writes handed over and not yet done before a reader waits
LATENCY_KEYS = 1000
READY_WITHIN = 10.0  # seconds the near cache's stream has to become ready
ROOT = Path(__file__).resolve().parent.parent  # where ``python -m bench._writer`` runs


async def _ready(near: NearCache) -> None:
    end = time.monotonic() + READY_WITHIN
    while not near.ready:
        if time.monotonic() > end:
            raise RuntimeError(f"the near cache's stream was not ready within {READY_WITHIN:g}s")
        await asyncio.sleep(0.01)


def _python_writer(kind: str, target: str) -> list[str]:
    args = ["hot:", str(len(VALUE)), str(TTL_S), str(WRITERS)]
    return [sys.executable, "-m", "bench._writer", kind, target, *args]


class _OtherClient:
    """Another client's writes, made by a process of its own (bench._writer, see the module docstring):
    :meth:`hand` sends it the number of a key to write and waits only while ``BACKLOG`` writes are
    handed over and not yet done."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self._proc = proc
        self._name = name
        self._room = asyncio.Semaphore(BACKLOG)  # one wake-up per write done, first come first served
        self._acks = asyncio.create_task(self._read_acks())

    @classmethod
    async def start(cls, command: list[str]) -> _OtherClient:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            # One thread runs Go code: with more, idle threads spin looking for work between writes,
            # CPU taken from the server on a small machine.
            env={**os.environ, "GOMAXPROCS": "1"},
        )
        return cls(proc, " ".join(command[:3]))

    @staticmethod
    async def coord(target: str) -> tuple[str, list[str]]:
        """The other client of Coord: client/go's coord-bench -write when Go is there, else Python's
        generated stub (bench._writer). Which one, and its command."""
        go = await asyncio.to_thread(go_bench, target)
        if go is not None:
            sizes = ["-size", str(len(VALUE)), "-ttl", f"{TTL_S}s", "-c", str(WRITERS)]
            return "Go module", [str(go), "-write", "hot:", *sizes, "-stream", "-target", target]
        return "Python stub", _python_writer("coord", target)

    @staticmethod
    def redis(url: str) -> list[str]:
        """The other client of Redis: redis-py (bench._writer)."""
        return _python_writer("redis", url)

    async def hand(self, number: int) -> None:
        await self._room.acquire()
        if self._acks.done():  # the process failed or ended: its error, not a wait forever
            self._acks.result()
        assert self._proc.stdin is not None
        self._proc.stdin.write(b"%d\n" % number)

    async def _read_acks(self) -> None:
        assert self._proc.stdout is not None
        try:
            while chunk := await self._proc.stdout.read(4096):
                if b"!" in chunk:
                    raise RuntimeError(f"a write of the other client ({self._name}) failed (see its stderr)")
                for _ in range(len(chunk)):
                    self._room.release()
            code = await self._proc.wait()
            raise RuntimeError(f"the other client ({self._name}) ended (exit status {code})")
        finally:
            for _ in range(BACKLOG):  # every reader waiting for room finds the error
                self._room.release()

    async def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 10)
        except TimeoutError:
            self._proc.kill()  # our own child, by its handle
            await self._proc.wait()
        self._acks.cancel()
        await asyncio.gather(self._acks, return_exceptions=True)


async def bench_reads(env: Env) -> list[Row]:
    keys = [f"hot:{i:04d}" for i in range(HOT)]
    near = NearCache(prefixes=["hot:"])
    async with (
        AsyncClient(env.coord_target, timeout=10, near_cache=near) as reader,
        AsyncClient(env.coord_target, timeout=10) as writer,
    ):
        await writer.cache.batch_set(dict.fromkeys(keys, VALUE), ttl=TTL_S)
        await env.redis.mset(dict.fromkeys(keys, VALUE))
        await _ready(near)
        redis = env.redis
        other, command = await _OtherClient.coord(env.coord_target)
        progress(f"near cache: the other client writing to Coord is the {other}")
        coord_writes = await _OtherClient.start(command)
        redis_writes = await _OtherClient.start(_OtherClient.redis(env.redis_url))

        async def coord(i: int) -> None:
            if i % WRITE_EVERY == WRITE_EVERY - 1:
                await coord_writes.hand((i // WRITE_EVERY) % HOT)
            if not (await reader.cache.get(keys[i % HOT])).found:
                raise RuntimeError("a hot key went missing")

        async def plain(i: int) -> None:
            if i % WRITE_EVERY == WRITE_EVERY - 1:
                await redis_writes.hand((i // WRITE_EVERY) % HOT)
            if await redis.get(keys[i % HOT]) is None:
                raise RuntimeError("a hot key went missing")

        before = near.stats
        try:
            rows = await compare(
                env,
                f"cache near-cache reads ({HOT} hot keys, 100 B, 1% writes by another client)",
                Side("Coord near cache", coord, env.coord_pid),
                [Side("redis-py GET", plain, env.redis_pid)],
            )
        finally:
            await coord_writes.close()
            await redis_writes.close()
        after = near.stats
    hits, misses = after.hits - before.hits, after.misses - before.misses
    ratio = hits / (hits + misses) if hits + misses else 0.0
    updates = after.updates - before.updates
    progress(
        f"near cache: {ratio:.1%} hits, {after.invalidations - before.invalidations} invalidations "
        f"({updates} carried the new entry, kept), {after.flushes - before.flushes} flushes"
    )
    return [
        Row(
            r.operation,
            r.baseline_name,
            r.unit,
            r.coord,
            r.baseline,
            r.concurrency,
            r.coord_stats,
            r.baseline_stats,
            {
                **r.extra,
                "near_cache_hit_ratio": round(ratio, 4),
                "near_cache_updates": updates,
                "other_client": other,
            },
        )
        for r in rows
    ]


class _Deliveries:
    """Writes waiting for their invalidation (by key), and the delays measured (ns)."""

    def __init__(self) -> None:
        self.waiting: dict[str, tuple[int, asyncio.Future[None]]] = {}
        self.samples: list[int] = []

    def expect(self, key: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[key] = (time.perf_counter_ns(), future)
        return future

    def arrived(self, key: str) -> None:
        now = time.perf_counter_ns()
        waiting = self.waiting.pop(key, None)
        if waiting is not None and not waiting[1].done():
            self.samples.append(now - waiting[0])
            waiting[1].set_result(None)

    def drain(self) -> list[int]:
        samples, self.samples = self.samples, []
        return samples


@contextlib.asynccontextmanager
async def _coord_watcher(env: Env, deliveries: _Deliveries) -> AsyncIterator[None]:
    channel = grpc.aio.insecure_channel(env.coord_target)  # the watcher's own connection
    call = cache_pb2_grpc.CacheServiceStub(channel).WatchInvalidations(
        cache_pb2.WatchInvalidationsRequest(prefixes=["lat:"])
    )
    ready = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async for message in call:
            kind = message.WhichOneof("kind")
            if kind == "ready" and not ready.done():
                ready.set_result(None)
            elif kind == "invalidation":
                deliveries.arrived(message.invalidation.key)
            elif kind == "flush":
                progress("near cache latency: the watcher got a flush")

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(ready, READY_WITHIN)
        yield
    finally:
        call.cancel()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await channel.close(None)


@contextlib.asynccontextmanager
async def _redis_subscriber(env: Env, channel: str, deliveries: _Deliveries) -> AsyncIterator[None]:
    client = aioredis.Redis.from_url(env.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    while (await pubsub.get_message(timeout=READY_WITHIN)) is None:
        pass  # the subscribe confirmation

    async def read() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                deliveries.arrived(message["data"].decode())

    task = asyncio.create_task(read())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()
        await client.aclose()


async def bench_invalidation(env: Env) -> list[Row]:
    keys = [f"lat:{i:04d}" for i in range(LATENCY_KEYS)]
    numbers = itertools.count()
    coord_seen, redis_seen = _Deliveries(), _Deliveries()
    writer = grpc.aio.insecure_channel(env.coord_target)  # another client than the watcher
    stub = cache_pb2_grpc.CacheServiceStub(writer)
    ttl = Duration(seconds=TTL_S)
    channel = "bench:near-cache:inv"

    async def coord(_: int) -> None:
        key = keys[next(numbers) % LATENCY_KEYS]
        done = coord_seen.expect(key)
        await stub.Set(cache_pb2.SetRequest(key=key, value=VALUE, ttl=ttl))
        await asyncio.wait_for(done, READY_WITHIN)

    async def pubsub(_: int) -> None:
        key = keys[next(numbers) % LATENCY_KEYS]
        done = redis_seen.expect(key)
        await env.redis.publish(channel, key)
        await asyncio.wait_for(done, READY_WITHIN)

    try:
        async with _coord_watcher(env, coord_seen), _redis_subscriber(env, channel, redis_seen):
            rows = await compare(
                env,
                "cache near-cache invalidation (write by another client -> watcher)",
                Side("Coord", coord, env.coord_pid, None, coord_seen.drain),
                [Side("redis-py PUBLISH -> PubSub", pubsub, env.redis_pid, None, redis_seen.drain)],
                levels=(1,),
            )
    finally:
        await writer.close(None)
    latency = sample_rows(rows, "cache near-cache invalidation latency")
    for row in latency:
        assert row.coord_stats is not None and row.baseline_stats is not None
        progress(
            f"near cache invalidation latency c={row.concurrency}: Coord p50/p99 "
            f"{row.coord_stats.p50_ms:.2f}/{row.coord_stats.p99_ms:.2f} ms, {row.baseline_name} "
            f"{row.baseline_stats.p50_ms:.2f}/{row.baseline_stats.p99_ms:.2f} ms"
        )
    return latency


BENCHMARKS = (
    Benchmark("near_cache.reads", bench_reads),
    Benchmark("near_cache.invalidation", bench_invalidation),
)
