"""Fenced cache writes: a lock holder whose lease ran out cannot overwrite what a later holder wrote."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from ..conftest import CoordUnderTest

STORED = pb.WRITE_OUTCOME_STORED
FENCED = pb.WRITE_OUTCOME_FENCED


@pytest.fixture
def stubs(
    coord: CoordUnderTest,
) -> Iterator[tuple[cache_pb2_grpc.CacheServiceStub, lock_pb2_grpc.LockServiceStub]]:
    with grpc.insecure_channel(coord.target) as channel:
        yield cache_pb2_grpc.CacheServiceStub(channel), lock_pb2_grpc.LockServiceStub(channel)


def grant(locks: lock_pb2_grpc.LockServiceStub, name: str) -> lock_pb2.Grant:
    reply = locks.Acquire(
        lock_pb2.AcquireRequest(
            name=name, mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=duration_pb2.Duration(seconds=30)
        )
    )
    assert reply.acquired
    return reply.grant


def fenced_set(
    cache: cache_pb2_grpc.CacheServiceStub, key: str, value: bytes, lock: str, token: int
) -> pb.SetResponse:
    return cache.Set(pb.SetRequest(key=key, value=value, fence=pb.Fence(lock_name=lock, fencing_token=token)))


def test_stale_holder_is_refused_after_a_newer_grant_wrote(
    stubs: tuple[cache_pb2_grpc.CacheServiceStub, lock_pb2_grpc.LockServiceStub],
) -> None:
    cache, locks = stubs
    first = grant(locks, "report")
    assert fenced_set(cache, "report:data", b"from first", "report", first.fencing_token).outcome == STORED
    # The first holder "pauses"; its grant ends and a second holder takes over and writes.
    locks.Release(lock_pb2.ReleaseRequest(name="report", lock_token=first.lock_token))
    second = grant(locks, "report")
    assert second.fencing_token > first.fencing_token
    ok = fenced_set(cache, "report:data", b"from second", "report", second.fencing_token)
    assert ok.outcome == STORED and ok.fencing_token == second.fencing_token

    late = fenced_set(cache, "report:data", b"late write", "report", first.fencing_token)
    assert late.outcome == FENCED
    assert late.fencing_token == second.fencing_token and late.version == ok.version
    assert cache.Get(pb.GetRequest(key="report:data")).entry.value == b"from second"

    # The current holder may write again with the same token.
    again = fenced_set(cache, "report:data", b"second again", "report", second.fencing_token)
    assert again.outcome == STORED and again.version > ok.version


def test_fences_are_per_lock_and_unfenced_writes_keep_them(
    stubs: tuple[cache_pb2_grpc.CacheServiceStub, lock_pb2_grpc.LockServiceStub],
) -> None:
    cache, _ = stubs
    assert fenced_set(cache, "k", b"a", "lock-a", 100).outcome == STORED
    # Another lock's tokens are counted on their own.
    assert fenced_set(cache, "k", b"b", "lock-b", 5).outcome == STORED
    # An unfenced write neither checks nor clears the fences.
    assert cache.Set(pb.SetRequest(key="k", value=b"plain")).outcome == STORED
    assert fenced_set(cache, "k", b"stale", "lock-a", 99).outcome == FENCED
    assert fenced_set(cache, "k", b"stale", "lock-b", 4).outcome == FENCED
    assert cache.Get(pb.GetRequest(key="k")).entry.value == b"plain"


def test_fence_survives_delete_and_recreate(
    stubs: tuple[cache_pb2_grpc.CacheServiceStub, lock_pb2_grpc.LockServiceStub], coord: CoordUnderTest
) -> None:
    cache, _ = stubs
    v1 = fenced_set(cache, "d", b"new", "L", 50).version
    cache.Delete(pb.DeleteRequest(keys=["d"]))
    refused = fenced_set(cache, "d", b"stale", "L", 49)
    assert refused.outcome == FENCED and refused.fencing_token == 50
    assert not cache.Get(pb.GetRequest(key="d")).entry.found
    # A plain re-create (and an increment) keeps both the version history and the fence.
    recreated = cache.Set(pb.SetRequest(key="d", value=b"plain"))
    assert recreated.version > v1
    assert fenced_set(cache, "d", b"stale", "L", 49).outcome == FENCED
    cache.Delete(pb.DeleteRequest(keys=["d"]))
    assert cache.Increment(pb.IncrementRequest(key="d", delta=3)).value == 3
    assert fenced_set(cache, "d", b"stale", "L", 49).outcome == FENCED
    with coord.redis() as r:
        for key in r.scan_iter("coord:*"):
            assert r.pttl(key) > 0, key


def test_fence_combines_with_conditions_and_batches(
    stubs: tuple[cache_pb2_grpc.CacheServiceStub, lock_pb2_grpc.LockServiceStub],
) -> None:
    cache, _ = stubs
    fence = pb.Fence(lock_name="L", fencing_token=10)
    assert (
        cache.Set(pb.SetRequest(key="c", value=b"1", fence=fence, if_absent=pb.IfAbsent())).outcome == STORED
    )
    # The condition is decided first: an existing key stays ALREADY_EXISTS even with a good fence.
    exists = cache.Set(pb.SetRequest(key="c", value=b"2", fence=fence, if_absent=pb.IfAbsent()))
    assert exists.outcome == pb.WRITE_OUTCOME_ALREADY_EXISTS
    replies = cache.BatchSet(
        pb.BatchSetRequest(
            requests=[
                pb.SetRequest(key="c", value=b"old", fence=pb.Fence(lock_name="L", fencing_token=9)),
                pb.SetRequest(key="c", value=b"new", fence=pb.Fence(lock_name="L", fencing_token=11)),
            ]
        )
    ).responses
    assert [r.outcome for r in replies] == [FENCED, STORED]
    assert cache.Get(pb.GetRequest(key="c")).entry.value == b"new"


@pytest.mark.parametrize(
    ("fence", "field"),
    [
        (pb.Fence(lock_name="", fencing_token=1), "fence.lock_name"),
        (pb.Fence(lock_name="L", fencing_token=0), "fence.fencing_token"),
        (pb.Fence(lock_name="L", fencing_token=2**53), "fence.fencing_token"),
        (pb.Fence(lock_name="x" * 1025, fencing_token=1), "fence.lock_name"),
    ],
)
def test_bad_fences_are_invalid_argument(coord_single: CoordUnderTest, fence: pb.Fence, field: str) -> None:
    with grpc.insecure_channel(coord_single.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.RpcError) as excinfo:
            cache.Set(pb.SetRequest(key="k", value=b"v", fence=fence))
        assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert excinfo.value.details().startswith(field + ":")
        with pytest.raises(grpc.RpcError) as batch:
            cache.BatchSet(pb.BatchSetRequest(requests=[pb.SetRequest(key="k", fence=fence)]))
        assert batch.value.details().startswith("requests[0]." + field + ":")


def test_python_client_fences_with_a_held_lease(coord_single: CoordUnderTest) -> None:
    from coord_client import Client
    from coord_client.cache import SetOutcome

    with Client(coord_single.target) as client:
        with client.lock.hold("jobs", ttl=10) as first:
            assert client.cache.set("out", b"1", fence=first).stored
        with client.lock.hold("jobs", ttl=10) as second:
            written = client.cache.set("out", b"2", fence=second)
            assert written.stored and written.fencing_token == second.fencing_token
        stale = client.cache.set("out", b"late", fence=("jobs", first.fencing_token))
        assert stale.outcome is SetOutcome.FENCED and not stale.stored
        assert stale.fencing_token == second.fencing_token
        assert client.cache.get("out").value == b"2"
        with pytest.raises(ValueError, match="fence"):
            client.cache.set("out", b"x", fence=("jobs", 0))
