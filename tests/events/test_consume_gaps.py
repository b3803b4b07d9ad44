"""A consumer group that falls behind retention is told: Consume sends a Gap naming the hole (after
the group's last delivered id, up to the first event still stored), once, before the events after it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc
from coord_client import Client
from coord_client.events import Event, Gap

from ..conftest import CoordThread, CoordUnderTest, RedisProcess
from .helpers import Consumer, ms, publish_many, subscribe


def _frames(consumer: Consumer, events: int) -> list[events_pb2.ConsumeResponse]:
    """Frames in order until ``events`` events have come."""
    frames = []
    got = 0
    while got < events:
        frame = consumer.stream.next()
        frames.append(frame)
        if frame.WhichOneof("frame") == "events":
            got += len(frame.events.events)
    return frames


def _stream_key(topic: str) -> str:
    return f"coord:default:events:{{{topic}}}"


def test_trimming_past_unread_events_gives_the_group_a_gap_then_the_rest(coord: CoordUnderTest, stub) -> None:
    ids = publish_many(stub, "late.jobs", [b"%d" % i for i in range(10)])
    consumer = Consumer(stub, "late.jobs", "slow", initial_credits=2, ack_timeout=ms(60_000))
    first = consumer.events(2)
    assert [e.id for e in first] == ids[:2]
    consumer.ack(*[e.id for e in first])
    # Retention removes the oldest events, five of them never read by the group.
    with coord.redis() as r:
        assert r.xtrim(_stream_key("late.jobs"), maxlen=3, approximate=False) == 7
    consumer.credit(10)
    frames = _frames(consumer, 3)
    kinds = [f.WhichOneof("frame") for f in frames]
    assert kinds[0] == "gap", kinds
    gap = frames[0].gap
    assert (gap.topic, gap.after_id, gap.first_available_id) == ("late.jobs", ids[1], ids[7])
    delivered = [e.id for f in frames[1:] for e in f.events.events]
    assert delivered == ids[7:]
    assert kinds.count("gap") == 1
    # Once: the group is past the hole now.
    more = publish_many(stub, "late.jobs", [b"x", b"y"])
    frames = _frames(consumer, 2)
    assert [f.WhichOneof("frame") for f in frames] == ["events"] * len(frames)
    assert [e.id for f in frames for e in f.events.events] == more
    consumer.close()


def test_a_caught_up_group_gets_no_gap_and_a_new_group_none_for_old_history(
    coord: CoordUnderTest, stub
) -> None:
    ids = publish_many(stub, "tidy", [b"%d" % i for i in range(6)])
    with coord.redis() as r:  # history removed before the group existed: not its loss
        r.xtrim(_stream_key("tidy"), maxlen=2, approximate=False)
    consumer = Consumer(stub, "tidy", "fresh", initial_credits=100, ack_timeout=ms(60_000))
    frames = _frames(consumer, 2)
    assert [f.WhichOneof("frame") for f in frames] == ["events"] * len(frames)
    assert [e.id for f in frames for e in f.events.events] == ids[4:]
    later = publish_many(stub, "tidy", [b"a", b"b"])
    frames = _frames(consumer, 2)
    assert [f.WhichOneof("frame") for f in frames] == ["events"] * len(frames)
    assert [e.id for f in frames for e in f.events.events] == later
    consumer.close()


def test_a_group_that_read_everything_gets_no_gap_when_its_last_event_is_trimmed(
    coord: CoordUnderTest, stub
) -> None:
    """Trimming past the group's own last event removes nothing it had not read: no Gap (Redis 7
    counts the group's lag, which says so exactly)."""
    ids = publish_many(stub, "steady.jobs", [b"%d" % i for i in range(4)])
    consumer = Consumer(stub, "steady.jobs", "steady", initial_credits=4, ack_timeout=ms(60_000))
    read = consumer.events(4)
    assert [e.id for e in read] == ids
    consumer.ack(*ids)
    later = publish_many(stub, "steady.jobs", [b"a", b"b"])
    with coord.redis() as r:  # everything the group read is gone; the two new events are stored
        assert r.xtrim(_stream_key("steady.jobs"), maxlen=2, approximate=False) == 4
    consumer.credit(10)
    frames = _frames(consumer, 2)
    assert [f.WhichOneof("frame") for f in frames] == ["events"] * len(frames)
    assert [e.id for f in frames for e in f.events.events] == later
    consumer.close()


def test_publishing_past_the_max_length_while_a_group_lags_reports_the_gap(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    """Real retention (MAXLEN ~ on publish) with a small max length: the lagging group's Gap names
    its last delivered event and the first one still stored, and every stored event follows it."""
    with redis_single.client() as r:
        r.flushall()
    server = start_coord(redis_single.url, events_max_length=10)
    with grpc.insecure_channel(server.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        head = publish_many(stub, "bounded", [b"head"])
        consumer = Consumer(stub, "bounded", "lagging", initial_credits=1, ack_timeout=ms(60_000))
        assert [e.id for e in consumer.events(1)] == head
        # More than the max length (and more than one macro node of the stream): trimming removes
        # whole nodes of old entries, unread ones among them.
        ids: list[str] = []
        for n in range(5):
            ids += publish_many(stub, "bounded", [b"%d" % (n * 100 + i) for i in range(100)])
        with redis_single.client() as r:
            stored = [entry_id.decode() for entry_id, _ in r.xrange(_stream_key("bounded"))]
        assert len(stored) < len(ids) and stored == ids[-len(stored) :]
        consumer.credit(len(stored))
        frames = _frames(consumer, len(stored))
        assert frames[0].WhichOneof("frame") == "gap"
        gap = frames[0].gap
        assert (gap.after_id, gap.first_available_id) == (head[0], stored[0])
        assert [e.id for f in frames[1:] for e in f.events.events] == stored
        consumer.close()


def test_the_clients_consume_hands_the_gap_to_on_gap(coord: CoordUnderTest, stub) -> None:
    ids = publish_many(stub, "client.gap", [b"%d" % i for i in range(8)])
    handled: list[Event] = []
    gaps: list[Gap] = []
    stop = threading.Event()
    first_two = threading.Event()
    release = threading.Event()

    def handler(event: Event) -> None:
        handled.append(event)
        if len(handled) == 2:
            first_two.set()
            release.wait(30)  # hold the group here while its next events are trimmed
        if len(handled) == 5:
            stop.set()

    with Client(coord.target) as client:
        worker = threading.Thread(
            target=client.events.consume,
            args=("client.gap", "workers", handler),
            kwargs={"prefetch": 1, "stop": stop, "on_gap": gaps.append},
            daemon=True,
        )
        worker.start()
        assert first_two.wait(30)
        with coord.redis() as r:
            r.xtrim(_stream_key("client.gap"), maxlen=3, approximate=False)
        release.set()
        worker.join(30)
        assert not worker.is_alive()
    assert [e.id for e in handled] == ids[:2] + ids[5:]
    assert [(g.topic, g.after_id, g.first_available_id) for g in gaps] == [("client.gap", ids[1], ids[5])]


def test_subscribers_are_not_affected_by_a_groups_gap(coord: CoordUnderTest, stub) -> None:
    """A subscription reading the same topic live sees no Gap for the group's hole."""
    stream = subscribe(stub, "shared.gap", heartbeat_interval=ms(600_000))
    stream.next_of("subscribed")
    ids = publish_many(stub, "shared.gap", [b"%d" % i for i in range(4)])
    assert [e.id for e in stream.events(4)] == ids
    consumer = Consumer(stub, "shared.gap", "g", initial_credits=1, ack_timeout=ms(60_000))
    assert [e.id for e in consumer.events(1)] == ids[:1]
    with coord.redis() as r:
        r.xtrim(_stream_key("shared.gap"), maxlen=1, approximate=False)
    consumer.credit(5)
    frames = _frames(consumer, 1)
    assert frames[0].WhichOneof("frame") == "gap"
    assert [f.WhichOneof("frame") for f in stream.quiet(0.3)] == []
    consumer.close()
    stream.cancel()
