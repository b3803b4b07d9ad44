from __future__ import annotations

import grpc
import pytest
from google.protobuf import timestamp_pb2

from coord.events.v1 import events_pb2

from .helpers import LATEST, Consumer, Requests, error_info, ms


def _check(error: grpc.RpcError, code: grpc.StatusCode, field: str) -> None:
    assert error.code() == code, error
    info = error_info(error)
    assert info.metadata["field"] == field, info
    assert field in error.details()


def _unary(call, request, field, code=grpc.StatusCode.INVALID_ARGUMENT) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call(request)
    _check(raised.value, code, field)


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"topic": ""}, "topic"),
        ({"topic": "a..b"}, "topic"),
        ({"topic": "a.*"}, "topic"),
        ({"topic": "bad topic"}, "topic"),
        ({"topic": "x" * 256}, "topic"),
        ({"topic": "t", "content_type": "c" * 256}, "content_type"),
        ({"topic": "t", "headers": {"": "v"}}, "headers"),
        ({"topic": "t", "headers": {f"h{i}": "v" for i in range(65)}}, "headers"),
        ({"topic": "t", "headers": {"h": "v" * 70_000}}, "headers"),
        ({"topic": "t", "dedup_id": "d" * 256}, "dedup_id"),
        ({"topic": "t", "dedup_id": "a\nb"}, "dedup_id"),
    ],
)
def test_publish_rejects_bad_fields(stub, request_kwargs, field):
    _unary(stub.Publish, events_pb2.PublishRequest(**request_kwargs), field)


def test_publish_rejects_oversized_data(stub, coord):
    big = b"x" * (coord.settings.max_value_bytes + 1)
    _unary(
        stub.Publish,
        events_pb2.PublishRequest(topic="t", data=big),
        "data",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )


def test_batch_publish_names_the_bad_item_and_publishes_nothing(stub):
    requests = [
        events_pb2.PublishRequest(topic="ok", data=b"1"),
        events_pb2.PublishRequest(topic="", data=b"2"),
    ]
    _unary(stub.BatchPublish, events_pb2.BatchPublishRequest(requests=requests), "requests[1].topic")
    _unary(stub.BatchPublish, events_pb2.BatchPublishRequest(), "requests")
    assert not stub.GetTopic(events_pb2.GetTopicRequest(topic="ok")).topic.exists


def _subscribe_error(stub, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Subscribe(events_pb2.SubscribeRequest(**kwargs), timeout=10))
    return raised.value


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"start": LATEST}, "topics"),
        ({"topics": ["a", "b..c"], "start": LATEST}, "topics[1]"),
        ({"topics": ["a.>.b"], "start": LATEST}, "topics[0]"),
        ({"topics": ["a.b*"], "start": LATEST}, "topics[0]"),
        ({"topics": [f"t{i}" for i in range(101)], "start": LATEST}, "topics"),
        ({"topics": ["a"]}, "start"),
        ({"topics": ["a"], "start": events_pb2.START_POSITION_AT_TIME}, "start_time"),
        ({"topics": ["a"], "start": LATEST, "start_time": timestamp_pb2.Timestamp(seconds=5)}, "start_time"),
        (
            {
                "topics": ["a"],
                "start": LATEST,
                "cursors": [events_pb2.TopicCursor(topic="a", after_id="x-1")],
            },
            "cursors[0].after_id",
        ),
        (
            {
                "topics": ["a"],
                "start": LATEST,
                "cursors": [events_pb2.TopicCursor(topic="b", after_id="1-0")],
            },
            "cursors[0].topic",
        ),
        (
            {
                "topics": ["a.*"],
                "start": LATEST,
                "cursors": [
                    events_pb2.TopicCursor(topic="a.b", after_id="1-0"),
                    events_pb2.TopicCursor(topic="a.b", after_id="2-0"),
                ],
            },
            "cursors[1].topic",
        ),
        ({"topics": ["a"], "start": LATEST, "heartbeat_interval": ms(10)}, "heartbeat_interval"),
        ({"topics": ["a"], "start": LATEST, "heartbeat_interval": ms(700_000)}, "heartbeat_interval"),
    ],
)
def test_subscribe_rejects_bad_fields(stub, request_kwargs, field):
    _check(_subscribe_error(stub, **request_kwargs), grpc.StatusCode.INVALID_ARGUMENT, field)


def _consume_error(stub, *messages: events_pb2.ConsumeRequest) -> grpc.RpcError:
    requests = Requests()
    for message in messages:
        requests.send(message)
    call = stub.Consume(iter(requests), timeout=10)
    with pytest.raises(grpc.RpcError) as raised:
        list(call)
    requests.close()
    return raised.value


def _start(**kwargs) -> events_pb2.ConsumeRequest:
    kwargs.setdefault("topic", "t")
    kwargs.setdefault("group", "g")
    kwargs.setdefault("group_start", LATEST)
    return events_pb2.ConsumeRequest(start=events_pb2.ConsumeStart(**kwargs))


@pytest.mark.parametrize(
    ("start_kwargs", "field"),
    [
        ({"topic": ""}, "start.topic"),
        ({"group": ""}, "start.group"),
        ({"group": "a.b"}, "start.group"),
        ({"group_start": events_pb2.START_POSITION_UNSPECIFIED}, "start.group_start"),
        ({"group_start": events_pb2.START_POSITION_AT_TIME}, "start.group_start"),
        ({"ack_timeout": ms(50)}, "start.ack_timeout"),
        ({"ack_timeout": ms(3_600_001)}, "start.ack_timeout"),
        ({"max_deliveries": 1001}, "start.max_deliveries"),
        ({"dead_letter_topic": "t"}, "start.dead_letter_topic"),
        ({"dead_letter_topic": "bad name"}, "start.dead_letter_topic"),
        ({"initial_credits": 10_001}, "start.initial_credits"),
    ],
)
def test_consume_start_rejects_bad_fields(stub, start_kwargs, field):
    _check(_consume_error(stub, _start(**start_kwargs)), grpc.StatusCode.INVALID_ARGUMENT, field)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (events_pb2.ConsumeRequest(credit=events_pb2.ConsumeCredit(count=0)), "credit.count"),
        (events_pb2.ConsumeRequest(ack=events_pb2.ConsumeAck()), "ack.ids"),
        (events_pb2.ConsumeRequest(ack=events_pb2.ConsumeAck(ids=["nope"])), "ack.ids[0]"),
        (events_pb2.ConsumeRequest(ack=events_pb2.ConsumeAck(ids=["1-0"] * 1001)), "ack.ids"),
        (events_pb2.ConsumeRequest(nack=events_pb2.ConsumeNack(ids=["1-x"])), "nack.ids[0]"),
        (events_pb2.ConsumeRequest(nack=events_pb2.ConsumeNack(ids=["1-0"], delay=ms(70_000))), "nack.delay"),
        (events_pb2.ConsumeRequest(extend=events_pb2.ConsumeExtend()), "extend.ids"),
        (events_pb2.ConsumeRequest(), "action"),
    ],
)
def test_consume_actions_reject_bad_fields(stub, message, field):
    _check(
        _consume_error(stub, _start(ack_timeout=ms(60_000)), message), grpc.StatusCode.INVALID_ARGUMENT, field
    )


def test_second_consume_start_is_a_failed_precondition(stub):
    error = _consume_error(stub, _start(), _start())
    _check(error, grpc.StatusCode.FAILED_PRECONDITION, "start")
    assert error_info(error).reason == "EVENTS_CONSUME_NOT_STARTED"


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"page_size": 1001}, "page_size"),
        ({"page_token": "a b"}, "page_token"),
        ({"pattern": "a..*"}, "pattern"),
    ],
)
def test_list_topics_rejects_bad_fields(stub, request_kwargs, field):
    _unary(stub.ListTopics, events_pb2.ListTopicsRequest(**request_kwargs), field)


def test_get_topic_rejects_a_pattern(stub):
    _unary(stub.GetTopic, events_pb2.GetTopicRequest(topic="a.*"), "topic")


def test_consumer_helper_smoke(stub):
    # The Consumer helper used across the suite really starts a stream.
    consumer = Consumer(stub, "smoke", "g")
    assert consumer.started.consumer
    consumer.close()


def test_pattern_matching_too_many_topics_is_refused_before_reading(coord_single):
    import grpc as _grpc

    from coord.events.v1 import events_pb2_grpc

    with _grpc.insecure_channel(coord_single.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        for chunk in range(2):
            names = [f"wide.{chunk}{i:04d}" for i in range(501 if chunk else 500)]
            stub.BatchPublish(
                events_pb2.BatchPublishRequest(requests=[events_pb2.PublishRequest(topic=n) for n in names])
            )
        error = _subscribe_error(stub, topics=["wide.*"], start=LATEST)
        _check(error, grpc.StatusCode.INVALID_ARGUMENT, "topics")
        assert not stub.GetTopic(events_pb2.GetTopicRequest(topic="wide.00000")).topic.local_reader
