from __future__ import annotations

import grpc

from coord.events.v1 import events_pb2

from .helpers import EARLIEST, LATEST, Consumer, Requests, Stream, ms, publish, publish_many, subscribe


def test_credits_bound_deliveries_and_ack_settles(stub):
    ids = publish_many(stub, "jobs", [b"%d" % i for i in range(10)])
    consumer = Consumer(stub, "jobs", "workers", initial_credits=3, ack_timeout=ms(60_000))
    assert consumer.started.group_created and consumer.started.dead_letter_topic == "jobs.dlq"
    first = consumer.events(3)
    assert [e.id for e in first] == ids[:3]
    assert all(e.delivery_count == 1 for e in first)
    # No credit left: nothing more arrives, even though seven events wait.
    assert not [f for f in consumer.stream.quiet(0.3) if f.WhichOneof("frame") == "events"]
    consumer.ack(*[e.id for e in first])
    consumer.credit(7)
    rest = consumer.events(7)
    assert [e.id for e in rest] == ids[3:]
    consumer.ack(*[e.id for e in rest])

    def pending() -> int:
        groups = stub.GetTopic(events_pb2.GetTopicRequest(topic="jobs")).topic.groups
        return groups[0].pending

    _wait(lambda: pending() == 0)
    group = stub.GetTopic(events_pb2.GetTopicRequest(topic="jobs")).topic.groups[0]
    assert (group.name, group.last_delivered_id) == ("workers", ids[-1])
    assert group.lag_known and group.lag == 0
    consumer.close()


def test_group_start_latest_skips_history_and_gets_new_events(stub):
    publish(stub, "q", b"old")
    consumer = Consumer(stub, "q", "g", group_start=LATEST, initial_credits=10)
    new = publish(stub, "q", b"new")
    (event,) = consumer.events(1)
    assert (event.id, event.data) == (new, b"new")
    consumer.close()


def test_each_event_goes_to_exactly_one_consumer(stub):
    consumers = [
        Consumer(stub, "work", "pool", initial_credits=1000, ack_timeout=ms(60_000)) for _ in range(3)
    ]
    assert [c.started.group_created for c in consumers].count(True) == 1
    ids = publish_many(stub, "work", [b"%d" % i for i in range(300)])
    seen: list[str] = []
    per_consumer = []
    for c in consumers:
        frames = c.stream.quiet(1.0)
        got = [e.id for f in frames if f.WhichOneof("frame") == "events" for e in f.events.events]
        per_consumer.append(got)
        seen += got
    while len(seen) < len(ids):  # stragglers
        for c, got in zip(consumers, per_consumer, strict=True):
            more = [
                e.id
                for f in c.stream.quiet(0.2)
                if f.WhichOneof("frame") == "events"
                for e in f.events.events
            ]
            got.extend(more)
            seen += more
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    for c in consumers:
        c.close()


def test_unacked_event_is_redelivered_after_the_ack_timeout(stub):
    event_id = publish(stub, "slow", b"x")
    first = Consumer(stub, "slow", "g", initial_credits=1, ack_timeout=ms(300))
    assert first.events(1)[0].delivery_count == 1
    second = Consumer(stub, "slow", "g", initial_credits=1, ack_timeout=ms(300))
    again = second.events(1, timeout=10)[0]
    assert (again.id, again.delivery_count) == (event_id, 2)
    second.ack(event_id)
    first.close()
    second.close()


def test_extend_keeps_an_event_from_redelivery(stub):
    event_id = publish(stub, "ext", b"x")
    holder = Consumer(stub, "ext", "g", initial_credits=1, ack_timeout=ms(600))
    assert holder.events(1)[0].id == event_id
    other = Consumer(stub, "ext", "g", initial_credits=1, ack_timeout=ms(600))
    for _ in range(4):  # 4 x 300 ms > the ack timeout, extended every 300 ms
        holder.extend(event_id)
        assert not [f for f in other.stream.quiet(0.3) if f.WhichOneof("frame") == "events"]
    holder.ack(event_id)
    holder.close()
    other.close()


def test_nack_with_delay_redelivers_after_the_delay(stub):
    event_id = publish(stub, "retry", b"x")
    consumer = Consumer(stub, "retry", "g", initial_credits=5, ack_timeout=ms(10_000))
    assert consumer.events(1)[0].id == event_id
    consumer.nack(event_id, delay_ms=400)
    assert not [f for f in consumer.stream.quiet(0.25) if f.WhichOneof("frame") == "events"]
    again = consumer.events(1, timeout=5)[0]
    assert (again.id, again.delivery_count) == (event_id, 2)
    consumer.nack(event_id)  # no delay: back at once
    third = consumer.events(1, timeout=5)[0]
    assert (third.id, third.delivery_count) == (event_id, 3)
    consumer.close()


def test_dead_letter_after_max_deliveries_is_subscribable(stub):
    dlq = subscribe(stub, "mail.dlq", start=LATEST)
    dlq.next_of("subscribed")
    event_id = publish(stub, "mail", b"poison", headers={"a": "1"})
    consumer = Consumer(stub, "mail", "senders", initial_credits=10, ack_timeout=ms(200), max_deliveries=2)
    assert consumer.events(1)[0].delivery_count == 1
    assert consumer.events(1)[0].delivery_count == 2  # not acked: redelivered once
    dead = consumer.stream.next_of("dead_lettered", timeout=10)
    assert list(dead.ids) == [event_id]
    (copy,) = dlq.events(1)
    assert copy.id == dead.dead_letter_ids[0]
    assert copy.data == b"poison"
    assert copy.headers["a"] == "1"
    assert copy.headers["coord-origin-topic"] == "mail"
    assert copy.headers["coord-origin-id"] == event_id
    assert copy.headers["coord-group"] == "senders"
    assert copy.headers["coord-deliveries"] == "2"
    assert stub.GetTopic(events_pb2.GetTopicRequest(topic="mail")).topic.groups[0].pending == 0
    consumer.close()
    dlq.cancel()


def test_closing_a_consumer_hands_its_events_to_the_group_at_once(stub):
    event_id = publish(stub, "handoff", b"x")
    first = Consumer(stub, "handoff", "g", initial_credits=1, ack_timeout=ms(60_000))
    assert first.events(1)[0].id == event_id
    first.close()
    second = Consumer(stub, "handoff", "g", initial_credits=1, ack_timeout=ms(60_000))
    again = second.events(1, timeout=10)[0]  # well before the 60 s ack timeout
    assert (again.id, again.delivery_count) == (event_id, 2)
    second.close()


def test_consume_must_start_with_consume_start(stub):
    call = stub.Consume(iter([events_pb2.ConsumeRequest(credit=events_pb2.ConsumeCredit(count=1))]))
    try:
        list(call)
        raise AssertionError("expected an error")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        from .helpers import error_info

        assert error_info(error).reason == "EVENTS_CONSUME_NOT_STARTED"


def _wait(check, timeout: float = 10.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end
        time.sleep(0.02)


def test_consume_ends_when_its_group_disappears(stub, coord):
    publish(stub, "vanish", b"x")
    consumer = Consumer(stub, "vanish", "g", initial_credits=5, ack_timeout=ms(200))
    consumer.events(1)
    client = coord.redis()
    try:
        client.delete("coord:default:events:{vanish}")  # as if the topic expired
    finally:
        client.close()
    error = consumer.stream.wait_error(timeout=10)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    from .helpers import error_info

    assert error_info(error).reason == "EVENTS_GROUP_NOT_FOUND"
    consumer.close()


def test_a_half_close_ends_the_stream_with_ok_once_its_acks_are_applied(stub):
    """events.proto: when the client half-closes, the server applies every action it received, ends
    the stream with OK and hands the events still unacknowledged back to the group at once.

    No time is measured. The consumer has no credit left and an ack timeout of an hour, so nothing
    but the half-close can end its stream (no sweep runs without credit, no event is due for
    redelivery): a server that missed it would hold the stream until the call's own deadline, which
    would end it with DEADLINE_EXCEEDED, not OK."""
    ids = publish_many(stub, "halfclose", [b"a", b"b"])
    requests = Requests()
    start = events_pb2.ConsumeStart(
        topic="halfclose", group="g", group_start=EARLIEST, initial_credits=2, ack_timeout=ms(3_600_000)
    )
    requests.send(events_pb2.ConsumeRequest(start=start))
    stream = Stream(stub.Consume(iter(requests), timeout=20))
    assert [e.id for e in stream.events(2)] == ids  # every credit used
    requests.send(events_pb2.ConsumeRequest(ack=events_pb2.ConsumeAck(ids=[ids[0]])))
    requests.close()  # the half-close, right behind the ack
    assert stream.done.wait(30)
    assert stream.error is None, stream.error  # ended by the server, with OK
    group = stub.GetTopic(events_pb2.GetTopicRequest(topic="halfclose")).topic.groups[0]
    assert group.pending == 1  # the ack sent before the half-close was applied; the other is pending
    second = Consumer(stub, "halfclose", "g", initial_credits=1, ack_timeout=ms(3_600_000))
    (again,) = second.events(1)  # handed back at once, not after the hour
    assert (again.id, again.delivery_count) == (ids[1], 2)
    second.close()
