"""CacheService over the wire: every RPC and condition, against single-node Redis and Redis Cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc

from ..conftest import CoordUnderTest

STORED = pb.WRITE_OUTCOME_STORED


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[cache_pb2_grpc.CacheServiceStub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield cache_pb2_grpc.CacheServiceStub(channel)


def ttl(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(round(seconds * 1000))
    return d


def test_get_miss(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    entry = stub.Get(pb.GetRequest(key="nothing")).entry
    assert entry.key == "nothing"
    assert not entry.found
    assert entry.value == b"" and entry.version == 0 and not entry.HasField("expire_time")


def test_set_get_roundtrip_binary_value(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    value = bytes(range(256)) * 4
    set_resp = stub.Set(pb.SetRequest(key="bin", value=value, ttl=ttl(60)))
    assert set_resp.outcome == STORED and set_resp.version > 0
    entry = stub.Get(pb.GetRequest(key="bin")).entry
    assert entry.found and entry.value == value and entry.version == set_resp.version
    assert entry.expire_time.ToMilliseconds() == set_resp.expire_time.ToMilliseconds()


def test_empty_value_is_a_hit(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    stub.Set(pb.SetRequest(key="empty", value=b""))
    entry = stub.Get(pb.GetRequest(key="empty")).entry
    assert entry.found and entry.value == b""


def test_ttl_is_applied_and_expires(stub: cache_pb2_grpc.CacheServiceStub, coord: CoordUnderTest) -> None:
    resp = stub.Set(pb.SetRequest(key="short", value=b"x", ttl=ttl(0.2)))
    with coord.redis() as r:
        pttl = r.pttl("coord:default:cache:{short}")
    assert 0 < pttl <= 200
    deadline = time.monotonic() + 5
    while stub.Get(pb.GetRequest(key="short")).entry.found:
        assert time.monotonic() < deadline, "entry did not expire"
        time.sleep(0.05)
    assert resp.expire_time.ToMilliseconds() > 0


def test_default_ttl_when_unset(stub: cache_pb2_grpc.CacheServiceStub, coord: CoordUnderTest) -> None:
    stub.Set(pb.SetRequest(key="d", value=b"x"))
    with coord.redis() as r:
        pttl = r.pttl("coord:default:cache:{d}")
    default_ms = coord.settings.default_ttl * 1000
    assert default_ms - 5000 < pttl <= default_ms


def test_versions_increase_on_every_write(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    versions = [stub.Set(pb.SetRequest(key="v", value=str(i).encode())).version for i in range(5)]
    assert versions == sorted(set(versions))


def test_version_monotonic_across_delete_and_recreate(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    first = stub.Set(pb.SetRequest(key="aba", value=b"1")).version
    deleted = stub.Delete(pb.DeleteRequest(keys=["aba"]))
    assert deleted.results[0].version == first
    second = stub.Set(pb.SetRequest(key="aba", value=b"1")).version
    assert second > first
    # An old version can never match the re-created entry (no ABA).
    resp = stub.Set(pb.SetRequest(key="aba", value=b"2", if_version=first))
    assert resp.outcome == pb.WRITE_OUTCOME_VERSION_MISMATCH and resp.version == second


def test_version_survives_tombstone_even_if_clock_is_behind(
    stub: cache_pb2_grpc.CacheServiceStub, coord: CoordUnderTest
) -> None:
    # Simulate a version far in the future (as after a clock step back): the tombstone must carry it.
    future = int(time.time() * 1e6) + 3600 * 10**6
    with coord.redis() as r:
        r.hset("coord:default:cache:{fut}", mapping={"v": b"x", "ver": str(future)})
        r.pexpire("coord:default:cache:{fut}", 60_000)
    stub.Delete(pb.DeleteRequest(keys=["fut"]))
    assert stub.Set(pb.SetRequest(key="fut", value=b"y")).version == future + 1


def test_if_absent(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    first = stub.Set(pb.SetRequest(key="a", value=b"1", if_absent=pb.IfAbsent()))
    assert first.outcome == STORED
    second = stub.Set(pb.SetRequest(key="a", value=b"2", if_absent=pb.IfAbsent()))
    assert second.outcome == pb.WRITE_OUTCOME_ALREADY_EXISTS
    assert second.version == first.version
    assert stub.Get(pb.GetRequest(key="a")).entry.value == b"1"


def test_if_present(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    missing = stub.Set(pb.SetRequest(key="p", value=b"1", if_present=pb.IfPresent()))
    assert missing.outcome == pb.WRITE_OUTCOME_NOT_FOUND and missing.version == 0
    assert not stub.Get(pb.GetRequest(key="p")).entry.found
    stub.Set(pb.SetRequest(key="p", value=b"1"))
    assert stub.Set(pb.SetRequest(key="p", value=b"2", if_present=pb.IfPresent())).outcome == STORED
    assert stub.Get(pb.GetRequest(key="p")).entry.value == b"2"


def test_if_version_compare_and_set(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    assert stub.Set(pb.SetRequest(key="c", value=b"x", if_version=5)).outcome == pb.WRITE_OUTCOME_NOT_FOUND
    v1 = stub.Set(pb.SetRequest(key="c", value=b"1")).version
    ok = stub.Set(pb.SetRequest(key="c", value=b"2", if_version=v1))
    assert ok.outcome == STORED and ok.version > v1
    stale = stub.Set(pb.SetRequest(key="c", value=b"3", if_version=v1))
    assert stale.outcome == pb.WRITE_OUTCOME_VERSION_MISMATCH and stale.version == ok.version
    assert stub.Get(pb.GetRequest(key="c")).entry.value == b"2"


def test_cas_race_exactly_one_winner(coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        base = stub.Set(pb.SetRequest(key="race", value=b"0")).version

        def attempt(i: int) -> int:
            return stub.Set(pb.SetRequest(key="race", value=str(i).encode(), if_version=base)).outcome

        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(attempt, range(32)))
    assert outcomes.count(STORED) == 1
    assert outcomes.count(pb.WRITE_OUTCOME_VERSION_MISMATCH) == 31


def test_if_absent_race_exactly_one_winner(coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)

        def attempt(i: int) -> int:
            return stub.Set(
                pb.SetRequest(key="first", value=str(i).encode(), if_absent=pb.IfAbsent())
            ).outcome

        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(attempt, range(32)))
    assert outcomes.count(STORED) == 1


def test_batch_get_in_request_order_with_misses_and_duplicates(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    for k in ("k1", "k2", "k3"):
        stub.Set(pb.SetRequest(key=k, value=k.encode()))
    keys = ["k3", "missing", "k1", "k3", "k2"]
    entries = stub.BatchGet(pb.BatchGetRequest(keys=keys)).entries
    assert [e.key for e in entries] == keys
    assert [e.found for e in entries] == [True, False, True, True, True]
    assert [e.value for e in entries] == [b"k3", b"", b"k1", b"k3", b"k2"]


def test_batch_set_per_item_outcomes(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    stub.Set(pb.SetRequest(key="exists", value=b"old"))
    responses = stub.BatchSet(
        pb.BatchSetRequest(
            requests=[pb.SetRequest(key=f"b{i}", value=str(i).encode(), ttl=ttl(30)) for i in range(20)]
            + [
                pb.SetRequest(key="exists", value=b"new", if_absent=pb.IfAbsent()),
                pb.SetRequest(key="absent", value=b"x", if_present=pb.IfPresent()),
            ]
        )
    ).responses
    assert [r.outcome for r in responses[:20]] == [STORED] * 20
    assert responses[20].outcome == pb.WRITE_OUTCOME_ALREADY_EXISTS
    assert responses[21].outcome == pb.WRITE_OUTCOME_NOT_FOUND
    entries = stub.BatchGet(pb.BatchGetRequest(keys=[f"b{i}" for i in range(20)])).entries
    assert [e.value for e in entries] == [str(i).encode() for i in range(20)]


def test_delete_many_and_missing(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    stub.Set(pb.SetRequest(key="x1", value=b"1"))
    stub.Set(pb.SetRequest(key="x2", value=b"2"))
    resp = stub.Delete(pb.DeleteRequest(keys=["x1", "nope", "x2"]))
    assert resp.deleted_count == 2
    assert [r.outcome for r in resp.results] == [
        pb.DELETE_OUTCOME_DELETED,
        pb.DELETE_OUTCOME_NOT_FOUND,
        pb.DELETE_OUTCOME_DELETED,
    ]
    assert not stub.Get(pb.GetRequest(key="x1")).entry.found


def test_delete_if_version(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    v = stub.Set(pb.SetRequest(key="dv", value=b"1")).version
    wrong = stub.Delete(pb.DeleteRequest(keys=["dv"], if_version=v + 1))
    assert wrong.deleted_count == 0 and wrong.results[0].outcome == pb.DELETE_OUTCOME_VERSION_MISMATCH
    assert wrong.results[0].version == v
    assert stub.Get(pb.GetRequest(key="dv")).entry.found
    right = stub.Delete(pb.DeleteRequest(keys=["dv"], if_version=v))
    assert right.deleted_count == 1


def test_increment_creates_with_ttl_and_counts(
    stub: cache_pb2_grpc.CacheServiceStub, coord: CoordUnderTest
) -> None:
    first = stub.Increment(pb.IncrementRequest(key="n", delta=5, ttl=ttl(60)))
    assert first.value == 5 and first.created
    with coord.redis() as r:
        assert 0 < r.pttl("coord:default:cache:{n}") <= 60_000
    second = stub.Increment(pb.IncrementRequest(key="n", delta=-7, ttl=ttl(1)))
    assert second.value == -2 and not second.created and second.version > first.version
    # The TTL applies only on create: the existing expiry is kept.
    assert second.expire_time.ToMilliseconds() == pytest.approx(first.expire_time.ToMilliseconds(), abs=50)
    assert stub.Get(pb.GetRequest(key="n")).entry.value == b"-2"


def test_increment_is_exact_for_int64(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    big = 2**62 + 1  # beyond a double's exact range
    assert stub.Increment(pb.IncrementRequest(key="big", delta=big)).value == big
    assert stub.Increment(pb.IncrementRequest(key="big", delta=1)).value == big + 1


def test_increment_concurrent_counts_every_call(coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        with ThreadPoolExecutor(8) as pool:
            values = list(
                pool.map(lambda _: stub.Increment(pb.IncrementRequest(key="cnt", delta=1)).value, range(50))
            )
    assert sorted(values) == list(range(1, 51))


def test_increment_errors(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    stub.Set(pb.SetRequest(key="text", value=b"abc"))
    with pytest.raises(grpc.RpcError) as err:
        stub.Increment(pb.IncrementRequest(key="text", delta=1))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not a 64-bit integer" in err.value.details()
    assert stub.Get(pb.GetRequest(key="text")).entry.value == b"abc"

    stub.Increment(pb.IncrementRequest(key="max", delta=2**63 - 1))
    with pytest.raises(grpc.RpcError) as err:
        stub.Increment(pb.IncrementRequest(key="max", delta=1))
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert stub.Get(pb.GetRequest(key="max")).entry.value == str(2**63 - 1).encode()


def test_touch(stub: cache_pb2_grpc.CacheServiceStub, coord: CoordUnderTest) -> None:
    assert not stub.Touch(pb.TouchRequest(key="none", ttl=ttl(10))).found
    v = stub.Set(pb.SetRequest(key="t", value=b"1", ttl=ttl(5))).version
    resp = stub.Touch(pb.TouchRequest(key="t", ttl=ttl(500)))
    assert resp.found
    with coord.redis() as r:
        assert 400_000 < r.pttl("coord:default:cache:{t}") <= 500_000
    entry = stub.Get(pb.GetRequest(key="t")).entry
    assert entry.version == v and entry.value == b"1"
    assert entry.expire_time.ToMilliseconds() == resp.expire_time.ToMilliseconds()


def test_braces_in_keys_stay_in_one_slot(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    # Keys with braces must not break the hash tag (entry and tombstone share a slot on a cluster).
    for key in ("}abc", "{x}", "a{b}c", "%7B", "{}"):
        v1 = stub.Set(pb.SetRequest(key=key, value=key.encode())).version
        assert stub.Get(pb.GetRequest(key=key)).entry.value == key.encode()
        stub.Delete(pb.DeleteRequest(keys=[key]))
        assert stub.Set(pb.SetRequest(key=key, value=b"again")).version > v1
    # Escaping is injective: "{x}" and "%7Bx%7D" are different entries.
    stub.Set(pb.SetRequest(key="%7Bx%7D", value=b"other"))
    assert stub.Get(pb.GetRequest(key="{x}")).entry.value == b"again"


def test_every_written_key_has_a_ttl(stub: cache_pb2_grpc.CacheServiceStub, coord: CoordUnderTest) -> None:
    stub.Set(pb.SetRequest(key="s1", value=b"1"))
    stub.BatchSet(pb.BatchSetRequest(requests=[pb.SetRequest(key=f"bs{i}", value=b"x") for i in range(10)]))
    stub.Increment(pb.IncrementRequest(key="i1", delta=1))
    stub.Set(pb.SetRequest(key="d1", value=b"1"))
    stub.Delete(pb.DeleteRequest(keys=["d1"]))  # leaves a tombstone
    stub.Touch(pb.TouchRequest(key="s1", ttl=ttl(100)))
    with coord.redis() as r:
        keys = list(r.scan_iter("coord:*"))
        assert len(keys) == 13
        for key in keys:
            assert r.pttl(key) > 0, key
        assert r.exists("coord:default:cache:{d1}:tomb")
