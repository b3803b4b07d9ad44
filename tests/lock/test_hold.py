"""The Hold stream: queued -> acquired -> renewed, released at once when the stream ends or breaks,
lost with a reason — against single-node Redis and Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from coord.lock.v1 import lock_pb2 as pb

from ..conftest import CoordUnderTest, wait_for
from ._util import HoldStream, Stub, X, acquire, describe, dur, error_info, lock_stub, release


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with lock_stub(coord.target) as s:
        yield s


def test_hold_acquire_renew_release(stub: Stub) -> None:
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(5), owner="holder")
    acquired = hold.next().acquired
    assert acquired.fencing_token > 0 and acquired.lock_token
    assert describe(stub).holders[0].owner == "holder"
    for ttl in (None, 60.0):
        hold.heartbeat(ttl)
        renewed = hold.next()
        assert renewed.WhichOneof("kind") == "renewed"
        assert renewed.renewed.fencing_token == acquired.fencing_token
        assert renewed.renewed.valid_for.ToMilliseconds() <= (ttl or 5) * 1000
    assert describe(stub).holders[0].remaining.ToMilliseconds() > 50_000
    hold.send(pb.HoldRequest(release=pb.HoldRelease()))
    assert hold.next().released.outcome == pb.RELEASE_OUTCOME_RELEASED
    with pytest.raises(StopIteration):
        hold.next()
    assert describe(stub).holder_count == 0


def test_hold_waits_in_queue_then_acquires(stub: Stub) -> None:
    holder = acquire(stub, ttl=60, owner="first").grant
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(30), wait=dur(30))
    queued = hold.next()
    assert queued.queued.position == 1 and queued.queued.holders[0].owner == "first"
    release(stub, "L", holder.lock_token)
    assert hold.next().acquired.fencing_token > holder.fencing_token
    hold.close()


def test_cut_stream_releases_at_once(stub: Stub) -> None:
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(100))
    hold.next()
    assert describe(stub).holder_count == 1
    hold.cut()
    # The lease has 100 s left: only the broken stream can free the lock this soon.
    wait_for(lambda: describe(stub).holder_count == 0, "the lock to be released", timeout=10)
    assert acquire(stub).acquired


def test_half_closed_stream_releases_at_once(stub: Stub) -> None:
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(100))
    hold.next()
    hold.close()
    with pytest.raises(StopIteration):
        hold.next()
    wait_for(lambda: describe(stub).holder_count == 0, "the lock to be released", timeout=10)


def test_cut_stream_while_queued_leaves_the_queue(stub: Stub) -> None:
    acquire(stub, ttl=100)
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(30), wait=dur(60))
    assert hold.next().WhichOneof("kind") == "queued"
    hold.cut()
    wait_for(lambda: describe(stub).queue_length == 0, "the waiter to leave", timeout=10)


def test_release_while_queued_answers_not_acquired(stub: Stub) -> None:
    acquire(stub, ttl=100)
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(30), wait=dur(60))
    hold.next()
    hold.send(pb.HoldRequest(release=pb.HoldRelease()))
    assert hold.next().WhichOneof("kind") == "not_acquired"
    assert describe(stub).queue_length == 0


def test_try_hold_on_a_held_lock_is_not_acquired(stub: Stub) -> None:
    acquire(stub, owner="busy")
    hold = HoldStream(stub)
    hold.acquire(mode=X)
    response = hold.next()
    assert response.not_acquired.holders[0].owner == "busy"
    assert response.not_acquired.queue_position == 0
    with pytest.raises(StopIteration):
        hold.next()


def test_missing_heartbeat_loses_the_lock(stub: Stub) -> None:
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(0.3))
    first = hold.next().acquired
    lost = hold.next().lost
    assert lost.reason == pb.LOST_REASON_EXPIRED and lost.message
    assert describe(stub).holder_count == 0
    assert acquire(stub).grant.fencing_token > first.fencing_token


def test_grant_released_elsewhere_is_lost_on_next_heartbeat(stub: Stub) -> None:
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(30))
    grant = hold.next().acquired
    assert release(stub, "L", grant.lock_token) == pb.RELEASE_OUTCOME_RELEASED
    hold.heartbeat()
    assert hold.next().lost.reason == pb.LOST_REASON_NOT_HELD


def test_first_message_must_be_acquire(stub: Stub) -> None:
    hold = HoldStream(stub)
    hold.heartbeat()
    with pytest.raises(grpc.RpcError) as excinfo:
        hold.next()
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == "acquire"


def test_hold_validates_the_acquire_message(stub: Stub) -> None:
    hold = HoldStream(stub)
    hold.acquire(name="", mode=X)
    with pytest.raises(grpc.RpcError) as excinfo:
        hold.next()
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == "acquire.name"


def test_second_acquire_on_a_stream_is_refused_and_releases(stub: Stub) -> None:
    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(100))
    hold.next()
    hold.acquire(mode=X)
    with pytest.raises(grpc.RpcError) as excinfo:
        hold.next()
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    wait_for(lambda: describe(stub).holder_count == 0, "the lock to be released", timeout=10)
