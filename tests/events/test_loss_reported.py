"""Loss is reported, never silent: a reader whose events are gone gets a Gap frame before delivery
continues, whether retention removed them or Redis lost them.

- Redis lost its data (FLUSHALL, or a restart of a Redis without persistence): a subscriber resuming
  from a cursor taken earlier gets a Gap, then the events published since.
- A replica that was behind is promoted: the cursor's own event is missing from the middle of the
  stream (or the stream is younger than the cursor); a Gap says so.
- Trimming overtakes a reader: the topic's live reader (a burst of more than the max length between
  two of its reads), or a subscriber catching up while it waits for room (a slow client).

The trimming tests check the invariant on all that was received: every event Publish acknowledged
after the reader's start was delivered or lies inside a reported gap. Each test fails without the
checks of gaps.py (the loss was silent before).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
import pytest

from coord.events.v1 import events_pb2, events_pb2_grpc

from .helpers import EARLIEST, LATEST, Stream, id_pair, publish, publish_many, subscribe


def _cursor(topic: str, after: str) -> list[events_pb2.TopicCursor]:
    return [events_pb2.TopicCursor(topic=topic, after_id=after)]


def _unaccounted(acked: Iterable[str], delivered: Iterable[str], gaps: list[Any]) -> list[str]:
    """Acknowledged ids neither delivered nor inside a reported gap (after_id, first_available_id)."""
    got = set(delivered)
    spans = [
        (id_pair(g.after_id), id_pair(g.first_available_id) if g.first_available_id else None) for g in gaps
    ]

    def covered(event_id: str) -> bool:
        key = id_pair(event_id)
        return any(after < key and (first is None or key < first) for after, first in spans)

    return [i for i in acked if i not in got and not covered(i)]


def test_resume_after_redis_lost_its_data_gets_a_gap(coord):
    with grpc.insecure_channel(coord.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        ids = publish_many(stub, "lost.flush", [b"a", b"b", b"c"])
        cursor = ids[1]  # the subscriber had handled "b"; "c" was acknowledged too
        coord.flush()  # Redis loses everything
        new = publish_many(stub, "lost.flush", [b"d", b"e"])
        assert id_pair(new[0]) > id_pair(ids[-1])  # the stream starts again, younger than the cursor's
        stream = subscribe(stub, "lost.flush", cursors=_cursor("lost.flush", cursor))
        stream.next_of("subscribed")
        first = stream.next()
        assert first.WhichOneof("frame") == "gap", first
        assert (first.gap.topic, first.gap.after_id, first.gap.first_available_id) == (
            "lost.flush",
            cursor,
            new[0],
        )
        assert [e.data for e in stream.events(2)] == [b"d", b"e"]
        stream.cancel()


def _publish_retrying(stub: events_pb2_grpc.EventsServiceStub, topic: str, data: bytes) -> str:
    end = time.monotonic() + 30
    while True:
        try:
            return publish(stub, topic, data)
        except grpc.RpcError as error:  # Redis is coming back
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert time.monotonic() < end, "Redis never came back"
            time.sleep(0.05)


def _subscribe_retrying(stub: events_pb2_grpc.EventsServiceStub, topic: str, after: str) -> Stream:
    """A stream resumed after ``after``, once past its Subscribed frame: resubscribed on UNAVAILABLE
    (a pooled connection to the restarted Redis may fail once), as a client must."""
    end = time.monotonic() + 30
    while True:
        stream = subscribe(stub, topic, cursors=_cursor(topic, after))
        try:
            stream.next_of("subscribed")
            return stream
        except AssertionError:
            error = stream.wait_error()
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert time.monotonic() < end, "Redis never came back"


def test_resume_after_a_restart_without_persistence_gets_a_gap(redis_factory, start_coord):
    backing = redis_factory()  # --save "" --appendonly no: a restart comes back empty
    server = start_coord(backing.url)
    with grpc.insecure_channel(server.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        ids = publish_many(stub, "lost.restart", [b"a", b"b", b"c"])
        backing.stop()
        backing.start()
        new = _publish_retrying(stub, "lost.restart", b"d")
        stream = _subscribe_retrying(stub, "lost.restart", ids[0])
        gap = stream.next_of("gap")
        assert (gap.after_id, gap.first_available_id) == (ids[0], new)
        assert [(e.id, e.data) for e in stream.events(1)] == [(new, b"d")]
        stream.cancel()


def _redis_ms(r: Any) -> int:
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_failover_to_a_replica_that_was_behind_gets_a_gap(redis_factory, start_coord):
    primary = redis_factory()
    replica = redis_factory(extra=("--replicaof", "127.0.0.1", str(primary.port)))
    first_server = start_coord(primary.url)
    with primary.client() as p, replica.client() as r:
        with grpc.insecure_channel(first_server.target) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            kept = publish_many(stub, "lost.failover", [b"a", b"b"])
            assert p.wait(1, 10_000) == 1  # the replica has "a" and "b"
            r.replicaof("NO", "ONE")  # cut off: what follows never reaches it
            lost = publish_many(stub, "lost.failover", [b"c", b"d"])
        cursor = lost[0]  # the subscriber had handled "c"
        # The replica is promoted and a server uses it; its stream ends at "b", before the cursor.
        second_server = start_coord(replica.url)
        with grpc.insecure_channel(second_server.target) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            younger = subscribe(stub, "lost.failover", cursors=_cursor("lost.failover", cursor))
            younger.next_of("subscribed")
            gap = younger.next_of("gap")
            assert (gap.after_id, gap.first_available_id) == (cursor, "")
            younger.cancel()
            while _redis_ms(r) <= id_pair(lost[-1])[0]:  # new ids must come after the lost ones
                time.sleep(0.001)
            new = publish(stub, "lost.failover", b"e")
            # Now the stream runs past the cursor, but the cursor's own event is missing from it.
            resumed = subscribe(stub, "lost.failover", cursors=_cursor("lost.failover", cursor))
            resumed.next_of("subscribed")
            first = resumed.next()
            assert first.WhichOneof("frame") == "gap", first
            assert (first.gap.after_id, first.gap.first_available_id) == (cursor, new)
            assert [(e.id, e.data) for e in resumed.events(1)] == [(new, b"e")]
            resumed.cancel()
            # A cursor whose event the replica has still resumes with no gap.
            ok = subscribe(stub, "lost.failover", cursors=_cursor("lost.failover", kept[0]))
            ok.next_of("subscribed")
            nxt = ok.next()
            assert nxt.WhichOneof("frame") == "events" and nxt.events.events[0].id == kept[1], nxt
            ok.cancel()


def _burst(stub: events_pb2_grpc.EventsServiceStub, topic: str, batches: int, data: bytes) -> list[str]:
    """``batches`` BatchPublish calls of 1000 events at once, from as many threads; the acked ids."""
    acked: list[list[str]] = [[] for _ in range(batches)]

    def one(n: int) -> None:
        acked[n] = publish_many(stub, topic, [data] * 1000)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted((i for ids in acked for i in ids), key=id_pair)


def _read_until(frames: Iterable[Any], last_id: str) -> tuple[list[str], list[Any]]:
    """Event ids and gaps of ``frames`` up to the event ``last_id``."""
    delivered: list[str] = []
    gaps: list[Any] = []
    for frame in frames:
        kind = frame.WhichOneof("frame")
        if kind == "gap":
            gaps.append(frame.gap)
        elif kind == "events":
            delivered += [e.id for e in frame.events.events]
            if delivered and id_pair(delivered[-1]) >= id_pair(last_id):
                return delivered, gaps
    raise AssertionError("the stream ended")


def test_trimming_that_overtakes_the_live_reader_is_reported(private_server):
    # A burst of 5000 events into a topic kept to about 10: the topic's reader reads at most about 110
    # at a time, so events are trimmed before it reads them.
    stub, _ = private_server(events_max_length=10)
    stream = subscribe(stub, "overtake.live", start=LATEST)
    stream.next_of("subscribed")
    acked = _burst(stub, "overtake.live", 5, b"x")
    frames = iter(lambda: stream.next(30), None)
    delivered, gaps = _read_until(frames, acked[-1])
    stream.cancel()
    assert gaps, "events were trimmed unread, and no Gap said so"
    assert len(delivered) < len(acked)
    assert _unaccounted(acked, delivered, gaps) == []
    assert [d for d in delivered if d not in set(acked)] == []
    assert all(id_pair(a) < id_pair(b) for a, b in itertools.pairwise(delivered))


def test_trimming_that_overtakes_a_slow_subscriber_catching_up_is_reported(private_server):
    # 2000 events of 4 KiB to catch up on, read by a client that stops reading after the first frame:
    # gRPC flow control (the client's window kept at its initial 64 KiB) holds the replies, so the
    # subscriber's catch-up waits for room with its third page of 500 in hand. Then a burst trims the
    # topic far past where it stands.
    stub, backing = private_server([("grpc.http2.bdp_probe", 0)], events_max_length=2000)
    data = b"x" * (4 << 10)
    backlog = [i for _ in range(4) for i in publish_many(stub, "overtake.catchup", [data] * 500)]
    call = stub.Subscribe(events_pb2.SubscribeRequest(topics=["overtake.catchup"], start=EARLIEST))
    try:
        assert next(call).WhichOneof("frame") == "subscribed"
        first = next(call)
        assert first.WhichOneof("frame") == "events" and first.events.events[0].id == backlog[0]
        with backing.client() as r:
            end = time.monotonic() + 10
            while int(r.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0)) < 3:
                assert time.monotonic() < end, "the catch-up did not read its third page"
                time.sleep(0.01)
        acked = _burst(stub, "overtake.catchup", 3, b"y")
        delivered, gaps = _read_until(call, acked[-1])
    finally:
        call.cancel()
    delivered = [e.id for e in first.events.events] + delivered
    assert gaps, "events were trimmed before the slow subscriber read them, and no Gap said so"
    assert _unaccounted(backlog + acked, delivered, gaps) == []
    assert all(id_pair(a) < id_pair(b) for a, b in itertools.pairwise(delivered))
    # A Gap comes right after what the catch-up held (its third page), before any event of the
    # burst. On a loaded machine the topic's live reader may find the same trimming too and say so
    # as well, from where it stood, and its report may come first: a second report of a loss, never
    # a silent one (checked above); every report starts inside the backlog and names an event of the
    # burst as where delivery goes on.
    spans = [(g.after_id, g.first_available_id) for g in gaps]
    assert backlog[1499] in [after for after, _ in spans], spans
    assert all(after in backlog for after, _ in spans), spans
    assert all(first in acked for _, first in spans), spans
    assert delivered[:1500] == backlog[:1500]


@pytest.fixture
def private_server(redis_factory, start_coord):
    """A private Coord with settings overrides on a private single Redis: (its stub, the Redis)."""
    channels: list[grpc.Channel] = []

    def make(
        options: Sequence[tuple[str, Any]] = (), **overrides: Any
    ) -> tuple[events_pb2_grpc.EventsServiceStub, Any]:
        backing = redis_factory()
        server = start_coord(backing.url, **overrides)
        channel = grpc.insecure_channel(server.target, options=list(options))
        channels.append(channel)
        return events_pb2_grpc.EventsServiceStub(channel), backing

    yield make
    for channel in channels:
        channel.close()
