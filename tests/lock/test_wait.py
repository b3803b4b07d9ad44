"""Waiting: FIFO queue, wake-ups by notification (no polling), cancellation, dead waiters, deadlines —
against single-node Redis and Redis Cluster."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc
import pytest

from coord.lock.v1 import lock_pb2 as pb

from ..conftest import CoordThread, CoordUnderTest, RedisProcess, wait_for
from ._util import S, Stub, X, acquire, describe, dur, lock_stub, queue_length, release

# Settings under which only a wake-up notification can end a wait within a test: the fallback timer,
# waiter heartbeat and waiter TTL are all far longer than any wait below.
NO_FALLBACK = {"lock_fallback": 120.0, "lock_waiter_heartbeat": 100.0, "lock_waiter_ttl": 300.0}


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with lock_stub(coord.target) as s:
        yield s


def private_server(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread], **settings: float
) -> CoordThread:
    """A second Coord on the same Redis (single or cluster) as ``coord``."""
    return start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", **settings)


def start_waiter(stub: Stub, results: list[object], name: str = "L", **kwargs: object) -> threading.Thread:
    def run() -> None:
        results.append(acquire(stub, name, **kwargs))  # type: ignore[arg-type]

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_wait_is_granted_on_release_of_another_server_by_notification(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    other = private_server(coord, start_coord, **NO_FALLBACK)
    holder = acquire(stub, ttl=100).grant
    results: list[pb.AcquireResponse] = []
    with lock_stub(other.target) as far:
        thread = start_waiter(far, results, ttl=30, wait=30, owner="far")
        wait_for(lambda: queue_length(stub) == 1, "the waiter to queue", timeout=10)
        assert release(stub, "L", holder.lock_token) == pb.RELEASE_OUTCOME_RELEASED
        thread.join(40)
    # With a 100 s lease, a 120 s fallback and a 100 s heartbeat, only the published wake-up can have
    # ended the 30 s wait with a grant (without it, the wait ends at 30 s, not acquired).
    [result] = results
    assert result.acquired and result.grant.fencing_token > holder.fencing_token
    assert describe(stub).holders[0].owner == "far"


def test_wait_is_granted_on_local_release_by_notification(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    server = private_server(coord, start_coord, **NO_FALLBACK)
    with lock_stub(server.target) as stub:
        holder = acquire(stub, ttl=100).grant
        results: list[pb.AcquireResponse] = []
        thread = start_waiter(stub, results, ttl=30, wait=30)
        wait_for(lambda: queue_length(stub) == 1, "the waiter to queue", timeout=10)
        release(stub, "L", holder.lock_token)
        thread.join(40)
        assert results[0].acquired
        assert describe(stub).queue_length == 0


def test_waiter_is_granted_when_the_holder_expires(stub: Stub) -> None:
    holder = acquire(stub, ttl=0.3).grant
    resp = acquire(stub, ttl=30, wait=20)
    assert resp.acquired and resp.grant.fencing_token > holder.fencing_token
    assert release(stub, "L", holder.lock_token) == pb.RELEASE_OUTCOME_EXPIRED


def test_waiters_are_granted_in_fifo_order(stub: Stub) -> None:
    holder = acquire(stub, ttl=60).grant
    order: list[str] = []
    threads = []

    def waiter(name: str) -> None:
        resp = acquire(stub, ttl=30, wait=30, owner=name)
        assert resp.acquired
        order.append(name)
        release(stub, "L", resp.grant.lock_token)

    for i in range(5):
        thread = threading.Thread(target=waiter, args=(f"w{i}",))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=i + 1: queue_length(stub) == n, f"{i + 1} waiters", timeout=10)
    # A try-lock never passes the queue, even though it would fit once the holder is gone.
    release(stub, "L", holder.lock_token)
    for thread in threads:
        thread.join(60)
    assert order == [f"w{i}" for i in range(5)]
    assert queue_length(stub) == 0


def test_try_lock_does_not_barge_past_waiters(stub: Stub) -> None:
    holder = acquire(stub, mode=S, limit=2).grant
    results: list[pb.AcquireResponse] = []
    thread = start_waiter(stub, results, mode=X, ttl=30, wait=30)
    wait_for(lambda: queue_length(stub) == 1, "the writer to queue", timeout=10)
    denied = acquire(stub, mode=S, limit=2)
    assert not denied.acquired, "the semaphore has room, but a waiter is ahead"
    assert denied.queue_length == 1
    release(stub, "L", holder.lock_token)
    thread.join(40)
    assert results[0].acquired


def test_writer_preference_readers_queue_behind_a_waiting_writer(stub: Stub) -> None:
    r1 = acquire(stub, mode=S, owner="r1").grant
    writer: list[pb.AcquireResponse] = []
    w_thread = start_waiter(stub, writer, mode=X, ttl=30, wait=30, owner="w")
    wait_for(lambda: queue_length(stub) == 1, "the writer to queue", timeout=10)
    assert not acquire(stub, mode=S).acquired, "a new reader must not starve the waiting writer"
    readers: list[pb.AcquireResponse] = []
    r_threads = [start_waiter(stub, readers, mode=S, ttl=30, wait=30, owner=f"r{i}") for i in (2, 3)]
    wait_for(lambda: queue_length(stub) == 3, "the readers to queue", timeout=10)
    release(stub, "L", r1.lock_token)
    w_thread.join(40)
    assert writer[0].acquired
    info = describe(stub)
    assert [h.owner for h in info.holders] == ["w"] and info.queue_length == 2
    release(stub, "L", writer[0].grant.lock_token)
    for t in r_threads:
        t.join(40)
    assert all(r.acquired for r in readers), "both readers are granted together after the writer"
    assert describe(stub).holder_count == 2


def test_wait_times_out_as_a_normal_response_and_leaves_the_queue(stub: Stub) -> None:
    acquire(stub, owner="holder")
    resp = acquire(stub, wait=0.3)
    assert not resp.acquired
    assert resp.queue_position == 1 and resp.holders[0].owner == "holder"
    assert queue_length(stub) == 0


def test_rpc_deadline_bounds_the_wait(stub: Stub) -> None:
    acquire(stub)
    try:
        resp = acquire(stub, wait=30, timeout=1.0)
        # Answered just before the deadline, as a wait that ran out: still queued first, not granted.
        assert not resp.acquired and resp.queue_position == 1
    except grpc.RpcError as err:  # the caller's own deadline timer came first (a loaded machine)
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Either way the wait ended with the call: a waiter left to its 30 s would stay queued (its server
    # renews it) far beyond this generous bound.
    wait_for(lambda: queue_length(stub) == 0, "the waiter to leave", timeout=20)


def test_cancelled_waiter_leaves_the_queue_at_once(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    server = private_server(coord, start_coord, **NO_FALLBACK)
    with lock_stub(server.target) as stub:
        acquire(stub, ttl=100)
        future = stub.Acquire.future(
            pb.AcquireRequest(name="L", mode=X, ttl=dur(30), wait=dur(60)), timeout=90
        )
        wait_for(lambda: queue_length(stub) == 1, "the waiter to queue", timeout=10)
        future.cancel()
        # The waiter TTL is 300 s: only the cancellation can empty the queue this soon.
        wait_for(lambda: queue_length(stub) == 0, "the cancelled waiter to leave", timeout=10)


def test_dead_waiter_ages_out_and_does_not_block_the_queue(stub: Stub, coord: CoordUnderTest) -> None:
    holder = acquire(stub, ttl=60).grant
    # A waiter of a server that crashed: queued first, with a heartbeat deadline nobody will renew.
    with coord.redis() as r:
        seconds, micros = r.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        base = "coord:default:lock:{L}"
        r.zadd(base + ":q", {"ghost": 1})
        r.zadd(base + ":qx", {"ghost": now_ms + 1500})
        r.hset(base + ":qd", "ghost", "X|0|0|crashed-server|ghost")
        for suffix in (":q", ":qx", ":qd"):
            r.pexpire(base + suffix, 5000)
    assert queue_length(stub) == 1
    results: list[pb.AcquireResponse] = []
    thread = start_waiter(stub, results, ttl=30, wait=30, owner="live")
    wait_for(lambda: queue_length(stub) == 2, "the live waiter to queue", timeout=10)
    release(stub, "L", holder.lock_token)
    thread.join(40)
    assert results[0].acquired, "the live waiter gets the lock once the ghost ages out"
    assert queue_length(stub) == 0


def test_the_wake_up_subscription_outlives_a_wait_and_ends_with_the_server(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    """One SUBSCRIBE serves wait after wait (it lingers after the last waiter leaves); stopping the
    server closes it."""
    backing = redis_factory()
    server = start_coord(backing.url)

    def wake_channels() -> list[bytes]:
        with backing.client() as r:
            return list(r.pubsub_channels("coord:*wake:*"))

    def subscriptions_made() -> int:
        with backing.client() as r:
            return int(r.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0))

    with lock_stub(server.target) as s:
        acquire(s, owner="holder")
        for _ in range(3):  # three separate waits, each timing out with nobody else waiting
            assert not acquire(s, wait=0.2).acquired
            # Subscribed between waits (the first wait does not wait for the subscription to be made).
            wait_for(lambda: len(wake_channels()) == 1, "the wake-up subscription", 10)
        assert subscriptions_made() == 1
    server.stop()
    wait_for(lambda: not wake_channels(), "the wake-up subscription to close with the server", 5)
