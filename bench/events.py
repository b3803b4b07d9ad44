"""Events: publish throughput against redis-py XADD, and fan-out to 1, 10 and 100 subscribers against
redis-py Pub/Sub.

``events.publish``: one 100-byte event per call to a topic nobody reads. Coord: unary Publish (its
script appends with ``XADD MAXLEN ~`` and applies the age retention; the topic registry write rides
in the same pipeline). Baseline: redis-py asyncio ``XADD ... MAXLEN ~ 100000`` (Coord's default
length cap) to a stream, with no retention by age.

``events.fanout.<N>``: an operation publishes one 100-byte event and ends when every one of the N
subscribers has received it; K operations run at once (closed loop). Coord: unary Publish, N
Subscribe streams (START_POSITION_LATEST) over one channel. Baseline: redis-py asyncio ``PUBLISH`` to
a channel that N redis-py ``PubSub`` connections listen on. A third side is the gRPC stream fan-out
floor: a bare ``grpc.aio`` server whose unary ``Post`` hands the event's bytes to N open server
streams (no protobuf, no Redis, nothing stored), the most any Coord server process could deliver
over gRPC. Every side's subscribers live in the bench process. Each event carries the time it was
published (``time.perf_counter_ns`` of this process), so every delivery also gives an end-to-end
latency, from just before the publish call to the moment the subscriber has the event. Pub/Sub
keeps nothing and drops messages for a slow or disconnected subscriber; Coord's events are stored in
a Redis stream, carry ids and cursors, and survive a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import redis.asyncio as aioredis

from coord.events.v1 import events_pb2, events_pb2_grpc

from ._harness import Benchmark, Env, Row, Side, compare, progress, sample_rows
from .floor import FANOUT_FLOOR_NAME, POST_METHOD, WATCH_METHOD

FANOUT = (1, 10, 100)
PAYLOAD = b"e" * 84  # plus an 8-byte sequence number and an 8-byte send time: 100 bytes
MAX_LENGTH = 100_000  # Coord's default events_max_length


def _event(number: int) -> bytes:
    return number.to_bytes(8, "big") + time.perf_counter_ns().to_bytes(8, "big") + PAYLOAD


class _FanIn:
    """Counts deliveries per event number (an event is done when all subscribers have it) and keeps
    each delivery's end-to-end latency."""

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.waiting: dict[int, tuple[int, asyncio.Future[None]]] = {}
        self.latencies: list[int] = []

    def expect(self, number: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[number] = (self.subscribers, future)
        return future

    def delivered(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        number = int.from_bytes(data[:8], "big")
        entry = self.waiting.get(number)
        if entry is None:
            return
        self.latencies.append(now - int.from_bytes(data[8:16], "big"))
        left, future = entry
        if left == 1:
            del self.waiting[number]
            if not future.done():
                future.set_result(None)
        else:
            self.waiting[number] = (left - 1, future)

    def drain(self) -> list[int]:
        latencies, self.latencies = self.latencies, []
        return latencies


async def _hang_up(calls: list[Any], tasks: list[asyncio.Task[None]]) -> None:
    for call in calls:
        call.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _coord_subscribers(env: Env, topic: str, fan: _FanIn) -> AsyncIterator[None]:
    stub = events_pb2_grpc.EventsServiceStub(env.coord)
    ready = [asyncio.Event() for _ in range(fan.subscribers)]
    calls = []

    async def listen(i: int) -> None:
        call = stub.Subscribe(
            events_pb2.SubscribeRequest(topics=[topic], start=events_pb2.START_POSITION_LATEST)
        )
        calls.append(call)
        async for frame in call:
            kind = frame.WhichOneof("frame")
            if kind == "subscribed":
                ready[i].set()
            elif kind == "events":
                for event in frame.events.events:
                    fan.delivered(event.data)

    tasks = [asyncio.create_task(listen(i)) for i in range(fan.subscribers)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
        yield
    finally:
        await _hang_up(calls, tasks)


@contextlib.asynccontextmanager
async def _floor_subscribers(env: Env, fan: _FanIn) -> AsyncIterator[None]:
    watch = env.floor.unary_stream(WATCH_METHOD, None, None)
    calls = [watch(b"") for _ in range(fan.subscribers)]
    tasks: list[asyncio.Task[None]] = []

    async def listen(call: Any) -> None:
        # read() throughout: a call read once with read() refuses ``async for``.
        while (data := await call.read()) is not grpc.aio.EOF:
            fan.delivered(data)

    try:
        for call in calls:
            assert await call.read() == b"ready"
        tasks += [asyncio.create_task(listen(call)) for call in calls]
        yield
    finally:
        await _hang_up(calls, tasks)


@contextlib.asynccontextmanager
async def _redis_subscribers(env: Env, channel: str, fan: _FanIn) -> AsyncIterator[None]:
    # A client of its own: each PubSub holds a connection, more than the shared pool allows.
    client = aioredis.Redis.from_url(env.redis_url, max_connections=fan.subscribers + 8)
    pubsubs = [client.pubsub() for _ in range(fan.subscribers)]
    for pubsub in pubsubs:
        await pubsub.subscribe(channel)
        await pubsub.get_message(timeout=5)  # the subscribe confirmation

    async def listen(pubsub: object) -> None:
        async for message in pubsub.listen():  # type: ignore[attr-defined]
            if message["type"] == "message":
                fan.delivered(message["data"])

    tasks = [asyncio.create_task(listen(p)) for p in pubsubs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pubsub in pubsubs:
            await pubsub.aclose()
        await client.aclose()


async def bench_publish(env: Env) -> list[Row]:
    stub = events_pb2_grpc.EventsServiceStub(env.coord)
    numbers = itertools.count(1)
    redis = env.redis

    async def coord(_: int) -> None:
        await stub.Publish(events_pb2.PublishRequest(topic="bench.publish", data=_event(next(numbers))))

    async def xadd(_: int) -> None:
        await redis.xadd("bench:xadd", {"d": _event(next(numbers))}, maxlen=MAX_LENGTH, approximate=True)

    rows = await compare(
        env,
        "events.Publish (100 B, no subscriber)",
        Side("Coord", coord, env.coord_pid, env.redis_pid),
        [Side("redis-py XADD MAXLEN ~", xadd, env.redis_pid, env.redis_pid)],
    )
    await redis.delete("bench:xadd")
    return rows


def _fanout(subscribers: int) -> Callable[[Env], Awaitable[list[Row]]]:
    async def bench_fanout(env: Env) -> list[Row]:
        stub = events_pb2_grpc.EventsServiceStub(env.coord)
        numbers = itertools.count(1)
        coord_fan, redis_fan, floor_fan = _FanIn(subscribers), _FanIn(subscribers), _FanIn(subscribers)
        post = env.floor.unary_unary(POST_METHOD, None, None)
        topic = f"bench.fanout.{subscribers}"

        async def coord(_: int) -> None:
            number = next(numbers)
            done = coord_fan.expect(number)
            await stub.Publish(events_pb2.PublishRequest(topic=topic, data=_event(number)))
            await done

        async def pubsub(_: int) -> None:
            number = next(numbers)
            done = redis_fan.expect(number)
            await env.redis.publish(topic, _event(number))
            await done

        async def floor(_: int) -> None:
            number = next(numbers)
            done = floor_fan.expect(number)
            await post(_event(number))
            await done

        async with (
            _coord_subscribers(env, topic, coord_fan),
            _redis_subscribers(env, topic, redis_fan),
            _floor_subscribers(env, floor_fan),
        ):
            rows = await compare(
                env,
                f"events fan-out to {subscribers} (events/s)",
                Side("Coord", coord, env.coord_pid, env.redis_pid, coord_fan.drain),
                [
                    Side("redis-py Pub/Sub", pubsub, env.redis_pid, env.redis_pid, redis_fan.drain),
                    Side(FANOUT_FLOOR_NAME, floor, env.floor_pid, None, floor_fan.drain),
                ],
            )
        plural = "s" if subscribers > 1 else ""
        latency = sample_rows(rows, f"events end-to-end latency, {subscribers} subscriber{plural}")
        for row in latency:
            assert row.coord_stats is not None and row.baseline_stats is not None
            progress(
                f"events latency to {subscribers} c={row.concurrency}: Coord p50/p99 "
                f"{row.coord_stats.p50_ms:.2f}/{row.coord_stats.p99_ms:.2f} ms, {row.baseline_name} "
                f"{row.baseline_stats.p50_ms:.2f}/{row.baseline_stats.p99_ms:.2f} ms"
            )
        return rows + latency

    return bench_fanout


BENCHMARKS = (
    Benchmark("events.publish", bench_publish),
    *(Benchmark(f"events.fanout.{n}", _fanout(n)) for n in FANOUT),
)
