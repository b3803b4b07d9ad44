from __future__ import annotations

import asyncio
import resource
from collections import Counter

import grpc
import redis

from coord.events.v1 import events_pb2, events_pb2_grpc

from .helpers import ms, redis_commands

TOPICS = 10


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _connected_clients(r: redis.Redis) -> int:
    return int(r.info("clients")["connected_clients"])


def test_a_thousand_idle_subscribers_stay_cheap_and_cost_unary_calls_nothing(coord_single):
    """1000 idle Subscribe streams (one topic each of 10, one reader per topic) in the same process as
    the server: memory grows by a bounded amount, unary calls cost Redis exactly what they cost with no
    subscriber, and nothing at all is sent to a stream while it idles. (How fast the calls are is
    measured by ``make bench``.)"""
    count = 1000

    async def main() -> tuple[float, Counter[str], Counter[str], int, int]:
        with coord_single.redis() as r:
            async with grpc.aio.insecure_channel(coord_single.target) as channel:
                stub = events_pb2_grpc.EventsServiceStub(channel)

                async def unary_calls() -> tuple[Counter[str], int]:
                    """What 20 Publish and 20 GetTopic calls cost Redis; idle.0's local subscribers."""
                    before = redis_commands(r)
                    for i in range(20):
                        await stub.Publish(events_pb2.PublishRequest(topic="other", data=b"%d" % i))
                        info = await stub.GetTopic(events_pb2.GetTopicRequest(topic="idle.0"))
                    return redis_commands(r) - before, info.topic.local_subscribers

                await unary_calls()  # scripts cached, connections open
                alone, _ = await unary_calls()
                before, clients_before = _rss_mib(), _connected_clients(r)
                calls = []
                for wave in range(0, count, 100):  # opened in waves: this measures idle cost, not a burst
                    batch = [
                        stub.Subscribe(
                            events_pb2.SubscribeRequest(
                                topics=[f"idle.{i % TOPICS}"],
                                start=events_pb2.START_POSITION_LATEST,
                                heartbeat_interval=ms(600_000),  # the longest: no Progress while idle
                            )
                        )
                        for i in range(wave, wave + 100)
                    ]
                    firsts = await asyncio.gather(*(c.read() for c in batch))
                    assert all(f.WhichOneof("frame") == "subscribed" for f in firsts)
                    calls += batch
                grown, clients_added = _rss_mib() - before, _connected_clients(r) - clients_before
                crowded, subscribers = await unary_calls()
                for topic in range(TOPICS):
                    await stub.Publish(events_pb2.PublishRequest(topic=f"idle.{topic}", data=b"wake"))
                # The first frame every stream gets after all that is its topic's wake-up event.
                woken = await asyncio.gather(*(c.read() for c in calls))
                for i, frame in enumerate(woken):
                    [event] = frame.events.events
                    assert (event.topic, event.data) == (f"idle.{i % TOPICS}", b"wake"), frame
                for call in calls:
                    call.cancel()
                return grown, alone, crowded, subscribers, clients_added

    grown, alone, crowded, subscribers, clients_added = asyncio.run(main())
    assert subscribers == count // TOPICS
    # One blocking reader (one connection) per topic, not per subscriber.
    assert clients_added <= TOPICS + 2, f"{clients_added} Redis connections for {TOPICS} topics"
    # Client and server share this process, so this counts both sides of 1000 streams.
    assert grown < 200, f"{grown:.0f} MiB for {count} streams"
    # Not one Redis command more per unary call for 1000 streams: no per-subscriber reads or polling.
    assert crowded == alone, (crowded, alone)
    print(
        f"\n{count} idle subscribers: +{grown:.1f} MiB RSS, +{clients_added} Redis connections; "
        f"Redis commands of 40 unary calls: {dict(alone)}"
    )
