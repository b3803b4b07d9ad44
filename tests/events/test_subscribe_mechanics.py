from __future__ import annotations

import json
import time

import grpc
import pytest

from coord.events.v1 import events_pb2, events_pb2_grpc

from .helpers import LATEST, error_info, id_pair, ms, publish, publish_many, subscribe


@pytest.fixture
def private(coord, start_coord):
    """A private Coord on the same Redis (single or cluster) with small limits, and its stub."""

    def make(**overrides):
        server = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", **overrides)
        channel = grpc.insecure_channel(server.target)
        channels.append(channel)
        return server, events_pb2_grpc.EventsServiceStub(channel)

    channels: list[grpc.Channel] = []
    yield make
    for channel in channels:
        channel.close()


def wait_until(check, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def test_wildcard_patterns_match_tokens_and_pick_up_new_topics(stub):
    publish(stub, "orders.eu", b"before")
    star = subscribe(stub, "orders.*", start=LATEST)
    tail = subscribe(stub, "orders.>", start=LATEST)
    assert [c.topic for c in star.next_of("subscribed").starts] == ["orders.eu"]
    assert [c.topic for c in tail.next_of("subscribed").starts] == ["orders.eu"]
    publish(stub, "orders.eu", b"1")
    publish(stub, "orders.us", b"2")  # a topic that did not exist when the streams opened
    publish(stub, "orders.us.west", b"3")
    publish(stub, "other.eu", b"4")
    got_star = star.events(2)
    assert sorted((e.topic, e.data) for e in got_star) == [("orders.eu", b"1"), ("orders.us", b"2")]
    got_tail = tail.events(3)
    assert sorted((e.topic, e.data) for e in got_tail) == [
        ("orders.eu", b"1"),
        ("orders.us", b"2"),
        ("orders.us.west", b"3"),
    ]
    assert not [f for f in star.quiet(0.3) if f.WhichOneof("frame") == "events"]
    star.cancel()
    tail.cancel()


def test_pattern_finds_topics_created_by_another_server(stub, private):
    _, other = private(events_pattern_refresh=0.1)
    stream = subscribe(other, "jobs.*", start=LATEST)
    assert list(stream.next_of("subscribed").starts) == []
    publish(stub, "jobs.a", b"x")  # published through the session server, found by polling
    announced = stream.next_of("subscribed", timeout=10)
    assert [c.topic for c in announced.starts] == ["jobs.a"]
    assert [e.data for e in stream.events(1)] == [b"x"]
    stream.cancel()


def test_gap_frame_when_requested_history_was_trimmed(private):
    _, stub = private(events_max_length=10)
    ids = []
    for chunk in range(6):
        ids += publish_many(stub, "trim", [b"%d" % i for i in range(chunk * 100, chunk * 100 + 100)])
    info = stub.GetTopic(events_pb2.GetTopicRequest(topic="trim")).topic
    assert info.length < 600 and info.first_id != ids[0]
    stream = subscribe(
        stub, "trim", start=LATEST, cursors=[events_pb2.TopicCursor(topic="trim", after_id=ids[0])]
    )
    stream.next_of("subscribed")
    gap = stream.next_of("gap")
    assert gap.topic == "trim" and gap.after_id == ids[0]
    assert gap.first_available_id == info.first_id
    assert info.entries_added == 600
    events = stream.events(info.length)
    assert events[0].id == info.first_id and events[-1].id == ids[-1]
    stream.cancel()
    # Resuming from a retained id reports no gap.
    ok = subscribe(
        stub, "trim", start=LATEST, cursors=[events_pb2.TopicCursor(topic="trim", after_id=ids[-2])]
    )
    ok.next_of("subscribed")
    first = ok.next()
    assert first.WhichOneof("frame") == "events" and first.events.events[0].id == ids[-1]
    ok.cancel()


def test_at_time_starts_at_that_millisecond(stub):
    ids = [publish(stub, "clock", b"%d" % i) for i in range(3)]
    at = id_pair(ids[1])[0]
    start = events_pb2.SubscribeRequest().start_time
    start.FromMilliseconds(at)
    stream = subscribe(stub, "clock", start=events_pb2.START_POSITION_AT_TIME, start_time=start)
    events = stream.events(1)
    assert id_pair(events[0].id)[0] >= at and events[0].id in ids[1:]
    stream.cancel()


def test_slow_subscriber_is_ended_with_a_cursor_and_resumes_without_loss(private):
    _, stub = private(events_subscriber_buffer=20)
    # A raw call nobody reads: gRPC flow control stalls the server's writes and its buffer fills.
    call = stub.Subscribe(events_pb2.SubscribeRequest(topics=["fast"], start=LATEST))
    assert next(call).WhichOneof("frame") == "subscribed"
    payload = b"x" * 100_000
    ids: list[str] = []

    def subscribers() -> int:
        return stub.GetTopic(events_pb2.GetTopicRequest(topic="fast")).topic.local_subscribers

    while subscribers():
        ids += publish_many(stub, "fast", [payload] * 5)
        assert len(ids) < 5000, "the subscriber was never ended"
    received: list[str] = []
    with pytest.raises(grpc.RpcError) as raised:
        for frame in call:
            received += [e.id for e in frame.events.events]
    error = raised.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(error)
    assert info.reason == "EVENTS_SUBSCRIBER_TOO_SLOW"
    cursors = json.loads(info.metadata["cursors"])
    assert received == ids[: len(received)]
    assert id_pair(cursors["fast"]) <= id_pair(received[-1]) if received else True
    resumed = subscribe(
        stub, "fast", start=LATEST, cursors=[events_pb2.TopicCursor(topic="fast", after_id=cursors["fast"])]
    )
    resumed.next_of("subscribed")
    skipped = sum(1 for i in received if id_pair(i) <= id_pair(cursors["fast"]))
    rest = resumed.events(len(ids) - skipped, timeout=60)
    assert [e.id for e in rest] == ids[skipped:]
    resumed.cancel()


def test_cancelled_stream_releases_reader_and_subscriber_at_once(stub):
    publish(stub, "rel", b"x")
    streams = [subscribe(stub, "rel", start=LATEST) for _ in range(3)]
    for s in streams:
        s.next_of("subscribed")

    def info():
        return stub.GetTopic(events_pb2.GetTopicRequest(topic="rel")).topic

    assert (info().local_subscribers, info().local_reader) == (3, True)
    streams[0].cancel()
    wait_until(lambda: info().local_subscribers == 2)
    assert info().local_reader
    for s in streams[1:]:
        s.cancel()
    wait_until(lambda: (info().local_subscribers, info().local_reader) == (0, False))


def test_deadline_ends_the_stream_and_releases_it(stub):
    publish(stub, "dl", b"x")
    call = stub.Subscribe(events_pb2.SubscribeRequest(topics=["dl"], start=LATEST), timeout=0.5)
    with pytest.raises(grpc.RpcError) as raised:
        for _ in call:
            pass
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: not stub.GetTopic(events_pb2.GetTopicRequest(topic="dl")).topic.local_reader)


def test_many_subscribers_share_one_reader(stub, coord):
    streams = [subscribe(stub, "shared", start=LATEST) for _ in range(20)]
    for s in streams:
        s.next_of("subscribed")
    clients_before = _client_count(coord)
    event_id = publish(stub, "shared", b"fan")
    for s in streams:
        assert s.events(1)[0].id == event_id
    # Twenty subscribers did not cost twenty Redis connections.
    assert _client_count(coord) <= clients_before + 2
    for s in streams:
        s.cancel()


def _client_count(coord) -> int:
    client = coord.redis()
    try:
        if coord.kind == "cluster":
            return sum(
                int(v["connected_clients"]) for v in client.info("clients", target_nodes="all").values()
            )
        return int(client.info("clients")["connected_clients"])
    finally:
        client.close()


def test_stream_opens_with_ms_heartbeat_default_when_unset(stub):
    stream = subscribe(stub, "hb", start=LATEST, heartbeat_interval=ms(100))
    assert stream.next_of("subscribed").open_time.ToMilliseconds() > 0
    assert stream.next_of("progress", timeout=5).cursors[0].topic == "hb"
    stream.cancel()
