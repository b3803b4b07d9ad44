"""The Lock, Session and Events services' own metrics: exact counts after a known set of calls, gauges
back to 0 when their streams end, and consumer-group backlog equal to XINFO GROUPS, on a single node
and a Cluster."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from coord.events.v1 import events_pb2, events_pb2_grpc
from coord.lock.v1 import lock_pb2
from coord.session.v1 import session_pb2, session_pb2_grpc
from coord_server.events.keys import EventsKeys
from coord_server.metrics import event_groups

from ..conftest import CoordUnderTest, free_port, wait_for
from ..events.helpers import EARLIEST, LATEST, Consumer, Stream
from ..lock._util import HoldStream, S, Stub, X, acquire, dur, queue_length, release
from .test_metrics import Samples, samples, value, with_label

Metered = tuple[Any, int, CoordUnderTest]
WAIT = 20.0  # seconds a stream has to end (a loaded machine is slow, not wrong)


@pytest.fixture
def metered(
    coord: CoordUnderTest, start_coord: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Metered:
    # Groups sampled often, so a test waits a fraction of a second for the next sample, not 15 s.
    monkeypatch.setattr(event_groups, "GROUPS_INTERVAL", 0.1)
    port = free_port()
    server = start_coord(
        coord.backing.url, cluster=coord.kind == "cluster", metrics_listen=f"127.0.0.1:{port}"
    )
    return server, port, coord


@pytest.fixture
def channel(metered: Metered) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(metered[0].target) as ch:
        yield ch


def until(port: int, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``check`` holds (a figure set by another task, or after the reply); the last scrape."""
    found: dict[str, Samples] = {}

    def scraped() -> bool:
        found["last"] = samples(port)
        return check(found["last"])

    wait_for(scraped, what)
    return found["last"]


# -- Lock ---------------------------------------------------------------------------------------------


def test_lock_grants_waiters_and_wait(metered: Metered, channel: grpc.Channel) -> None:
    _, port, _ = metered
    stub = Stub(channel)
    holder = acquire(stub, "a", ttl=60).grant  # exclusive 1
    assert acquire(stub, "a").acquired is False  # a try-lock denied: no grant
    for _ in range(2):
        assert acquire(stub, "b", mode=S).acquired  # shared 1, 2
    assert acquire(stub, "c", mode=S, limit=1).acquired  # a semaphore: shared 3
    # A wait that runs out: queued, never granted, so no wait observed.
    assert acquire(stub, "c", mode=S, limit=1, wait=0.2).acquired is False
    hold = HoldStream(stub)
    hold.acquire("h", mode=X, ttl=dur(30))
    assert hold.next().WhichOneof("kind") == "acquired"  # exclusive 2

    results: list[lock_pb2.AcquireResponse] = []
    waiter = threading.Thread(target=lambda: results.append(acquire(stub, "a", ttl=30, wait=30)))
    waiter.start()
    wait_for(lambda: queue_length(stub, "a") == 1, "the waiter to queue")
    until(port, lambda s: value(s, "coord_lock_waiters") == 1, "coord_lock_waiters 1")
    assert release(stub, "a", holder.lock_token) == lock_pb2.RELEASE_OUTCOME_RELEASED
    waiter.join(40)
    assert results[0].acquired  # exclusive 3, after a wait
    hold.close()

    found = samples(port)
    assert value(found, "coord_lock_grants_total", mode="exclusive") == 3
    assert value(found, "coord_lock_grants_total", mode="shared") == 3
    assert value(found, "coord_lock_waiters") == 0
    assert value(found, "coord_lock_wait_seconds_count") == 1
    assert value(found, "coord_lock_wait_seconds_bucket", le="+Inf") == 1
    assert value(found, "coord_lock_wait_seconds_sum") > 0


# -- Session ------------------------------------------------------------------------------------------


def test_sessions_created_and_revoked(metered: Metered, channel: grpc.Channel) -> None:
    _, port, _ = metered
    stub = session_pb2_grpc.SessionServiceStub(channel)
    user = [stub.Create(session_pb2.CreateRequest(subject="u")) for _ in range(3)]
    anonymous = [stub.Create(session_pb2.CreateRequest()) for _ in range(2)]
    assert stub.Revoke(session_pb2.RevokeRequest(token=anonymous[0].token)).revoked  # revoked 1
    assert not stub.Revoke(session_pb2.RevokeRequest(token=anonymous[0].token)).revoked  # not again
    assert stub.Revoke(session_pb2.RevokeRequest(session_id=user[0].session.session_id)).revoked  # 2
    assert stub.RevokeAll(session_pb2.RevokeAllRequest(subject="u")).revoked_count == 2  # 4
    assert stub.RevokeAll(session_pb2.RevokeAllRequest(subject="u")).revoked_count == 0
    # One session allowed, the oldest evicted to make room: the second Create ends the first.
    limited = session_pb2.CreateRequest(
        subject="v", max_sessions=1, limit_policy=session_pb2.LIMIT_POLICY_EVICT_OLDEST
    )
    stub.Create(limited)
    assert len(stub.Create(limited).evicted_session_ids) == 1  # revoked 5

    found = samples(port)
    assert value(found, "coord_sessions_created_total") == 7
    assert value(found, "coord_sessions_revoked_total") == 5


# -- Events -------------------------------------------------------------------------------------------


def test_subscribers_and_events_delivered(metered: Metered, channel: grpc.Channel) -> None:
    _, port, _ = metered
    stub = events_pb2_grpc.EventsServiceStub(channel)
    assert value(samples(port), "coord_events_subscribers") == 0
    durable = Stream(stub.Subscribe(events_pb2.SubscribeRequest(topics=["t"], start=LATEST)))
    durable.next_of("subscribed")
    until(port, lambda s: value(s, "coord_events_subscribers") == 1, "one subscriber")
    for i in range(7):
        stub.Publish(events_pb2.PublishRequest(topic="t", data=b"%d" % i))
    assert len(durable.events(7)) == 7

    volatile = Stream(stub.Subscribe(events_pb2.SubscribeRequest(topics=["v"], start=LATEST, volatile=True)))
    volatile.next_of("subscribed")
    until(port, lambda s: value(s, "coord_events_subscribers") == 2, "two subscribers")
    for i in range(3):
        assert (
            stub.Publish(events_pb2.PublishRequest(topic="v", data=b"%d" % i, volatile=True)).receivers == 1
        )
    assert len(volatile.events(3)) == 3

    found = samples(port)
    assert value(found, "coord_events_delivered_total", kind="subscribe") == 10
    assert value(found, "coord_events_delivered_total", kind="consume") == 0
    durable.cancel()
    volatile.cancel()
    until(port, lambda s: value(s, "coord_events_subscribers") == 0, "no subscriber")


def xinfo_group(coord: CoordUnderTest, topic: str, group: str) -> dict[str, Any]:
    client = coord.redis()
    try:
        groups = client.xinfo_groups(EventsKeys("default").stream(topic))
    finally:
        client.close()
    [found] = [g for g in groups if g["name"] in (group, group.encode())]
    return dict(found)


def test_consumed_and_group_backlog_match_xinfo_groups(metered: Metered, channel: grpc.Channel) -> None:
    _, port, under_test = metered
    stub = events_pb2_grpc.EventsServiceStub(channel)
    for i in range(10):  # M = 10
        stub.Publish(events_pb2.PublishRequest(topic="jobs", data=b"%d" % i))
    first = Consumer(stub, "jobs", "g", group_start=EARLIEST, initial_credits=4)
    assert len(first.events(4)) == 4  # K = 4, not acknowledged
    second = Consumer(stub, "jobs", "g", initial_credits=0)  # the same group, reading nothing
    labels = {"tenant": "default", "topic": "jobs", "group": "g"}
    info = xinfo_group(under_test, "jobs", "g")
    assert (info["pending"], info["lag"]) == (4, 6)
    found = until(
        port,
        lambda s: (
            value(s, "coord_events_group_pending", **labels) == 4
            and value(s, "coord_events_group_lag", **labels) == 6
        ),
        "the group's backlog sampled",
    )
    assert value(found, "coord_events_delivered_total", kind="consume") == 4
    # Exactly the consumed group, nothing else.
    assert len(with_label(found, "coord_events_group_pending")) == 1
    assert len(with_label(found, "coord_events_group_lag")) == 1

    # The first stream half-closes and ends (OK): the server has handed its 4 events back to the
    # group by then. (Cancelling it instead would race that hand-over, and a lost race leaves them
    # to the ack timeout, after this test's wait.)
    first.requests.close()
    assert first.stream.done.wait(WAIT) and first.stream.error is None
    # One stream of the group is left here: its series stay, and follow Redis.
    # It gets the 6 events never delivered and the 4 the first one held, in whichever order its
    # reads and sweeps meet them.
    second.credit(10)
    assert len(second.events(10)) == 10
    info = xinfo_group(under_test, "jobs", "g")
    assert (info["pending"], info["lag"]) == (10, 0)
    until(
        port,
        lambda s: (
            value(s, "coord_events_group_lag", **labels) == 0
            and value(s, "coord_events_group_pending", **labels) == info["pending"]
        ),
        "the backlog after the second consumer read the rest",
    )
    assert value(samples(port), "coord_events_delivered_total", kind="consume") == 14
    second.close()
    until(
        port,
        lambda s: (
            not with_label(s, "coord_events_group_pending") and not with_label(s, "coord_events_group_lag")
        ),
        "the group's series removed",
    )
