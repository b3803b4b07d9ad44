"""Stale-while-revalidate (Set stale_grace, GetOrLease serve_stale) and compute times for early
refreshes (Set compute_time, Entry.compute_time): a stale value is served at once while exactly one
caller holds the lease to refresh it, every other read treats it as expired, and every write sees it
as absent yet continues its version — against single-node Redis and Redis Cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server.cache.keys import CacheKeys

from ..conftest import CoordUnderTest, wait_for
from . import _layout as layout
from .test_validation import call_error, details

Stub = cache_pb2_grpc.CacheServiceStub
KEYS = CacheKeys("default")
STORED = pb.WRITE_OUTCOME_STORED
GRACE_S = 600.0


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield Stub(channel)


def stale_entry(stub: Stub, key: str, value: bytes = b"old", tags: tuple[str, ...] = ()) -> pb.SetResponse:
    """An entry that expired at once (1 ms) and stays for a long grace: stale from now on."""
    written: pb.SetResponse = stub.Set(
        pb.SetRequest(key=key, value=value, ttl=dur(0.001), stale_grace=dur(GRACE_S), tags=tags)
    )
    assert written.outcome == STORED
    wait_for(lambda: not stub.Get(pb.GetRequest(key=key)).entry.found, f"{key!r} to go stale")
    return written


def serve_stale(stub: Stub, key: str, wait: float = 30.0) -> pb.GetOrLeaseResponse:
    request = pb.GetOrLeaseRequest(key=key, lease_ttl=dur(30), wait=dur(wait), serve_stale=True)
    response: pb.GetOrLeaseResponse = stub.GetOrLease(request, timeout=wait + 30)
    return response


def test_a_stale_value_is_served_while_one_caller_refreshes_it(coord: CoordUnderTest, stub: Stub) -> None:
    written = stale_entry(stub, "k")
    with coord.redis() as r:
        # The key outlives its expiry by the grace; reads report the expiry the Set returned.
        expected = written.expire_time.ToMilliseconds() + round(GRACE_S * 1000)
        assert r.pexpiretime(KEYS.entry("k")) == expected
    first = serve_stale(stub, "k")
    assert first.stale and first.entry.found and first.entry.value == b"old" and not first.waited
    assert first.entry.version == written.version
    assert first.entry.expire_time.ToMilliseconds() == written.expire_time.ToMilliseconds()
    assert first.lease_token  # the refresher
    # Everyone else gets the stale value at once (a 30 s wait is not used), never the lease.
    for _ in range(3):
        other = serve_stale(stub, "k")
        assert other.stale and other.entry.value == b"old" and not other.lease_token and not other.waited
    # A caller that does not take stale values misses, and the lease is held: neither, at once.
    plain = stub.GetOrLease(pb.GetOrLeaseRequest(key="k", lease_ttl=dur(30)))
    assert not plain.entry.found and not plain.lease_token and not plain.stale
    refreshed = stub.Set(pb.SetRequest(key="k", value=b"new", ttl=dur(60), lease_token=first.lease_token))
    assert refreshed.outcome == STORED and refreshed.version > written.version
    fresh = serve_stale(stub, "k")
    assert not fresh.stale and fresh.entry.value == b"new" and not fresh.lease_token


def test_one_refresher_among_many_concurrent_callers(stub: Stub) -> None:
    stale_entry(stub, "hot")
    callers = 16
    barrier = threading.Barrier(callers)
    answers: list[pb.GetOrLeaseResponse] = []

    def call() -> None:
        barrier.wait(30)
        answers.append(serve_stale(stub, "hot"))

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == callers
    assert all(a.stale and a.entry.value == b"old" and not a.waited for a in answers)
    assert sum(1 for a in answers if a.lease_token) == 1


def test_a_stale_entry_is_expired_to_every_other_read(stub: Stub) -> None:
    stale_entry(stub, "k")
    assert not stub.Get(pb.GetRequest(key="k")).entry.found
    assert not stub.BatchGet(pb.BatchGetRequest(keys=["k"])).entries[0].found
    answers = list(stub.GetStream(iter([pb.GetStreamRequest(request_id=1, get=pb.GetRequest(key="k"))])))
    assert not answers[0].get.entry.found
    assert not stub.Touch(pb.TouchRequest(key="k", ttl=dur(60))).found
    # GetOrLease without serve_stale: a miss, and the caller takes the lease to fill it.
    plain = stub.GetOrLease(pb.GetOrLeaseRequest(key="k", lease_ttl=dur(30)))
    assert not plain.entry.found and plain.lease_token and not plain.stale


def test_writes_take_a_stale_entry_as_absent_and_continue_its_version(stub: Stub) -> None:
    old = stale_entry(stub, "a")
    assert stub.Set(pb.SetRequest(key="a", value=b"x", if_present=pb.IfPresent())).outcome == (
        pb.WRITE_OUTCOME_NOT_FOUND
    )
    assert stub.Set(pb.SetRequest(key="a", value=b"x", if_version=old.version)).outcome == (
        pb.WRITE_OUTCOME_NOT_FOUND
    )
    created = stub.Set(pb.SetRequest(key="a", value=b"new", if_absent=pb.IfAbsent(), ttl=dur(60)))
    assert created.outcome == STORED and created.version > old.version

    old = stale_entry(stub, "n", b"41")
    counted = stub.Increment(pb.IncrementRequest(key="n", delta=1, ttl=dur(60)))
    assert counted.created and counted.value == 1 and counted.version > old.version

    old = stale_entry(stub, "d")
    gone = stub.Delete(pb.DeleteRequest(keys=["d"])).results[0]
    assert gone.outcome == pb.DELETE_OUTCOME_NOT_FOUND
    after = serve_stale(stub, "d", wait=0)  # the Delete took the stale value away too
    assert not after.entry.found and after.lease_token and not after.stale
    assert stub.Set(pb.SetRequest(key="d", value=b"v")).version > old.version


def test_fences_hold_through_a_stale_entry(stub: Stub) -> None:
    fence = pb.Fence(lock_name="L", fencing_token=10)
    stub.Set(pb.SetRequest(key="f", value=b"v", ttl=dur(0.001), stale_grace=dur(GRACE_S), fence=fence))
    wait_for(lambda: not stub.Get(pb.GetRequest(key="f")).entry.found, "'f' to go stale")
    late = pb.Fence(lock_name="L", fencing_token=9)
    refused = stub.Set(pb.SetRequest(key="f", value=b"late", fence=late))
    assert refused.outcome == pb.WRITE_OUTCOME_FENCED and refused.fencing_token == 10


def test_a_stale_entry_whose_tags_were_invalidated_is_a_miss(stub: Stub) -> None:
    stale_entry(stub, "t", tags=("team",))
    stub.InvalidateTags(pb.InvalidateTagsRequest(tags=["team"]))
    answer = serve_stale(stub, "t", wait=0)
    assert not answer.entry.found and not answer.stale and answer.lease_token


def test_touch_keeps_the_grace(coord: CoordUnderTest, stub: Stub) -> None:
    stub.Set(pb.SetRequest(key="k", value=b"v", ttl=dur(60), stale_grace=dur(30)))
    touched = stub.Touch(pb.TouchRequest(key="k", ttl=dur(120)))
    assert stub.Get(pb.GetRequest(key="k")).entry.expire_time.ToMilliseconds() == (
        touched.expire_time.ToMilliseconds()
    )
    with coord.redis() as r:
        assert r.pexpiretime(KEYS.entry("k")) == touched.expire_time.ToMilliseconds() + 30_000


def test_compute_time_is_stored_and_returned(coord: CoordUnderTest, stub: Stub) -> None:
    stub.Set(pb.SetRequest(key="c", value=b"7", ttl=dur(60), compute_time=dur(1.5)))
    entry = stub.Get(pb.GetRequest(key="c")).entry
    assert entry.compute_time.ToMilliseconds() == 1500
    assert stub.BatchGet(pb.BatchGetRequest(keys=["c"])).entries[0].compute_time.ToMilliseconds() == 1500
    hit = stub.GetOrLease(pb.GetOrLeaseRequest(key="c", lease_ttl=dur(10)))
    assert hit.entry.compute_time.ToMilliseconds() == 1500
    with coord.redis() as r:
        stored = layout.read(r, KEYS.entry("c"))
        assert stored is not None and stored.compute_ms == 1500 and stored.flags == layout.COST
    # An Increment changes only the value; a Set without compute_time leaves none.
    stub.Increment(pb.IncrementRequest(key="c", delta=1))
    assert stub.Get(pb.GetRequest(key="c")).entry.compute_time.ToMilliseconds() == 1500
    stub.Set(pb.SetRequest(key="c", value=b"x", ttl=dur(60)))
    assert not stub.Get(pb.GetRequest(key="c")).entry.HasField("compute_time")


@pytest.mark.parametrize(
    ("field", "request_"),
    [
        ("stale_grace", pb.SetRequest(key="k", value=b"v", stale_grace=duration_pb2.Duration(seconds=-1))),
        ("compute_time", pb.SetRequest(key="k", value=b"v", compute_time=duration_pb2.Duration(seconds=-1))),
        (
            "stale_grace",
            pb.SetRequest(key="k", value=b"v", stale_grace=duration_pb2.Duration(seconds=50 * 86400)),
        ),
    ],
)
def test_bad_durations_are_refused_naming_the_field(stub: Stub, field: str, request_: pb.SetRequest) -> None:
    err = call_error(lambda: stub.Set(request_))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations, _ = details(err)
    assert info.metadata["field"] == field and [f for f, _ in violations] == [field]


def test_a_batch_does_not_count_stale_values_against_its_bound(stub: Stub) -> None:
    # Four stale values of 1 MiB each: together past the 4 MiB a reply holds, were they entries.
    for i in range(4):
        stub.Set(pb.SetRequest(key=f"s{i}", value=b"x" * (1 << 20), ttl=dur(0.001), stale_grace=dur(GRACE_S)))
    wait_for(lambda: not stub.Get(pb.GetRequest(key="s3")).entry.found, "the values to go stale")
    stub.Set(pb.SetRequest(key="live", value=b"v"))
    entries = stub.BatchGet(pb.BatchGetRequest(keys=["s0", "s1", "s2", "s3", "live"])).entries
    assert [e.found for e in entries] == [False, False, False, False, True]
