"""A client that opens streams and stops reading them: GetStream and CheckStream it keeps writing to,
and a Subscribe to a busy topic. The server's memory stays bounded, and other clients are served
meanwhile, on other connections and on the stalled client's own.

Bounded, measured without clocks on a Coord process of its own (``ServerProcess``), on the single
Redis and the 3-master Cluster of the ``coord`` fixture:

- GetStream / CheckStream: the scripts Redis ran for the stream (INFO commandstats, every node) stop
  growing at the stream's slots (``STREAM_IN_FLIGHT``) plus what the HTTP/2 windows and socket buffers
  hold, far below what was written (``answer_each`` stops reading the requests);
- Subscribe: the subscriber is ended with RESOURCE_EXHAUSTED ``EVENTS_SUBSCRIBER_TOO_SLOW`` (and its
  cursors) once its buffer of ``COORD_EVENTS_SUBSCRIBER_BUFFER`` events is full;
- the server process's resident memory grows by far less than the answers and events it would hold
  if it queued them.

Already covered elsewhere, and not repeated here: ``answer_each`` reading no further while its
answers wait (tests/server/test_stream_backpressure.py, unit and single-node process), and the slow
subscriber resuming from its cursors without loss (tests/events/test_subscribe_mechanics.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
import redis

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.events.v1 import events_pb2, events_pb2_grpc
from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc
from coord_server._grpc import STREAM_IN_FLIGHT

from ..conftest import CoordUnderTest, RedisClusterProcess
from ..events.helpers import LATEST, error_info, publish_many, subscribe
from ..ratelimit.helpers import FIXED_WINDOW, rule
from ..server.test_process import ServerProcess
from .history import History, check_errors, check_events

VALUE = 32 * 1024  # a GetStream answer
REQUESTS = 10_000  # written to each stalled stream: unbounded, the GetStream answers alone hold 312 MiB
DESCRIPTORS = 100  # per CheckStream request: answers of ~4 KiB
EVENT = 64 * 1024
EVENTS = 300  # published to the topic the stalled subscriber never reads: ~19 MiB
BUFFER = 20  # COORD_EVENTS_SUBSCRIBER_BUFFER of the server under test
# What the HTTP/2 windows and the loopback socket buffers between the two ends may hold of the
# answers sent; the rest stays undecided.
IN_TRANSIT = 16 << 20
# What the server may hold for the three stalled streams together: 257 GetStream answers of 32 KiB
# (8 MiB), 257 decided CheckStream answers of 100 statuses as Python objects (~14 MiB measured), the
# subscriber's buffer of 20 events of 64 KiB and the replies being sent, and the requests gRPC took in
# within its flow-control windows. Measured at about 26 MiB, whether 3,000 or 12,000 requests are
# written to each stream: bounded, not proportional to what the client sends.
MEMORY_BUDGET = 64 << 20
# A stalled client keeps its windows small (no BDP probing), as a client that stopped reading would.
STALLED = [("grpc.http2.bdp_probe", 0)]


@pytest.fixture
def server(coord: CoordUnderTest, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path,
        COORD_REDIS_URL=coord.backing.url,
        COORD_REDIS_CLUSTER="1" if coord.kind == "cluster" else "0",
        COORD_EVENTS_SUBSCRIBER_BUFFER=str(BUFFER),
    )
    try:
        yield process.start()
    finally:
        process.kill()


def _nodes(coord: CoordUnderTest) -> list[redis.Redis]:
    backing = coord.backing
    nodes = backing.nodes if isinstance(backing, RedisClusterProcess) else [backing]
    return [node.client() for node in nodes]


def _scripts_run(nodes: list[redis.Redis]) -> int:
    total = 0
    for node in nodes:
        stats = node.info("commandstats")
        total += sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))
    return total


def _settled(read: Callable[[], int], same_for: int = 15) -> int:
    """``read()`` once it has given the same value ``same_for`` times in a row, polled every 0.1 s."""
    last, same = read(), 0
    end = time.monotonic() + 60
    while same < same_for:
        assert time.monotonic() < end, "timed out waiting for the server to settle"
        time.sleep(0.1)
        now = read()
        last, same = now, same + 1 if now == last else 0
    return last


class Stalled:
    """Bidirectional streams written to by tasks of their own, and never read."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.calls: list[Any] = []
        self.writers: list[asyncio.Task[None]] = []

    def start(self, call: Any, requests: Callable[[int], Any]) -> None:
        async def write() -> None:
            for n in range(REQUESTS):
                await call.write(requests(n))

        self.calls.append(call)
        self.writers.append(asyncio.get_running_loop().create_task(write()))

    def cancel(self) -> None:
        for task in self.writers:
            task.cancel()
        for call in self.calls:
            call.cancel()


def _get(n: int) -> cache_pb2.GetStreamRequest:
    return cache_pb2.GetStreamRequest(request_id=n, get=cache_pb2.GetRequest(key="big"))


QUOTA = rule(10**9, 366 * 86400, FIXED_WINDOW)


def _check(n: int) -> ratelimit_pb2.CheckStreamRequest:
    descriptors = [ratelimit_pb2.Descriptor(key=f"k{d}", rule=QUOTA) for d in range(DESCRIPTORS)]
    check = ratelimit_pb2.CheckRequest(descriptors=descriptors, scope="stalled", dry_run=True)
    return ratelimit_pb2.CheckStreamRequest(request_id=n, check=check)


def _served(target: str, history: History, rounds: int = 20) -> None:
    """Unary calls of every kind on a fresh connection, each recorded."""
    with grpc.insecure_channel(target) as channel:
        _calls(channel, history, rounds)


def _calls(channel: grpc.Channel, history: History, rounds: int) -> None:
    cache = cache_pb2_grpc.CacheServiceStub(channel)
    limits = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
    events = events_pb2_grpc.EventsServiceStub(channel)
    check = ratelimit_pb2.CheckRequest(descriptors=[ratelimit_pb2.Descriptor(key="other", rule=QUOTA)])
    for n in range(rounds):
        calls: list[tuple[str, Any, Any]] = [
            ("cache.set", cache.Set, cache_pb2.SetRequest(key=f"o{n}", value=b"v")),
            ("cache.get", cache.Get, cache_pb2.GetRequest(key=f"o{n}")),
            ("ratelimit.check", limits.Check, check),
            ("events.publish", events.Publish, events_pb2.PublishRequest(topic="calm", data=b"x")),
        ]
        for op, rpc, request in calls:
            try:
                rpc(request, timeout=10)
            except grpc.RpcError as error:
                history.failed(op, error)
            else:
                history.ok(op)


def test_streams_nobody_reads_stay_bounded_and_other_clients_are_served(
    coord: CoordUnderTest, server: ServerProcess
) -> None:
    assert server.proc is not None
    process = psutil.Process(server.proc.pid)
    nodes = _nodes(coord)
    history = History()
    with grpc.insecure_channel(server.target) as channel:
        cache_pb2_grpc.CacheServiceStub(channel).Set(cache_pb2.SetRequest(key="big", value=b"v" * VALUE))
    # Warm up every path once, the large events included, so that the allocator's arenas have grown
    # to what serving takes before the baseline: what grows after is what the stalled streams hold.
    _firehose(server.target, History(), topic="warm")
    _served(server.target, history, rounds=5)
    rss_before = process.memory_info().rss

    async def stall() -> tuple[int, int, Any]:
        channel = grpc.aio.insecure_channel(server.target, options=STALLED)
        stalled = Stalled(channel)
        try:
            before = _scripts_run(nodes)
            stalled.start(cache_pb2_grpc.CacheServiceStub(channel).GetStream(), _get)
            gets = await asyncio.to_thread(_settled, lambda: _scripts_run(nodes) - before)
            before = _scripts_run(nodes)
            stalled.start(ratelimit_pb2_grpc.RateLimitServiceStub(channel).CheckStream(), _check)
            checks = await asyncio.to_thread(_settled, lambda: _scripts_run(nodes) - before)
            subscriber = events_pb2_grpc.EventsServiceStub(channel).Subscribe(
                events_pb2.SubscribeRequest(topics=["firehose"], start=LATEST)
            )
            assert (await subscriber.read()).WhichOneof("frame") == "subscribed"
            await asyncio.to_thread(_firehose, server.target, history)
            await _calls_async(channel, history)  # on the stalled client's own connection too
            grown = process.memory_info().rss - rss_before
            end = await _ending(subscriber)
            return gets, checks, (grown, end)
        finally:
            stalled.cancel()
            await channel.close()

    gets, checks, (grown, end) = asyncio.run(stall())
    for node in nodes:
        node.close()
    # Decided: the stream's slots plus what the windows hold of the answers sent; far from all.
    assert gets <= STREAM_IN_FLIGHT + IN_TRANSIT // VALUE < REQUESTS, gets
    assert checks < REQUESTS, checks
    assert end.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, end
    info = error_info(end)
    assert info.reason == "EVENTS_SUBSCRIBER_TOO_SLOW" and "firehose" in json.loads(info.metadata["cursors"])
    assert grown < MEMORY_BUDGET < REQUESTS * VALUE, f"the server grew {grown >> 20} MiB"
    check_events(history)
    check_errors(history, allowed=set())  # every call of the other clients was served
    print(
        f"\n{coord.kind}: decided {gets} GetStream and {checks} CheckStream requests of {REQUESTS} each; "
        f"server RSS +{grown >> 20} MiB; {sum(history.successes.values())} calls served meanwhile"
    )


def _firehose(target: str, history: History, topic: str = "firehose") -> None:
    """Publish EVENTS large events while a subscriber that reads receives all of them."""
    history.subscriber_started("reader", topic, "0-0")
    with grpc.insecure_channel(target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        reader = subscribe(stub, topic, start=LATEST)
        reader.next_of("subscribed")
        for _ in range(EVENTS // 10):
            for event_id in publish_many(stub, topic, [b"x" * EVENT] * 10):
                history.event_published(topic, event_id)
        got = 0
        while got < EVENTS:
            frame = reader.next(30)
            kind = frame.WhichOneof("frame")
            if kind == "events":
                for event in frame.events.events:
                    history.event_delivered("reader", event.id)
                got += len(frame.events.events)
            elif kind == "gap":
                history.gap_reported("reader", frame.gap.after_id, frame.gap.first_available_id)
        reader.cancel()
    _served(target, history)


async def _calls_async(channel: grpc.aio.Channel, history: History, rounds: int = 5) -> None:
    """Unary calls on ``channel``, each recorded."""
    cache = cache_pb2_grpc.CacheServiceStub(channel)
    limits = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
    check = ratelimit_pb2.CheckRequest(descriptors=[ratelimit_pb2.Descriptor(key="own", rule=QUOTA)])
    for n in range(rounds):
        for op, call in (
            ("cache.set", cache.Set(cache_pb2.SetRequest(key=f"own{n}", value=b"v"), timeout=10)),
            ("ratelimit.check", limits.Check(check, timeout=10)),
        ):
            try:
                await call
            except grpc.aio.AioRpcError as error:
                history.failed(op, error)
            else:
                history.ok(op)


async def _ending(subscriber: Any) -> grpc.RpcError:
    """Read the stalled subscriber at last: what it was sent, then the error that ended it."""
    try:
        while True:
            frame = await asyncio.wait_for(subscriber.read(), 30)
            if frame is grpc.aio.EOF:
                raise AssertionError("the stalled subscriber's stream ended without an error")
    except grpc.aio.AioRpcError as error:
        return error
