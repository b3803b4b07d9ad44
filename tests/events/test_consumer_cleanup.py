"""A group's consumer list does not grow with every Consume stream that ever joined it.

Each stream joins its group under a name of its own; when it ends, it is taken out of the group if
it holds nothing (and so is, later, a stream that ended holding events, once they were claimed by
another consumer and it has been idle for an ack timeout). A consumer that still holds events is
never taken out: its pending events must stay claimable.
"""

from __future__ import annotations

from collections.abc import Callable

from coord.events.v1 import events_pb2

from ..conftest import wait_for
from .helpers import Consumer, ms, publish, publish_many


def _consumers(stub, topic: str) -> int:  # type: ignore[no-untyped-def]
    groups = stub.GetTopic(events_pb2.GetTopicRequest(topic=topic)).topic.groups
    return sum(g.consumers for g in groups)


def _until(check: Callable[[], bool], what: str) -> None:
    wait_for(check, what, timeout=20)


def test_streams_that_come_and_go_leave_no_consumers_behind(stub) -> None:  # type: ignore[no-untyped-def]
    ids = publish_many(stub, "churn", [b"%d" % i for i in range(12)])
    for n in range(12):
        consumer = Consumer(stub, "churn", "workers", initial_credits=1, ack_timeout=ms(60_000))
        [event] = consumer.events(1)
        assert event.id == ids[n]
        consumer.ack(event.id)
        _until(lambda: _pending(stub, "churn") == 0, "the ack")
        consumer.close()
    # Twelve streams joined; each one that ended holding nothing was taken out of the group.
    _until(lambda: _consumers(stub, "churn") == 0, "the group's consumers to be taken out")


def test_a_consumer_holding_events_stays_until_they_are_claimed(stub) -> None:  # type: ignore[no-untyped-def]
    event_id = publish(stub, "held", b"x")
    first = Consumer(stub, "held", "g", initial_credits=1, ack_timeout=ms(500))
    assert first.events(1)[0].id == event_id
    second = Consumer(stub, "held", "g", initial_credits=0, ack_timeout=ms(500))
    # The first ends holding the event: it stays a member. Taken out, its pending event would be
    # dropped from the group (XGROUP DELCONSUMER) and never delivered again.
    first.close()
    second.credit(1)
    again = second.events(1, timeout=15)[0]
    assert (again.id, again.delivery_count) == (event_id, 2)
    second.ack(again.id)
    _until(lambda: _pending(stub, "held") == 0, "the ack")
    second.close()

    def a_leaving_stream_takes_it_out() -> bool:
        # Once the first holds nothing and has been idle an ack timeout, the end of any later stream
        # of the group takes it out (and that stream itself, which holds nothing).
        Consumer(stub, "held", "g", initial_credits=0, ack_timeout=ms(500)).close()
        return _consumers(stub, "held") == 0

    _until(a_leaving_stream_takes_it_out, "the idle consumer to be taken out")


def _pending(stub, topic: str) -> int:  # type: ignore[no-untyped-def]
    groups = stub.GetTopic(events_pb2.GetTopicRequest(topic=topic)).topic.groups
    return sum(g.pending for g in groups)
