from __future__ import annotations

import asyncio
import resource
import time

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_thousand_idle_subscribers_stay_cheap_and_unary_calls_stay_fast(coord_single):
    """1000 idle Subscribe streams (one topic each of 10, one reader per topic) in the same process as
    the server: memory grows by a bounded amount and unary calls keep answering quickly."""
    count = 1000

    async def main() -> tuple[float, float, int]:
        async with grpc.aio.insecure_channel(coord_single.target) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            before = _rss_mib()
            calls = []
            for wave in range(0, count, 100):  # opened in waves: this measures idle cost, not a burst
                batch = [
                    stub.Subscribe(
                        events_pb2.SubscribeRequest(
                            topics=[f"idle.{i % 10}"], start=events_pb2.START_POSITION_LATEST
                        )
                    )
                    for i in range(wave, wave + 100)
                ]
                firsts = await asyncio.gather(*(c.read() for c in batch))
                assert all(f.WhichOneof("frame") == "subscribed" for f in firsts)
                calls += batch
            grown = _rss_mib() - before
            started = time.monotonic()
            for i in range(20):
                await stub.Publish(events_pb2.PublishRequest(topic="other", data=b"%d" % i))
                info = await stub.GetTopic(events_pb2.GetTopicRequest(topic="idle.0"))
            per_call = (time.monotonic() - started) / 40
            subscribers = info.topic.local_subscribers
            await stub.Publish(events_pb2.PublishRequest(topic="idle.3", data=b"wake"))
            woken = await asyncio.gather(*(calls[i].read() for i in range(3, count, 10)))
            assert all(f.events.events[0].data == b"wake" for f in woken)
            for call in calls:
                call.cancel()
            return grown, per_call, subscribers

    grown, per_call, subscribers = asyncio.run(main())
    assert subscribers == count // 10
    # Client and server share this process, so this counts both sides of 1000 streams.
    assert grown < 200, f"{grown:.0f} MiB for {count} streams"
    assert per_call < 0.1, f"unary calls took {per_call * 1000:.0f} ms each"
    print(f"\n{count} idle subscribers: +{grown:.1f} MiB RSS; unary call {per_call * 1000:.1f} ms")
