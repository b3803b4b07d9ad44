"""1,000 idle subscribers against a Coord running in its own process, so that the memory measured is
the server's alone (test_scale.py measures client and server together): it grows by a bounded amount
per subscriber, does not grow while the streams idle on heartbeats, costs one Redis connection per
topic rather than per subscriber, and unary calls cost Redis exactly what they cost with no subscriber
(how fast they are is measured by ``make bench``)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
import redis

from coord.events.v1 import events_pb2, events_pb2_grpc

from ..conftest import start_server_process
from .helpers import ms, redis_commands

COUNT = 1000
TOPICS = 10
WAVE = 100


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _redis_clients(port: int) -> int:
    with redis.Redis(port=port) as r:
        return int(r.info("clients")["connected_clients"])


async def _open(stub: events_pb2_grpc.EventsServiceStub, count: int) -> list[grpc.aio.UnaryStreamCall]:
    calls = []
    for wave in range(0, count, WAVE):
        batch = [
            stub.Subscribe(
                events_pb2.SubscribeRequest(
                    topics=[f"idle.{i % TOPICS}"],
                    start=events_pb2.START_POSITION_LATEST,
                    heartbeat_interval=ms(2000),
                )
            )
            for i in range(wave, min(wave + WAVE, count))
        ]
        firsts = await asyncio.gather(*(c.read() for c in batch))
        assert all(f.WhichOneof("frame") == "subscribed" for f in firsts)
        calls += batch
    return calls


def test_a_thousand_idle_subscribers_cost_the_server_process_little(redis_factory):
    backing = redis_factory()
    proc, target = start_server_process(backing.url, backing.dir / "coord-server.log")
    try:
        result = asyncio.run(_measure(proc.pid, target, backing.port))
    finally:
        proc.terminate()
        proc.wait(30)
    warm, opened, idled, alone, crowded, clients_added = result
    per_subscriber_kib = (opened - warm) * 1024 / COUNT
    print(
        f"\nserver RSS: {warm:.1f} MiB warm, {opened:.1f} MiB with {COUNT} subscribers "
        f"({per_subscriber_kib:.1f} KiB each), {idled:.1f} MiB after idling; "
        f"+{clients_added} Redis connections; Redis commands of 80 unary calls: {dict(alone)}"
    )
    assert per_subscriber_kib < 100, f"{per_subscriber_kib:.0f} KiB per idle subscriber"
    assert idled - opened < 10, f"grew {idled - opened:.1f} MiB while idle"
    # Not one Redis command more per unary call for 1000 streams: no per-subscriber reads or polling.
    assert crowded == alone, (crowded, alone)
    assert clients_added <= TOPICS + 2, f"{clients_added} Redis connections for {TOPICS} topics"


async def _unary_calls(stub: events_pb2_grpc.EventsServiceStub, redis_port: int) -> Counter[str]:
    """What 40 Publish and 40 GetTopic calls cost Redis."""
    with redis.Redis(port=redis_port) as r:
        before = redis_commands(r)
        for i in range(40):
            await stub.Publish(events_pb2.PublishRequest(topic="other", data=b"%d" % i))
            await stub.GetTopic(events_pb2.GetTopicRequest(topic="idle.0"))
        return redis_commands(r) - before


async def _measure(
    pid: int, target: str, redis_port: int
) -> tuple[float, float, float, Counter[str], Counter[str], int]:
    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    try:
        stubs = [events_pb2_grpc.EventsServiceStub(c) for c in channels]
        unary = stubs[0]
        # Warm up every code path once (and let the allocator settle) before the baseline.
        for call in await _open(stubs[0], 2 * WAVE):
            call.cancel()
        await unary.Publish(events_pb2.PublishRequest(topic="warm", data=b"x"))
        await _wait_released(unary)
        await _unary_calls(unary, redis_port)  # scripts cached, connections open
        alone = await _unary_calls(unary, redis_port)
        warm = _rss_mib(pid)
        clients_before = _redis_clients(redis_port)

        calls: list[grpc.aio.UnaryStreamCall] = []
        for stub in stubs:
            calls += await _open(stub, COUNT // len(stubs))
        assert len(calls) == COUNT
        opened = _rss_mib(pid)
        clients_added = _redis_clients(redis_port) - clients_before

        # Idle through two heartbeats: every stream is alive and sends Progress, memory stays put.
        for _ in range(2):
            frames = await asyncio.gather(*(c.read() for c in calls))
            assert all(f.WhichOneof("frame") == "progress" for f in frames)
        idled = _rss_mib(pid)

        crowded = await _unary_calls(unary, redis_port)

        info = (await unary.GetTopic(events_pb2.GetTopicRequest(topic="idle.0"))).topic
        assert info.local_subscribers == COUNT // TOPICS and info.local_reader
        await unary.Publish(events_pb2.PublishRequest(topic="idle.7", data=b"wake"))
        per_stub = COUNT // len(stubs)
        woken = [c for i, c in enumerate(calls) if (i % per_stub) % TOPICS == 7]
        assert len(woken) == COUNT // TOPICS
        for event in await asyncio.wait_for(asyncio.gather(*(_next_event(c) for c in woken)), 30):
            assert (event.topic, event.data) == ("idle.7", b"wake")
        for call in calls:
            call.cancel()
        await _wait_released(unary)
        return warm, opened, idled, alone, crowded, clients_added
    finally:
        for channel in channels:
            await channel.close()


async def _next_event(call: grpc.aio.UnaryStreamCall) -> events_pb2.Event:
    while True:  # a heartbeat may come first
        frame = await call.read()
        if frame.WhichOneof("frame") == "events":
            return frame.events.events[0]


async def _wait_released(stub: events_pb2_grpc.EventsServiceStub) -> None:
    """Until no topic of this test has a subscriber or a reader left in the server."""
    end = time.monotonic() + 20
    while True:
        infos = await asyncio.gather(
            *(stub.GetTopic(events_pb2.GetTopicRequest(topic=f"idle.{t}")) for t in range(TOPICS))
        )
        if all(i.topic.local_subscribers == 0 and not i.topic.local_reader for i in infos):
            return
        assert time.monotonic() < end, "subscribers or readers were not released"
        await asyncio.sleep(0.05)
