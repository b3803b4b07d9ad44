"""Waiting Pops: woken by Pushes (no polling), first come first served across servers, cancellation,
dead waiters, the end of a wait and Redis outages — against single-node Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from coord.collections.v1 import list_pb2 as pb
from coord_server.collections.common import Write, scripts
from coord_server.collections.keys import CollectionKeys
from coord_server.collections.lists.store import End, ListStore, Waiting
from coord_server.redis import RedisBackend

from ..conftest import CoordThread, CoordUnderTest, RedisClusterProcess, RedisProcess, free_port, wait_for
from ..lock.test_cancel_races import _eventually, _subscribed
from ..server.test_metrics import samples, value
from .test_lists import Stub, all_keys, assert_every_key_expires, dur, list_stub, pop, push, queue_key

# Settings under which only a wake-up can end a wait within a test: the fallback timer, the waiter
# heartbeat and the waiter TTL are all far longer than any wait below.
NO_FALLBACK = {"lock_fallback": 120.0, "list_waiter_heartbeat": 100.0, "list_waiter_ttl": 300.0}


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with list_stub(coord.target) as s:
        yield s


def private_server(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread], **settings: Any
) -> CoordThread:
    """Another Coord on the same Redis (single or cluster) as ``coord``."""
    return start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", **settings)


def queued(coord: CoordUnderTest, name: str) -> int:
    with coord.redis() as r:
        return int(r.zcard(queue_key(name)))


def wait_queued(coord: CoordUnderTest, name: str, n: int) -> None:
    wait_for(lambda: queued(coord, name) == n, f"{n} waiters on {name!r}")


class WaitingPop(threading.Thread):
    """A waiting Pop on its own thread; ``result`` once it has returned."""

    def __init__(self, stub: Stub, name: str, wait: float = 30.0, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.call = stub.Pop.future(
            pb.ListServicePopRequest(name=name, wait=dur(wait), **kwargs), timeout=wait + 30
        )
        self.result: pb.ListServicePopResponse | None = None
        self.start()

    def run(self) -> None:
        with contextlib.suppress(grpc.RpcError, grpc.FutureCancelledError):  # failed or cancelled
            self.result = self.call.result()

    def values(self) -> list[bytes]:
        self.join(60)
        assert self.result is not None, "the Pop failed"
        return list(self.result.values)


def test_a_waiting_pop_is_woken_by_a_push_without_polling(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    port = free_port()
    server = private_server(coord, start_coord, metrics_listen=f"127.0.0.1:{port}", **NO_FALLBACK)

    def pops() -> float:
        return value(samples(port), "coord_redis_script_duration_seconds_count", script="list_pop")

    with list_stub(server.target) as waiter_stub, list_stub(coord.target) as pusher:
        waiter = WaitingPop(waiter_stub, "jobs", wait=30)
        # Its first attempt, and one more once its wake-up subscription is confirmed (a wake-up
        # published before then would have been missed): then it sleeps.
        wait_for(lambda: pops() == 2, "the attempts before the sleep")
        assert queued(coord, "jobs") == 1
        time.sleep(1.0)
        assert pops() == 2 and waiter.result is None
        push(pusher, "jobs", b"job-1")
        assert waiter.values() == [b"job-1"]
        assert waiter.result is not None and not waiter.result.collection.exists
        # With a 120 s fallback and a 100 s heartbeat, only the push's wake-up ended the 30 s wait:
        # one more attempt, the one that took the value.
        assert pops() == 3
    assert queued(coord, "jobs") == 0 and all_keys(coord) == []


def test_a_waiting_pop_on_another_server_is_woken_through_pub_sub(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    other = private_server(coord, start_coord, **NO_FALLBACK)
    with list_stub(other.target) as far:
        waiter = WaitingPop(far, "jobs", wait=30, count=5)
        wait_queued(coord, "jobs", 1)
        push(stub, "jobs", b"a", b"b")
        assert waiter.values() == [b"a", b"b"]
    assert queued(coord, "jobs") == 0


def test_queue_keys_expire_while_waiting(coord: CoordUnderTest, stub: Stub) -> None:
    waiter = WaitingPop(stub, "jobs", wait=30)
    wait_queued(coord, "jobs", 1)
    assert_every_key_expires(coord)
    with coord.redis() as r:
        assert 0 < r.pttl(queue_key("jobs")) <= coord.settings.list_waiter_ttl * 1000
    push(stub, "jobs", b"x")
    assert waiter.values() == [b"x"]
    assert all_keys(coord) == []


def test_waiters_are_served_first_come_first_served(coord: CoordUnderTest, stub: Stub) -> None:
    waiters: list[WaitingPop] = []
    for i in range(4):
        waiters.append(WaitingPop(stub, "fifo", wait=30))
        wait_queued(coord, "fifo", i + 1)
    for i, waiter in enumerate(waiters):
        push(stub, "fifo", f"v{i}".encode())
        assert waiter.values() == [f"v{i}".encode()]
        assert queued(coord, "fifo") == len(waiters) - i - 1


def test_a_pop_that_does_not_wait_does_not_take_a_waiters_value(coord: CoordUnderTest, stub: Stub) -> None:
    first = WaitingPop(stub, "q", wait=30)
    wait_queued(coord, "q", 1)
    second = WaitingPop(stub, "q", wait=30)
    wait_queued(coord, "q", 2)
    # Nothing another caller could take: the list is empty, and each pushed value is reserved below.
    assert pop(stub, "q").values == []
    push(stub, "q", b"a", b"b", b"c")
    assert first.values() == [b"a"] and second.values() == [b"b"]
    assert list(pop(stub, "q", count=5).values) == [b"c"]


def test_one_push_of_many_values_serves_many_waiters(coord: CoordUnderTest, stub: Stub) -> None:
    waiters = []
    for i in range(5):
        waiters.append(WaitingPop(stub, "many", wait=30))
        wait_queued(coord, "many", i + 1)
    values = [f"v{i}".encode() for i in range(5)]
    push(stub, "many", *values)
    got = [w.values() for w in waiters]
    assert all(len(v) == 1 for v in got) and sorted(v[0] for v in got) == values
    assert queued(coord, "many") == 0 and all_keys(coord) == []


def test_pushers_and_waiting_poppers_lose_and_duplicate_nothing(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    other = private_server(coord, start_coord)
    pushers, per_pusher, poppers = 4, 30, 6
    expected = [f"{p}:{i}".encode() for p in range(pushers) for i in range(per_pusher)]
    taken: list[bytes] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def pushing(target: str, p: int) -> None:
        try:
            with list_stub(target) as s:
                for i in range(per_pusher):
                    push(s, "work", f"{p}:{i}".encode(), end=pb.END_BACK)
        except BaseException as exc:
            errors.append(exc)

    def popping(target: str, k: int) -> None:
        try:
            with list_stub(target) as s:
                while True:
                    with lock:
                        if len(taken) >= len(expected):
                            return
                    got = pop(s, "work", wait=dur(1.0), count=1 + k % 3).values
                    with lock:
                        taken.extend(got)
        except BaseException as exc:
            errors.append(exc)

    targets = [coord.target, other.target]
    threads = [threading.Thread(target=popping, args=(targets[k % 2], k)) for k in range(poppers)]
    threads += [threading.Thread(target=pushing, args=(targets[p % 2], p)) for p in range(pushers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert Counter(taken) == Counter(expected)
    wait_for(lambda: all_keys(coord) == [], "no keys left")


def test_a_wait_with_nothing_pushed_ends_empty(coord: CoordUnderTest, stub: Stub) -> None:
    response = pop(stub, "idle", wait=dur(0.3), count=3)
    assert response.applied and list(response.values) == [] and not response.collection.exists
    assert queued(coord, "idle") == 0 and all_keys(coord) == []


def test_a_wait_ends_before_the_rpc_deadline(coord: CoordUnderTest, stub: Stub) -> None:
    # A 30 s wait on a call with a 1 s deadline answers (with no values) instead of failing.
    response = stub.Pop(pb.ListServicePopRequest(name="idle", wait=dur(30)), timeout=1.0)
    assert list(response.values) == []
    assert queued(coord, "idle") == 0


def test_a_cancelled_waiting_pop_leaves_the_queue(coord: CoordUnderTest, stub: Stub) -> None:
    gone = WaitingPop(stub, "q", wait=60)
    wait_queued(coord, "q", 1)
    stays = WaitingPop(stub, "q", wait=60)
    wait_queued(coord, "q", 2)
    gone.call.cancel()  # type: ignore[no-untyped-call]
    wait_queued(coord, "q", 1)
    push(stub, "q", b"x")
    assert stays.values() == [b"x"]
    assert queued(coord, "q") == 0 and all_keys(coord) == []


def _backend(coord: CoordUnderTest) -> RedisBackend:
    return RedisBackend.from_url(
        coord.backing.url, cluster=isinstance(coord.backing, RedisClusterProcess), timeout=5.0
    )


def _store(backend: RedisBackend, waiter_ttl_ms: int = 300_000) -> ListStore:
    waiting = Waiting(waiter_ttl_ms=waiter_ttl_ms, heartbeat_interval=100.0, fallback=120.0)
    return ListStore(backend, scripts(), CollectionKeys("default"), 100_000, waiting, max_reply_bytes=1 << 22)


WRITE = Write(ttl_ms=60_000)


def test_a_waiter_that_gives_up_passes_its_reservation_on(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    """A waiter made eligible by a push that gives up before taking: the next waiter takes the value,
    woken by the give-up (across servers, through pub/sub)."""
    server = private_server(coord, start_coord, **NO_FALLBACK)

    async def main() -> None:
        backend = _backend(coord)
        store = _store(backend)
        try:
            # A waiter of this test's store that no wake-up can reach: it only holds a place.
            await store._attempt("q", End.FRONT, 1, WRITE, "holder")
            with list_stub(server.target) as s:
                second = WaitingPop(s, "q", wait=30)
                await asyncio.to_thread(wait_queued, coord, "q", 2)
                push(s, "q", b"x")  # eligible: the holder only; the second sleeps on
                assert second.result is None and queued(coord, "q") == 2
                await store.waiters.notify(await store._queue_script("list_cancel", "q", ["holder"]))
                assert await asyncio.to_thread(second.values) == [b"x"]
        finally:
            await backend.close()

    asyncio.run(main())
    assert queued(coord, "q") == 0


def test_a_dead_servers_waiter_ages_out(coord: CoordUnderTest, stub: Stub) -> None:
    async def main() -> None:
        backend = _backend(coord)
        try:
            # Queued with a 3 s heartbeat TTL by a "server" that never renews it (long enough to be
            # seen queued below on a loaded machine, where closing a cluster client takes a while).
            await _store(backend, waiter_ttl_ms=3000)._attempt("q", End.FRONT, 1, WRITE, "dead")
        finally:
            await backend.close()

    asyncio.run(main())
    assert queued(coord, "q") == 1
    waiter = WaitingPop(stub, "q", wait=30)

    def live_waiter_queued() -> bool:
        with coord.redis() as r:
            return any(member != b"dead" for member in r.zrange(queue_key("q"), 0, -1))

    wait_for(live_waiter_queued, "the live waiter")
    push(stub, "q", b"x")
    assert waiter.values() == [b"x"]
    assert queued(coord, "q") == 0


def test_a_cancellation_that_lands_with_a_wake_up_takes_the_waiter_out(coord: CoordUnderTest) -> None:
    """The cancel race of the Lock's waits (tests/lock/test_cancel_races.py), on the list store."""

    async def has(n: int) -> bool:
        return await asyncio.to_thread(queued, coord, "q") == n

    async def main() -> tuple[Any, int]:
        backend = _backend(coord)
        store = _store(backend)
        try:
            waiting = asyncio.ensure_future(store.pop("q", End.FRONT, 1, WRITE, 60.0))
            await _eventually(lambda: has(1), "the waiter to queue")
            await _eventually(lambda: _subscribed(coord.backing, store.waiters._channel), "the subscription")
            await asyncio.sleep(0.3)
            store.waiters.wake_all()  # one loop step: the wake-up and the caller's cancellation
            waiting.cancel()
            outcome: Any
            try:
                async with asyncio.timeout(10):  # a swallowed cancellation sleeps for 120 s
                    outcome = await waiting
            except asyncio.CancelledError:
                outcome = "cancelled"
            except TimeoutError:
                outcome = "still waiting"
            await _eventually(lambda: has(0), "the waiter to leave the queue")
            return outcome, await asyncio.to_thread(queued, coord, "q")
        finally:
            await backend.close()

    outcome, left = asyncio.run(main())
    assert outcome == "cancelled", f"the cancelled waiter went on: {outcome!r}"
    assert left == 0


def test_values_a_cancelled_attempt_took_are_given_back(coord: CoordUnderTest) -> None:
    """A waiting Pop cancelled while its attempt is on its way: what the attempt took goes back."""

    async def main() -> tuple[int, int, list[bytes]]:
        backend = _backend(coord)
        store = _store(backend)
        try:
            pushed = await store.push("q", [b"a", b"b", b"c"], End.BACK, 0, WRITE)
            waiting = asyncio.ensure_future(store.pop("q", End.FRONT, 2, WRITE, 30.0))
            await asyncio.sleep(0)  # the attempt is on its way; the caller goes away before its answer
            waiting.cancel()
            # The cancelled call ends once its cleanup (which gives the values back) has run.
            with pytest.raises(asyncio.CancelledError):
                await waiting
            page = await store.range("q", 0, -1, 10)
            return pushed.written.state.version, page.state.version, page.values
        finally:
            await backend.close()

    pushed, now, values = asyncio.run(main())
    assert values == [b"a", b"b", b"c"]
    assert now > pushed  # taken, then given back: two new versions
    assert queued(coord, "q") == 0


def test_a_waiting_pop_with_redis_down_fails_at_once(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    redis = redis_factory()
    server = start_coord(redis.url)
    with list_stub(server.target) as s:
        push(s, "q", b"warm")  # connected once
        redis.stop()
        with pytest.raises(grpc.RpcError) as caught:
            s.Pop(pb.ListServicePopRequest(name="q", wait=dur(60)), timeout=20)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
