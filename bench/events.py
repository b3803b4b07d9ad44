"""Events: fan-out of one published event to 100 subscribers, against redis-py Pub/Sub.

An operation publishes one 100-byte event and ends when every one of the 100 subscribers has
received it; K operations run at once (closed loop). Coord: unary Publish, 100 Subscribe streams
(START_POSITION_LATEST) over one channel. Baseline: redis-py asyncio ``PUBLISH`` to a channel that
100 redis-py ``PubSub`` connections listen on. Both sides' subscribers live in the bench process.
Pub/Sub keeps nothing and drops messages for a slow or disconnected subscriber; Coord's events are
stored in a Redis stream, carry ids and cursors, and survive a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from coord.events.v1 import events_pb2, events_pb2_grpc

from ._harness import Benchmark, Env, Row, Side, compare

SUBSCRIBERS = 100
PAYLOAD = b"e" * 92  # plus an 8-byte sequence number: 100 bytes


class _FanIn:
    """Counts deliveries per event number; an event is done when all subscribers have it."""

    def __init__(self) -> None:
        self.waiting: dict[int, tuple[int, asyncio.Future[None]]] = {}

    def expect(self, number: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[number] = (SUBSCRIBERS, future)
        return future

    def delivered(self, data: bytes) -> None:
        number = int.from_bytes(data[:8], "big")
        entry = self.waiting.get(number)
        if entry is None:
            return
        left, future = entry
        if left == 1:
            del self.waiting[number]
            if not future.done():
                future.set_result(None)
        else:
            self.waiting[number] = (left - 1, future)


@contextlib.asynccontextmanager
async def _coord_subscribers(env: Env, topic: str, fan: _FanIn) -> AsyncIterator[None]:
    stub = events_pb2_grpc.EventsServiceStub(env.coord)
    ready = [asyncio.Event() for _ in range(SUBSCRIBERS)]
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

    tasks = [asyncio.create_task(listen(i)) for i in range(SUBSCRIBERS)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
        yield
    finally:
        for call in calls:
            call.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _redis_subscribers(env: Env, channel: str, fan: _FanIn) -> AsyncIterator[None]:
    # A client of its own: each PubSub holds a connection, more than the shared pool allows.
    client = aioredis.Redis.from_url(env.redis_url, max_connections=SUBSCRIBERS + 8)
    pubsubs = [client.pubsub() for _ in range(SUBSCRIBERS)]
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


async def bench_fanout(env: Env) -> list[Row]:
    stub = events_pb2_grpc.EventsServiceStub(env.coord)
    numbers = itertools.count(1)
    coord_fan, redis_fan = _FanIn(), _FanIn()
    topic = "bench.fanout"

    async def coord(_: int) -> None:
        number = next(numbers)
        done = coord_fan.expect(number)
        await stub.Publish(events_pb2.PublishRequest(topic=topic, data=number.to_bytes(8, "big") + PAYLOAD))
        await done

    async def pubsub(_: int) -> None:
        number = next(numbers)
        done = redis_fan.expect(number)
        await env.redis.publish(topic, number.to_bytes(8, "big") + PAYLOAD)
        await done

    async with _coord_subscribers(env, topic, coord_fan), _redis_subscribers(env, topic, redis_fan):
        return await compare(
            env,
            f"events fan-out to {SUBSCRIBERS} subscribers (events/s)",
            Side("Coord", coord, env.coord_pid),
            [Side("redis-py Pub/Sub", pubsub, env.redis_pid)],
        )


BENCHMARKS = (Benchmark("events.fanout", bench_fanout),)
