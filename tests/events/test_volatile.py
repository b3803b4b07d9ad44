from __future__ import annotations

import grpc
import pytest

from coord.events.v1 import events_pb2

from .helpers import EARLIEST, LATEST, error_info, ms, subscribe


def _volatile(stub, topic: str, data: bytes) -> events_pb2.PublishResponse:
    return stub.Publish(events_pb2.PublishRequest(topic=topic, data=data, volatile=True, headers={"k": "v"}))


def test_volatile_events_reach_live_subscribers_with_sequence_numbers(stub):
    before = _volatile(stub, "presence", b"nobody listens")
    assert before.sequence == 1 and before.receivers == 0 and not before.id
    stream = subscribe(stub, "presence", "typing", start=LATEST, volatile=True)
    assert [c.topic for c in stream.next_of("subscribed").starts] == ["presence", "typing"]
    sent = [_volatile(stub, "presence", b"%d" % i) for i in range(5)]
    assert [r.sequence for r in sent] == [2, 3, 4, 5, 6]
    assert all(r.receivers >= 1 for r in sent)
    got = stream.events(5)
    assert [(e.sequence, e.data, e.id) for e in got] == [(i + 2, b"%d" % i, "") for i in range(5)]
    assert got[0].headers == {"k": "v"}
    # Volatile and durable are separate: nothing stored, nothing durable delivered here.
    assert not stub.GetTopic(events_pb2.GetTopicRequest(topic="presence")).topic.exists
    stream.cancel()


def test_volatile_subscriber_is_told_of_missed_numbers(private_volatile):
    stub = private_volatile
    # A raw call nobody reads yet: gRPC flow control stalls the stream, the 5-event buffer fills and
    # the server drops what does not fit, then reports each hole by number.
    call = stub.Subscribe(events_pb2.SubscribeRequest(topics=["ticks"], start=LATEST, volatile=True))
    assert next(call).WhichOneof("frame") == "subscribed"
    payload = b"x" * 200_000
    for _ in range(60):
        stub.BatchPublish(
            events_pb2.BatchPublishRequest(
                requests=[events_pb2.PublishRequest(topic="ticks", data=payload, volatile=True)] * 5
            )
        )
    numbers: list[int] = []
    gaps: list[tuple[int, int]] = []
    for frame in call:
        kind = frame.WhichOneof("frame")
        if kind == "events":
            numbers += [e.sequence for e in frame.events.events]
            if frame.events.events[-1].data == b"end":
                break
        elif kind == "gap":
            gaps.append((frame.gap.after_sequence, frame.gap.next_sequence))
        # Reading again: send markers until one gets through; it reveals a trailing hole.
        _volatile(stub, "ticks", b"end")
    call.cancel()
    assert gaps, "some events must have been dropped"
    assert numbers == sorted(numbers)
    # Every number is either delivered or inside a reported gap: nothing vanished silently.
    missing = {n for a, b in gaps for n in range(a + 1, b)}
    assert set(numbers) | missing == set(range(1, numbers[-1] + 1))
    assert not set(numbers) & missing
    assert numbers[-1] > 300


@pytest.fixture
def private_volatile(coord, start_coord):
    from coord.events.v1 import events_pb2_grpc

    server = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", events_subscriber_buffer=5)
    with grpc.insecure_channel(server.target) as channel:
        yield events_pb2_grpc.EventsServiceStub(channel)


def test_volatile_heartbeats_and_release(stub):
    stream = subscribe(stub, "hb.v", start=LATEST, volatile=True, heartbeat_interval=ms(100))
    stream.next_of("subscribed")
    assert list(stream.next_of("progress", timeout=5).cursors) == []
    stream.cancel()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"topics": ["a.*"], "start": LATEST}, "topics"),
        ({"topics": ["a"], "start": EARLIEST}, "start"),
        (
            {
                "topics": ["a"],
                "start": LATEST,
                "cursors": [events_pb2.TopicCursor(topic="a", after_id="1-0")],
            },
            "cursors",
        ),
    ],
)
def test_volatile_subscribe_rejects_history_features(stub, kwargs, field):
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Subscribe(events_pb2.SubscribeRequest(volatile=True, **kwargs), timeout=10))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).metadata["field"] == field


def test_volatile_publish_refuses_a_dedup_id(stub):
    with pytest.raises(grpc.RpcError) as raised:
        stub.Publish(events_pb2.PublishRequest(topic="a", volatile=True, dedup_id="x"))
    assert error_info(raised.value).metadata["field"] == "dedup_id"
