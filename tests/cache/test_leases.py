"""Fill leases (GetOrLease, Set with lease_token): one lease at a time, waiters woken by the fill (not
by polling) or handed the lease when it ends unfilled, first come first served, cancellation, TTLs and
validation — against single-node Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server.cache.keys import CacheKeys
from coord_server.cache.leases import LeaseWaiting
from coord_server.cache.store import CacheStore
from coord_server.redis import RedisBackend, ScriptSet

from ..collections.test_lists import all_keys, assert_every_key_expires
from ..conftest import CoordThread, CoordUnderTest, RedisClusterProcess, free_port, wait_for
from ..server.test_metrics import samples, value
from .test_validation import call_error, details

Stub = cache_pb2_grpc.CacheServiceStub
KEYS = CacheKeys("default")
STORED, LEASE_LOST = pb.WRITE_OUTCOME_STORED, pb.WRITE_OUTCOME_LEASE_LOST
# Settings under which only a wake-up (or the lease's own expiry) can end a wait within a test: the
# fallback timer, the waiter heartbeat and the waiter TTL are far longer than any wait below.
NO_FALLBACK = {"lock_fallback": 120.0, "lock_waiter_heartbeat": 100.0, "lock_waiter_ttl": 300.0}


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


@contextlib.contextmanager
def cache_stub(target: str) -> Iterator[Stub]:
    with grpc.insecure_channel(target) as channel:
        yield Stub(channel)


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with cache_stub(coord.target) as s:
        yield s


def get_or_lease(stub: Stub, key: str, lease_ttl: float = 30.0, wait: float = 0.0) -> pb.GetOrLeaseResponse:
    request = pb.GetOrLeaseRequest(key=key, lease_ttl=dur(lease_ttl), wait=dur(wait))
    response: pb.GetOrLeaseResponse = stub.GetOrLease(request, timeout=wait + 30)
    return response


def fill(stub: Stub, key: str, value: bytes, token: str) -> pb.SetResponse:
    response: pb.SetResponse = stub.Set(pb.SetRequest(key=key, value=value, ttl=dur(60), lease_token=token))
    return response


def lease_key(key: str) -> str:
    return KEYS.all(key)[2]


def queued(coord: CoordUnderTest, key: str) -> int:
    with coord.redis() as r:
        return int(r.zcard(KEYS.all(key)[3]))


def wait_queued(coord: CoordUnderTest, key: str, n: int) -> None:
    wait_for(lambda: queued(coord, key) == n, f"{n} waiters on {key!r}")


def leased(coord: CoordUnderTest, key: str) -> bool:
    with coord.redis() as r:
        return bool(r.exists(lease_key(key)))


class Waiting(threading.Thread):
    """A waiting GetOrLease on its own thread; ``result`` once it has returned."""

    def __init__(self, stub: Stub, key: str, wait: float = 30.0, lease_ttl: float = 30.0) -> None:
        super().__init__(daemon=True)
        request = pb.GetOrLeaseRequest(key=key, lease_ttl=dur(lease_ttl), wait=dur(wait))
        self.call = stub.GetOrLease.future(request, timeout=wait + 30)
        self.result: pb.GetOrLeaseResponse | None = None
        self.start()

    def run(self) -> None:
        with contextlib.suppress(grpc.RpcError, grpc.FutureCancelledError):  # failed or cancelled
            self.result = self.call.result()

    def answer(self) -> pb.GetOrLeaseResponse:
        self.join(60)
        assert self.result is not None, "the GetOrLease failed"
        return self.result


def private_server(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread], **settings: Any
) -> CoordThread:
    """Another Coord on the same Redis (single or cluster) as ``coord``."""
    return start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", **settings)


# -- one lease, and the answers ----------------------------------------------------------------------


def test_a_miss_takes_the_lease_and_its_fill_is_the_next_hit(stub: Stub) -> None:
    first = get_or_lease(stub, "k", lease_ttl=30)
    assert not first.entry.found and first.lease_token and not first.waited
    assert first.lease_expire_time.ToMilliseconds() > 0
    # Held: a caller that does not wait gets neither value nor lease.
    other = get_or_lease(stub, "k")
    assert not other.entry.found and not other.lease_token and not other.waited
    stored = fill(stub, "k", b"computed", first.lease_token)
    assert stored.outcome == STORED
    hit = get_or_lease(stub, "k")
    assert hit.entry.found and hit.entry.value == b"computed" and hit.entry.version == stored.version
    assert not hit.lease_token and not hit.HasField("lease_expire_time")
    # The fill ended the lease: its token fills nothing any more.
    assert fill(stub, "k", b"again", first.lease_token).outcome == LEASE_LOST


def test_one_lease_among_many_concurrent_callers(stub: Stub) -> None:
    callers = 24
    barrier = threading.Barrier(callers)
    answers: list[pb.GetOrLeaseResponse] = []

    def call() -> None:
        barrier.wait(30)
        answers.append(get_or_lease(stub, "hot"))

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == callers
    assert sum(1 for a in answers if a.lease_token) == 1
    assert not any(a.entry.found for a in answers)


def test_waiters_on_every_server_are_woken_by_the_fill_and_get_the_value(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    other = private_server(coord, start_coord, **NO_FALLBACK)
    holder = get_or_lease(stub, "k")
    with cache_stub(other.target) as far:
        waiters = [Waiting(stub if i % 2 else far, "k") for i in range(6)]
        wait_queued(coord, "k", 6)
        assert all(w.result is None for w in waiters)
        stored = fill(stub, "k", b"v", holder.lease_token)
        assert stored.outcome == STORED
        for waiter in waiters:
            answer = waiter.answer()
            assert answer.entry.found and answer.entry.value == b"v" and answer.waited
            assert answer.entry.version == stored.version and not answer.lease_token
    assert queued(coord, "k") == 0 and not leased(coord, "k")
    assert all_keys(coord) == [KEYS.entry("k").encode()]


def test_any_stored_set_ends_the_lease_and_wakes_the_waiters(coord: CoordUnderTest, stub: Stub) -> None:
    holder = get_or_lease(stub, "k")
    waiter = Waiting(stub, "k")
    wait_queued(coord, "k", 1)
    assert stub.Set(pb.SetRequest(key="k", value=b"plain", ttl=dur(60))).outcome == STORED
    assert waiter.answer().entry.value == b"plain"
    # The holder's fill comes too late: nothing written over the newer value.
    lost = fill(stub, "k", b"late", holder.lease_token)
    assert lost.outcome == LEASE_LOST and lost.version > 0
    assert get_or_lease(stub, "k").entry.value == b"plain"


def test_a_stored_increment_ends_the_lease_and_wakes_the_waiters(coord: CoordUnderTest, stub: Stub) -> None:
    holder = get_or_lease(stub, "n")
    waiters = [Waiting(stub, "n") for _ in range(3)]
    wait_queued(coord, "n", 3)
    counted = stub.Increment(pb.IncrementRequest(key="n", delta=5, ttl=dur(60)))
    assert counted.created and counted.value == 5
    for waiter in waiters:
        answer = waiter.answer()
        assert answer.entry.found and answer.entry.value == b"5" and answer.waited
        assert answer.entry.version == counted.version and not answer.lease_token
    assert queued(coord, "n") == 0 and not leased(coord, "n")
    # The holder's fill comes too late: the counter stays.
    lost = fill(stub, "n", b"computed", holder.lease_token)
    assert lost.outcome == LEASE_LOST and lost.version == counted.version
    assert get_or_lease(stub, "n").entry.value == b"5"


def test_batch_set_fills_under_each_items_lease(stub: Stub) -> None:
    a, b = get_or_lease(stub, "a"), get_or_lease(stub, "b")
    requests = [
        pb.SetRequest(key="a", value=b"1", ttl=dur(60), lease_token=a.lease_token),
        pb.SetRequest(key="b", value=b"2", ttl=dur(60), lease_token=a.lease_token),  # not b's lease
    ]
    outcomes = [r.outcome for r in stub.BatchSet(pb.BatchSetRequest(requests=requests)).responses]
    assert outcomes == [STORED, LEASE_LOST]
    assert fill(stub, "b", b"2", b.lease_token).outcome == STORED


def test_a_wait_that_ends_answers_neither_and_leaves_the_queue(coord: CoordUnderTest, stub: Stub) -> None:
    holder = get_or_lease(stub, "k")
    answer = get_or_lease(stub, "k", wait=0.3)
    assert not answer.entry.found and not answer.lease_token and answer.waited
    assert queued(coord, "k") == 0
    # A 30 s wait on a call with a 1 s deadline answers (neither) instead of failing.
    request = pb.GetOrLeaseRequest(key="k", lease_ttl=dur(30), wait=dur(30))
    answer = stub.GetOrLease(request, timeout=1.0)
    assert not answer.entry.found and not answer.lease_token
    assert queued(coord, "k") == 0
    assert fill(stub, "k", b"v", holder.lease_token).outcome == STORED


# -- the lease passes on ------------------------------------------------------------------------------


def test_the_lease_passes_to_the_next_waiter_when_its_holder_never_fills(
    coord: CoordUnderTest, stub: Stub
) -> None:
    holder = get_or_lease(stub, "k", lease_ttl=0.3)
    waiter = Waiting(stub, "k")
    taken = waiter.answer()
    assert taken.lease_token and taken.lease_token != holder.lease_token and taken.waited
    assert not taken.entry.found
    # The first holder's fill is refused (its lease expired and passed on); the new holder's is not.
    assert fill(stub, "k", b"stale", holder.lease_token).outcome == LEASE_LOST
    assert fill(stub, "k", b"fresh", taken.lease_token).outcome == STORED
    assert get_or_lease(stub, "k").entry.value == b"fresh"


def test_a_fill_after_the_lease_expired_is_lease_lost(coord: CoordUnderTest, stub: Stub) -> None:
    holder = get_or_lease(stub, "k", lease_ttl=0.05)
    wait_for(lambda: not leased(coord, "k"), "the lease to expire")
    lost = fill(stub, "k", b"late", holder.lease_token)
    assert lost.outcome == LEASE_LOST and lost.version == 0
    assert not get_or_lease(stub, "k", wait=0).entry.found  # that call takes a new lease
    with coord.redis() as r:
        assert not r.exists(KEYS.entry("k"))


def test_a_delete_ends_the_lease_and_the_next_waiter_takes_a_new_one(
    coord: CoordUnderTest, stub: Stub
) -> None:
    holder = get_or_lease(stub, "k")
    waiter = Waiting(stub, "k")
    wait_queued(coord, "k", 1)
    deleted = stub.Delete(pb.DeleteRequest(keys=["k"]))
    assert deleted.results[0].outcome == pb.DELETE_OUTCOME_NOT_FOUND  # no entry, but a lease ended
    taken = waiter.answer()
    assert taken.lease_token and taken.lease_token != holder.lease_token
    # What the first holder computed before the Delete is not stored after it.
    assert fill(stub, "k", b"before the delete", holder.lease_token).outcome == LEASE_LOST
    assert not stub.Get(pb.GetRequest(key="k")).entry.found
    assert fill(stub, "k", b"after", taken.lease_token).outcome == STORED


def test_waiters_take_the_lease_first_come_first_served(coord: CoordUnderTest, stub: Stub) -> None:
    get_or_lease(stub, "k")
    waiters: list[Waiting] = []
    for i in range(4):
        waiters.append(Waiting(stub, "k"))
        wait_queued(coord, "k", i + 1)
    for i, waiter in enumerate(waiters):
        # Each Delete ends the current lease: the first waiter in line takes the next one.
        stub.Delete(pb.DeleteRequest(keys=["k"]))
        assert waiter.answer().lease_token
        assert all(w.result is None for w in waiters[i + 1 :])
        assert queued(coord, "k") == len(waiters) - i - 1


def test_a_caller_does_not_jump_the_queue(coord: CoordUnderTest, stub: Stub) -> None:
    """A free lease goes to the first waiter, not to a caller that comes after it."""

    async def main() -> None:
        backend = _backend(coord)
        store = _store(backend)
        try:
            # A waiter no wake-up reaches (it only holds its place) heads the queue of a free lease.
            await store.leases._attempt("k", 30_000, "held-by-holder", "")
            placeholder = await store.leases._attempt("k", 30_000, "token-1", "first")
            assert int(placeholder[0]) == 0 and int(placeholder[2]) == 1
            await store.delete(["k"])  # the lease ends; "first" is woken (and never comes)
            assert not await asyncio.to_thread(leased, coord, "k")
            late = await asyncio.to_thread(get_or_lease, stub, "k")
            assert not late.lease_token and not late.entry.found
            # The first waiter gives up: the lease is free for the next caller.
            await store.leases.notify(
                await backend.run(store.leases._cancel, KEYS.all("k"), ["first", "token-1"])
            )
            assert (await asyncio.to_thread(get_or_lease, stub, "k")).lease_token
        finally:
            await backend.close()

    asyncio.run(main())


def test_a_cancelled_waiter_leaves_the_queue(coord: CoordUnderTest, stub: Stub) -> None:
    holder = get_or_lease(stub, "k")
    gone = Waiting(stub, "k", wait=60)
    wait_queued(coord, "k", 1)
    stays = Waiting(stub, "k", wait=60)
    wait_queued(coord, "k", 2)
    gone.call.cancel()  # type: ignore[no-untyped-call]
    wait_queued(coord, "k", 1)
    with coord.redis() as r:
        assert r.zrange(KEYS.all("k")[3], 0, -1) == r.zrange(KEYS.all("k")[3], 0, 0)
    fill(stub, "k", b"v", holder.lease_token)
    assert stays.answer().entry.value == b"v"
    assert queued(coord, "k") == 0


def test_a_dead_servers_waiter_ages_out_and_the_lease_passes_on(coord: CoordUnderTest, stub: Stub) -> None:
    get_or_lease(stub, "k", lease_ttl=0.3)

    async def main() -> None:
        backend = _backend(coord)
        try:
            # Queued first, with a 200 ms heartbeat TTL, by a "server" that never renews it.
            reply = await _store(backend, waiter_ttl_ms=200).leases._attempt("k", 30_000, "t", "dead")
            assert int(reply[2]) == 1
        finally:
            await backend.close()

    asyncio.run(main())
    waiter = Waiting(stub, "k")  # behind the dead one: its own heartbeat drops it, then the lease is free
    taken = waiter.answer()
    assert taken.lease_token and taken.waited
    assert queued(coord, "k") == 0


def test_a_lease_taken_as_its_caller_went_away_is_ended(coord: CoordUnderTest) -> None:
    """A waiting GetOrLease cancelled while its attempt is on its way: a lease it took is given up."""

    async def main() -> None:
        backend = _backend(coord)
        store = _store(backend)
        try:
            waiting = asyncio.ensure_future(store.get_or_lease("k", 30_000, 30.0))
            await asyncio.sleep(0)  # the attempt is on its way; the caller goes away before its answer
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        finally:
            await backend.close()

    asyncio.run(main())
    assert not leased(coord, "k") and queued(coord, "k") == 0


# -- no polling, and every key expires ----------------------------------------------------------------


def test_a_waiter_is_woken_by_the_fill_without_polling(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    port = free_port()
    server = private_server(coord, start_coord, metrics_listen=f"127.0.0.1:{port}", **NO_FALLBACK)

    def attempts() -> float:
        return value(samples(port), "coord_redis_script_duration_seconds_count", script="get_or_lease")

    holder = get_or_lease(stub, "k")
    with cache_stub(server.target) as far:
        waiter = Waiting(far, "k")
        # Its first attempt, and one more once its wake-up subscription is confirmed: then it sleeps.
        wait_for(lambda: attempts() == 2, "the attempts before the sleep")
        time.sleep(1.0)
        assert attempts() == 2 and waiter.result is None
        fill(stub, "k", b"v", holder.lease_token)
        assert waiter.answer().entry.value == b"v"
        assert attempts() == 3  # only the fill's wake-up ended the wait


def test_the_first_waiter_wakes_once_when_the_lease_expires(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    port = free_port()
    server = private_server(coord, start_coord, metrics_listen=f"127.0.0.1:{port}", **NO_FALLBACK)

    def attempts() -> float:
        return value(samples(port), "coord_redis_script_duration_seconds_count", script="get_or_lease")

    get_or_lease(stub, "k", lease_ttl=1.5)
    with cache_stub(server.target) as far:
        waiter = Waiting(far, "k")
        assert waiter.answer().lease_token
        # Two attempts before its sleep, one when its timer (the lease's expiry) fired.
        assert attempts() == 3


def test_every_key_expires(coord: CoordUnderTest, stub: Stub) -> None:
    holder = get_or_lease(stub, "k", lease_ttl=20)
    waiters = [Waiting(stub, "k") for _ in range(3)]
    wait_queued(coord, "k", 3)
    assert_every_key_expires(coord)
    with coord.redis() as r:
        assert 0 < r.pttl(lease_key("k")) <= 20_000
        for queue_key in KEYS.all("k")[3:]:
            assert 0 < r.pttl(queue_key) <= coord.settings.lock_waiter_ttl * 1000
    fill(stub, "k", b"v", holder.lease_token)
    assert all(w.answer().entry.found for w in waiters)
    wait_for(lambda: all_keys(coord) == [KEYS.entry("k").encode()], "only the entry left")


def test_writes_without_leases_leave_no_lease_keys(coord: CoordUnderTest, stub: Stub) -> None:
    stub.Set(pb.SetRequest(key="a", value=b"1", ttl=dur(60)))
    stub.BatchSet(pb.BatchSetRequest(requests=[pb.SetRequest(key="b", value=b"2", ttl=dur(60))]))
    stub.Delete(pb.DeleteRequest(keys=["a", "c"]))
    assert all_keys(coord) == sorted([KEYS.entry("b").encode(), KEYS.both("a")[1].encode()])
    # A lease token nobody handed out fills nothing.
    assert fill(stub, "d", b"x", "no-such-lease").outcome == LEASE_LOST
    assert not stub.Get(pb.GetRequest(key="d")).entry.found


# -- validation -----------------------------------------------------------------------------------------


def _request(**fields: Any) -> pb.GetOrLeaseRequest:
    base: dict[str, Any] = {"key": "k", "lease_ttl": dur(10)}
    base.update(fields)
    return pb.GetOrLeaseRequest(**{k: v for k, v in base.items() if v is not None})


INVALID = [
    ("no lease ttl", _request(lease_ttl=None), "lease_ttl"),
    ("zero lease ttl", _request(lease_ttl=dur(0)), "lease_ttl"),
    ("lease ttl under 1 ms", _request(lease_ttl=duration_pb2.Duration(nanos=500_000)), "lease_ttl"),
    ("lease ttl over the maximum", _request(lease_ttl=dur(61)), "lease_ttl"),
    ("negative lease ttl", _request(lease_ttl=duration_pb2.Duration(seconds=-1)), "lease_ttl"),
    ("negative wait", _request(wait=duration_pb2.Duration(seconds=-1)), "wait"),
    ("wait over the maximum", _request(wait=dur(31 * 86400)), "wait"),
    ("empty key", _request(key=""), "key"),
]


@pytest.mark.parametrize(("request_", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_bad_requests_are_refused_naming_the_field(
    coord: CoordUnderTest, request_: pb.GetOrLeaseRequest, field: str
) -> None:
    with cache_stub(coord.target) as stub:
        err = call_error(lambda: stub.GetOrLease(request_, timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations, _ = details(err)
    assert info.metadata["field"] == field and [v[0] for v in violations] == [field]
    assert (err.details() or "").startswith(f"{field}:")
    assert all_keys(coord) == []


def test_a_lease_token_that_no_server_could_have_made_is_refused(stub: Stub) -> None:
    err = call_error(lambda: fill(stub, "k", b"v", "x" * 257))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith("lease_token:")


# -- helpers ----------------------------------------------------------------------------------------------


def _backend(coord: CoordUnderTest) -> RedisBackend:
    return RedisBackend.from_url(
        coord.backing.url, cluster=isinstance(coord.backing, RedisClusterProcess), timeout=5.0
    )


def _store(backend: RedisBackend, waiter_ttl_ms: int = 300_000) -> CacheStore:
    waiting = LeaseWaiting(waiter_ttl_ms=waiter_ttl_ms, heartbeat_interval=100.0, fallback=120.0)
    return CacheStore(backend, ScriptSet("coord_server.cache"), KEYS, 60_000, leases=waiting)
