from __future__ import annotations

import threading

from coord.events.v1 import events_pb2

from .helpers import EARLIEST, LATEST, id_pair, ms, publish, publish_many, subscribe


def test_publish_returns_increasing_ids_and_earliest_replays_in_order(stub):
    ids = [
        publish(stub, "orders.created", f"e{i}".encode(), content_type="text/plain", headers={"k": str(i)})
        for i in range(5)
    ]
    assert [id_pair(i) for i in ids] == sorted(id_pair(i) for i in ids)
    assert len(set(ids)) == 5
    stream = subscribe(stub, "orders.created", start=EARLIEST)
    subscribed = stream.next_of("subscribed")
    assert [(c.topic, c.after_id) for c in subscribed.starts] == [("orders.created", "0-0")]
    events = stream.events(5)
    assert [e.id for e in events] == ids
    assert [e.data for e in events] == [f"e{i}".encode() for i in range(5)]
    assert events[2].headers == {"k": "2"}
    assert events[0].content_type == "text/plain"
    assert events[0].publish_time.ToMilliseconds() == id_pair(ids[0])[0]
    stream.cancel()


def test_latest_delivers_only_new_events(stub):
    publish(stub, "t", b"old")
    stream = subscribe(stub, "t", start=LATEST)
    start = stream.next_of("subscribed").starts[0]
    new = publish(stub, "t", b"new")
    (event,) = stream.events(1)
    assert (event.id, event.data) == (new, b"new")
    assert id_pair(start.after_id) < id_pair(new)
    stream.cancel()


def test_resume_after_id_under_concurrent_publisher_has_no_gap_and_no_duplicate(stub):
    total = 600
    first = publish_many(stub, "load", [b"%d" % i for i in range(100)])
    published: list[str] = list(first)
    done = threading.Event()

    def publisher() -> None:
        for i in range(100, total, 20):
            published.extend(publish_many(stub, "load", [b"%d" % j for j in range(i, i + 20)]))
        done.set()

    thread = threading.Thread(target=publisher)
    thread.start()
    # Resume in the middle of the history while the publisher keeps appending: catch-up then live.
    stream = subscribe(
        stub, "load", start=LATEST, cursors=[events_pb2.TopicCursor(topic="load", after_id=first[49])]
    )
    got = stream.events(total - 50, timeout=30)
    thread.join()
    assert done.is_set()
    assert [e.id for e in got] == published[50:]
    assert [e.data for e in got] == [b"%d" % i for i in range(50, total)]
    assert not [f for f in stream.quiet(0.3) if f.WhichOneof("frame") == "events"]
    stream.cancel()


def test_progress_heartbeats_while_idle_carry_a_safe_cursor(stub):
    last = publish(stub, "quiet", b"x")
    stream = subscribe(stub, "quiet", start=EARLIEST, heartbeat_interval=ms(150))
    assert stream.events(1)[0].id == last
    progress = stream.next_of("progress", timeout=5)
    assert [(c.topic, c.after_id) for c in progress.cursors] == [("quiet", last)]
    again = stream.next_of("progress", timeout=5)
    assert again.cursors[0].after_id == last
    stream.cancel()


def test_dedup_id_returns_first_id_flagged_duplicate(stub):
    first = stub.Publish(events_pb2.PublishRequest(topic="pay", data=b"a", dedup_id="req-1"))
    again = stub.Publish(events_pb2.PublishRequest(topic="pay", data=b"b", dedup_id="req-1"))
    other = stub.Publish(events_pb2.PublishRequest(topic="pay", data=b"c", dedup_id="req-2"))
    assert not first.duplicate and again.duplicate and not other.duplicate
    assert again.id == first.id != other.id
    stream = subscribe(stub, "pay", start=EARLIEST)
    assert [e.data for e in stream.events(2)] == [b"a", b"c"]
    stream.cancel()


def test_batch_publish_keeps_order_per_topic_across_topics(stub):
    reply = stub.BatchPublish(
        events_pb2.BatchPublishRequest(
            requests=[events_pb2.PublishRequest(topic=f"b.{i % 3}", data=b"%d" % i) for i in range(30)]
        )
    )
    assert len(reply.responses) == 30
    for t in range(3):
        stream = subscribe(stub, f"b.{t}", start=EARLIEST)
        events = stream.events(10)
        assert [e.data for e in events] == [b"%d" % i for i in range(t, 30, 3)]
        assert [e.id for e in events] == [reply.responses[i].id for i in range(t, 30, 3)]
        stream.cancel()
