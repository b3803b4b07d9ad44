"""The Events service's calls as data: each function builds a request and says how the response
reads (a :class:`~coord_client._call.Call`), or builds or parses one message of a stream. No I/O
here: :mod:`.sync` and :mod:`.aio` send the same requests, so both clients build and parse alike.

Bad arguments raise ValueError or TypeError here, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import grpc

from coord.events.v1 import events_pb2

from .._call import Call
from .._convert import Seconds, duration_field, from_duration, utc_or_none
from ..errors import CoordError
from .models import Data, Event, Gap, GroupInfo, PublishItem, PublishResult, TopicInfo

SERVICE = "coord.events.v1.EventsService"

STARTS = {"latest": events_pb2.START_POSITION_LATEST, "earliest": events_pb2.START_POSITION_EARLIEST}

# Errors after which a stream reconnects (and a subscription resumes from its cursors).
_RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# The server ended a subscription that fell behind; it resumes from its cursors, too.
_TOO_SLOW = "EVENTS_SUBSCRIBER_TOO_SLOW"


# ---------------------------------------------------------------- the calls


def publish(item: PublishItem) -> Call[PublishResult]:
    return Call("Publish", _publish_request(item), lambda r: _publish_result(item.topic, r))


def publish_many(items: Iterable[PublishItem]) -> Call[list[PublishResult]]:
    todo = list(items)
    if not todo:
        return Call.answered([])
    request = events_pb2.BatchPublishRequest(requests=[_publish_request(i) for i in todo])
    return Call(
        "BatchPublish",
        request,
        lambda r: [_publish_result(i.topic, x) for i, x in zip(todo, r.responses, strict=True)],
    )


def get_topic(topic: str) -> Call[TopicInfo]:
    return Call("GetTopic", events_pb2.GetTopicRequest(topic=topic), lambda r: _topic_info(r.topic))


class TopicNames:
    """Every topic name (matching ``pattern`` when given), one ListTopics page per call:
    send :meth:`next_page` until it is None, then read ``names``."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.names: list[str] = []
        self._token: str | None = ""  # None once the last page is in

    def next_page(self) -> Call[None] | None:
        if self._token is None:
            return None
        request = events_pb2.ListTopicsRequest(page_size=1000, page_token=self._token, pattern=self.pattern)
        return Call("ListTopics", request, self._add)

    def _add(self, page: events_pb2.ListTopicsResponse) -> None:
        self.names += page.topics
        self._token = page.next_page_token or None


# ---------------------------------------------------------------- streams


def consume_start(
    *,
    topic: str,
    group: str,
    group_start: str,
    ack_timeout: Seconds | None,
    max_deliveries: int,
    dead_letter_topic: str,
    prefetch: int,
) -> events_pb2.ConsumeRequest:
    if group_start not in STARTS:
        raise ValueError("group_start must be 'latest' or 'earliest'")
    return events_pb2.ConsumeRequest(
        start=events_pb2.ConsumeStart(
            topic=topic,
            group=group,
            group_start=STARTS[group_start],
            ack_timeout=duration_field(ack_timeout, "ack_timeout"),
            max_deliveries=max_deliveries,
            dead_letter_topic=dead_letter_topic,
            initial_credits=prefetch,
        )
    )


def credit(count: int) -> events_pb2.ConsumeRequest:
    return events_pb2.ConsumeRequest(credit=events_pb2.ConsumeCredit(count=count))


def ack(event: Event) -> events_pb2.ConsumeRequest:
    return events_pb2.ConsumeRequest(ack=events_pb2.ConsumeAck(ids=[event.id]))


def nack(event: Event) -> events_pb2.ConsumeRequest:
    """Hand ``event`` back to the group for redelivery at once."""
    return events_pb2.ConsumeRequest(nack=events_pb2.ConsumeNack(ids=[event.id]))


def consumed(frame: events_pb2.ConsumeResponse) -> list[Event]:
    """The events a Consume frame delivers (none for the other frames)."""
    if frame.WhichOneof("frame") != "events":
        return []
    return [event(e) for e in frame.events.events]


def consume_gap(frame: events_pb2.ConsumeResponse) -> Gap | None:
    """The Gap a Consume frame reports (retention removed events the group never read), or None."""
    if frame.WhichOneof("frame") != "gap":
        return None
    return gap(frame.gap)


def gap(message: events_pb2.Gap) -> Gap:
    return Gap(
        message.topic,
        message.after_id,
        message.first_available_id,
        message.after_sequence,
        message.next_sequence,
    )


def event(message: events_pb2.Event) -> Event:
    return Event(
        message.topic,
        message.id,
        message.data,
        message.content_type,
        dict(message.headers),
        utc_or_none(message.publish_time),
        message.delivery_count,
        message.sequence,
    )


def subscription_resumable(error: CoordError) -> bool:
    """Whether a subscription that failed with ``error`` reconnects and resumes from its cursors."""
    return error.code in _RESUMABLE or error.reason == _TOO_SLOW


def consume_resumable(error: CoordError) -> bool:
    """Whether a Consume stream that failed with ``error`` reconnects (unacked events come again)."""
    return error.code in _RESUMABLE


# ---------------------------------------------------------------- builders and parsers


def _bytes(data: Data) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _publish_request(item: PublishItem) -> events_pb2.PublishRequest:
    return events_pb2.PublishRequest(
        topic=item.topic,
        data=_bytes(item.data),
        content_type=item.content_type,
        headers=dict(item.headers or {}),
        dedup_id=item.dedup_id or "",
        volatile=item.volatile,
    )


def _publish_result(topic: str, response: events_pb2.PublishResponse) -> PublishResult:
    return PublishResult(
        topic, response.id, response.duplicate, utc_or_none(response.publish_time), response.sequence
    )


def _topic_info(info: events_pb2.TopicInfo) -> TopicInfo:
    return TopicInfo(
        name=info.name,
        exists=info.exists,
        length=info.length,
        first_id=info.first_id,
        last_id=info.last_id,
        max_length=info.retention.max_length,
        max_age=timedelta(seconds=from_duration(info.retention.max_age)),
        groups=[
            GroupInfo(g.name, g.consumers, g.pending, g.last_delivered_id, g.lag if g.lag_known else None)
            for g in info.groups
        ],
        local_subscribers=info.local_subscribers,
    )
