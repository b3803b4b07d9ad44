"""ListService over the wire: every RPC and option, TTLs, versions, limits, wrong kinds and validation,
against single-node Redis and Redis Cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.collections.v1 import collection_pb2 as cpb
from coord.collections.v1 import list_pb2 as pb
from coord.collections.v1 import list_pb2_grpc, map_pb2, map_pb2_grpc

from ..conftest import CoordThread, CoordUnderTest, RedisClusterProcess, RedisProcess

Stub = list_pb2_grpc.ListServiceStub
FRONT, BACK = pb.END_FRONT, pb.END_BACK
KEEP = cpb.TTL_POLICY_KEEP


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(round(seconds * 1000))
    return d


def data_key(name: str, tenant: str = "default") -> str:
    return f"coord:{tenant}:coll:{{{name}}}"


def queue_key(name: str) -> str:
    """The ZSET of a list's waiting Pops."""
    return data_key(name) + ":q"


@contextmanager
def list_stub(target: str) -> Iterator[Stub]:
    with grpc.insecure_channel(target) as channel:
        yield Stub(channel)


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with list_stub(coord.target) as s:
        yield s


def push(stub: Stub, name: str, *values: bytes, **kwargs: object) -> pb.ListServicePushResponse:
    return stub.Push(pb.ListServicePushRequest(name=name, values=values, **kwargs))  # type: ignore[arg-type]


def pop(stub: Stub, name: str, **kwargs: object) -> pb.ListServicePopResponse:
    return stub.Pop(pb.ListServicePopRequest(name=name, **kwargs), timeout=60)  # type: ignore[arg-type]


def whole(stub: Stub, name: str) -> list[bytes]:
    return list(stub.Range(pb.ListServiceRangeRequest(name=name, start=0, stop=-1)).values)


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
    return info


def refused(call: Callable[[], object]) -> tuple[grpc.StatusCode, error_details_pb2.ErrorInfo]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), error_info(caught.value)


def nodes(coord: CoordUnderTest) -> list[RedisProcess]:
    """Every node of the backing store (a cluster's keys are spread over its masters)."""
    backing = coord.backing
    return list(backing.nodes) if isinstance(backing, RedisClusterProcess) else [backing]


def all_keys(coord: CoordUnderTest) -> list[bytes]:
    found: list[bytes] = []
    for node in nodes(coord):
        with node.client() as r:
            found.extend(r.keys("*"))
    return sorted(found)


def assert_every_key_expires(coord: CoordUnderTest) -> None:
    for node in nodes(coord):
        with node.client() as r:
            for key in r.keys("*"):
                assert r.pttl(key) > 0, key


# -- Push, Pop, Range, Length ----------------------------------------------------------------------


def test_push_back_keeps_order_and_front_reverses_it(stub: Stub) -> None:
    first = push(stub, "l", b"a", b"b", b"c")
    assert first.applied and first.trimmed == 0
    assert first.collection.exists and first.collection.length == 3 and first.collection.version > 0
    front = push(stub, "l", b"x", b"y", end=FRONT)
    assert front.collection.length == 5 and front.collection.version > first.collection.version
    assert whole(stub, "l") == [b"y", b"x", b"a", b"b", b"c"]
    assert push(stub, "l", b"z", end=BACK).collection.length == 6
    assert whole(stub, "l")[-1] == b"z"


def test_binary_and_empty_values_round_trip(stub: Stub) -> None:
    value = bytes(range(256))
    push(stub, "bin", value, b"")
    assert whole(stub, "bin") == [value, b""]
    assert list(pop(stub, "bin", count=2).values) == [value, b""]


def test_pop_takes_from_the_front_by_default_and_from_the_back(stub: Stub) -> None:
    push(stub, "l", b"1", b"2", b"3", b"4", b"5")
    assert list(pop(stub, "l").values) == [b"1"]
    front = pop(stub, "l", count=2, end=FRONT)
    assert list(front.values) == [b"2", b"3"] and front.applied and front.collection.length == 2
    assert list(pop(stub, "l", end=BACK).values) == [b"5"]
    last = pop(stub, "l", count=10, end=BACK)
    assert list(last.values) == [b"4"]
    assert last.applied and not last.collection.exists and last.collection.version == 0


def test_pop_of_a_missing_list_returns_nothing(stub: Stub) -> None:
    response = pop(stub, "none", count=3)
    assert response.applied and list(response.values) == [] and not response.collection.exists


def test_pop_from_the_back_takes_values_back_to_front(stub: Stub) -> None:
    push(stub, "l", b"a", b"b", b"c")
    assert list(pop(stub, "l", count=2, end=BACK).values) == [b"c", b"b"]


def test_max_length_trims_the_other_end(stub: Stub) -> None:
    capped = push(stub, "cap", b"a", b"b", b"c", b"d", b"e", max_length=3)
    assert capped.trimmed == 2 and capped.collection.length == 3
    assert whole(stub, "cap") == [b"c", b"d", b"e"]
    front = push(stub, "cap", b"f", end=FRONT, max_length=3)
    assert front.trimmed == 1 and whole(stub, "cap") == [b"f", b"c", b"d"]
    roomy = push(stub, "cap", b"g", max_length=10)
    assert roomy.trimmed == 0 and whole(stub, "cap") == [b"f", b"c", b"d", b"g"]
    # A list longer than max_length (pushed without it before) is trimmed down to it.
    push(stub, "cap", b"h", b"i")
    trimmed = push(stub, "cap", b"j", max_length=2)
    assert trimmed.trimmed == 5 and whole(stub, "cap") == [b"i", b"j"]


def test_range_positions_follow_lrange(stub: Stub) -> None:
    values = [str(i).encode() for i in range(10)]
    push(stub, "r", *values)

    def rng(start: int, stop: int) -> list[bytes]:
        response = stub.Range(pb.ListServiceRangeRequest(name="r", start=start, stop=stop))
        assert not response.has_more and response.collection.length == 10
        return list(response.values)

    assert rng(0, -1) == values
    assert rng(2, 4) == values[2:5]
    assert rng(-3, -1) == values[7:]
    assert rng(-100, 1) == values[:2]
    assert rng(8, 100) == values[8:]
    assert rng(5, 2) == []
    assert rng(10, 20) == []
    assert rng(-(2**63), 2**63 - 1) == values
    missing = stub.Range(pb.ListServiceRangeRequest(name="none", start=0, stop=-1))
    assert list(missing.values) == [] and not missing.has_more and not missing.collection.exists


def test_range_pages_through_a_long_list(stub: Stub, coord: CoordUnderTest) -> None:
    batch = coord.settings.max_batch
    values = [str(i).encode() for i in range(2 * batch + 7)]
    for i in range(0, len(values), batch):
        push(stub, "long", *values[i : i + batch])
    seen: list[bytes] = []
    start, pages = 1, 0
    while True:
        page = stub.Range(pb.ListServiceRangeRequest(name="long", start=start, stop=-2))
        pages += 1
        assert len(page.values) <= batch
        seen.extend(page.values)
        if not page.has_more:
            assert page.next_start == 0
            break
        assert page.next_start == start + len(page.values)
        start = page.next_start
    assert pages == 3 and seen == values[1:-1]


def test_length(stub: Stub) -> None:
    assert stub.Length(pb.ListServiceLengthRequest(name="l")).collection.length == 0
    pushed = push(stub, "l", b"a", b"b")
    state = stub.Length(pb.ListServiceLengthRequest(name="l")).collection
    assert state.length == 2 and state.exists and state.version == pushed.collection.version
    assert state.expire_time.ToMilliseconds() == pushed.collection.expire_time.ToMilliseconds()


# -- Remove, Trim, Delete, Touch -------------------------------------------------------------------


def test_remove_follows_lrem_counts(stub: Stub) -> None:
    push(stub, "l", b"a", b"b", b"a", b"c", b"a", b"a")

    def remove(value: bytes, count: int) -> pb.ListServiceRemoveResponse:
        return stub.Remove(pb.ListServiceRemoveRequest(name="l", value=value, count=count))

    first = remove(b"a", 1)
    assert first.removed == 1 and whole(stub, "l") == [b"b", b"a", b"c", b"a", b"a"]
    assert remove(b"a", -1).removed == 1 and whole(stub, "l") == [b"b", b"a", b"c", b"a"]
    version = stub.Length(pb.ListServiceLengthRequest(name="l")).collection.version
    none = remove(b"zz", 0)
    assert none.applied and none.removed == 0 and none.collection.version == version
    rest = remove(b"a", 0)
    assert rest.removed == 2 and whole(stub, "l") == [b"b", b"c"] and rest.collection.version > version
    assert remove(b"b", 5).removed == 1 and remove(b"c", -5).removed == 1
    assert not stub.Length(pb.ListServiceLengthRequest(name="l")).collection.exists
    missing = stub.Remove(pb.ListServiceRemoveRequest(name="none", value=b"x"))
    assert missing.applied and missing.removed == 0 and not missing.collection.exists


def test_trim_follows_ltrim(stub: Stub, coord: CoordUnderTest) -> None:
    values = [str(i).encode() for i in range(10)]
    push(stub, "t", *values)
    trimmed = stub.Trim(pb.ListServiceTrimRequest(name="t", start=2, stop=-3))
    assert trimmed.applied and trimmed.removed == 4 and trimmed.collection.length == 6
    assert whole(stub, "t") == values[2:8]
    version = trimmed.collection.version
    same = stub.Trim(pb.ListServiceTrimRequest(name="t", start=0, stop=-1))
    assert same.removed == 0 and same.collection.version == version
    gone = stub.Trim(pb.ListServiceTrimRequest(name="t", start=5, stop=1))
    assert gone.removed == 6 and not gone.collection.exists
    assert all_keys(coord) == []
    missing = stub.Trim(pb.ListServiceTrimRequest(name="none", start=0, stop=1))
    assert missing.applied and missing.removed == 0


def test_delete_and_touch(stub: Stub) -> None:
    assert not stub.Touch(pb.ListServiceTouchRequest(name="l", ttl=dur(100))).collection.exists
    assert not stub.Delete(pb.ListServiceDeleteRequest(name="l")).deleted
    pushed = push(stub, "l", b"a", options=cpb.WriteOptions(ttl=dur(100)))
    touched = stub.Touch(pb.ListServiceTouchRequest(name="l", ttl=dur(1000))).collection
    assert touched.version == pushed.collection.version and touched.length == 1
    assert touched.expire_time.ToMilliseconds() > pushed.collection.expire_time.ToMilliseconds() + 800_000
    wrong = stub.Delete(pb.ListServiceDeleteRequest(name="l", if_version=touched.version + 1))
    assert not wrong.deleted and wrong.collection.version == touched.version
    done = stub.Delete(pb.ListServiceDeleteRequest(name="l", if_version=touched.version))
    assert done.deleted and not done.collection.exists
    assert whole(stub, "l") == []


# -- versions, TTLs, keys --------------------------------------------------------------------------


def test_if_version_applies_only_on_a_match(stub: Stub) -> None:
    version = push(stub, "v", b"a", b"b").collection.version
    stale = version + 1
    no = cpb.WriteOptions(if_version=stale)
    missed_push = push(stub, "v", b"c", options=no)
    assert not missed_push.applied and missed_push.collection.version == version
    assert missed_push.collection.length == 2
    missed_pop = pop(stub, "v", options=no)
    assert not missed_pop.applied and list(missed_pop.values) == []
    assert not stub.Remove(pb.ListServiceRemoveRequest(name="v", value=b"a", options=no)).applied
    assert not stub.Trim(pb.ListServiceTrimRequest(name="v", start=1, stop=1, options=no)).applied
    assert whole(stub, "v") == [b"a", b"b"]
    yes = push(stub, "v", b"c", options=cpb.WriteOptions(if_version=version))
    assert yes.applied and yes.collection.version > version
    taken = pop(stub, "v", options=cpb.WriteOptions(if_version=yes.collection.version))
    assert taken.applied and list(taken.values) == [b"a"]
    # A missing list has version 0: a conditional write never creates one.
    assert not push(stub, "nothing", b"x", options=cpb.WriteOptions(if_version=version)).applied
    assert not stub.Length(pb.ListServiceLengthRequest(name="nothing")).collection.exists


def test_ttl_policy_refresh_and_keep(stub: Stub, coord: CoordUnderTest) -> None:
    first = push(stub, "ttl", b"a", options=cpb.WriteOptions(ttl=dur(100)))
    expiry = first.collection.expire_time.ToMilliseconds()
    kept = push(stub, "ttl", b"b", options=cpb.WriteOptions(ttl=dur(1000), ttl_policy=KEEP))
    assert kept.collection.expire_time.ToMilliseconds() == expiry
    kept_pop = pop(stub, "ttl", options=cpb.WriteOptions(ttl=dur(1000), ttl_policy=KEEP))
    assert kept_pop.collection.expire_time.ToMilliseconds() == expiry
    with coord.redis() as r:
        assert 0 < r.pttl(data_key("ttl")) <= 100_000
    refreshed = push(stub, "ttl", b"c", options=cpb.WriteOptions(ttl=dur(1000)))
    assert refreshed.collection.expire_time.ToMilliseconds() > expiry + 800_000
    with coord.redis() as r:
        assert r.pttl(data_key("ttl")) > 800_000 and r.pttl(data_key("ttl") + ":m") > 800_000
    # A KEEP write that creates the list gives it the TTL.
    created = push(stub, "new", b"a", options=cpb.WriteOptions(ttl=dur(50), ttl_policy=KEEP))
    with coord.redis() as r:
        assert 0 < r.pttl(data_key("new")) <= 50_000
    assert created.collection.expire_time.ToMilliseconds() > 0


def test_every_key_has_a_ttl_after_each_write(stub: Stub, coord: CoordUnderTest) -> None:
    writes: list[Callable[[], object]] = [
        lambda: push(stub, "k", b"a", b"b", b"c", b"d"),
        lambda: push(stub, "k", b"e", end=FRONT, max_length=3),
        lambda: pop(stub, "k"),
        lambda: stub.Remove(pb.ListServiceRemoveRequest(name="k", value=b"c")),
        lambda: stub.Trim(pb.ListServiceTrimRequest(name="k", start=0, stop=0)),
        lambda: push(stub, "k", b"f", options=cpb.WriteOptions(ttl=dur(10), ttl_policy=KEEP)),
        lambda: stub.Touch(pb.ListServiceTouchRequest(name="k", ttl=dur(20))),
        lambda: pop(stub, "k", count=1, end=BACK),
        lambda: pop(stub, "empty", wait=dur(0.05)),  # queued for a moment, then gone
    ]
    for write in writes:
        write()
        assert_every_key_expires(coord)
    assert all_keys(coord) == [data_key("k").encode(), (data_key("k") + ":m").encode()]


def test_an_emptied_list_leaves_no_keys(stub: Stub, coord: CoordUnderTest) -> None:
    push(stub, "e", b"a", b"b")
    pop(stub, "e", count=2)
    assert all_keys(coord) == []
    push(stub, "e", b"a", b"b")
    stub.Remove(pb.ListServiceRemoveRequest(name="e", value=b"a"))
    stub.Remove(pb.ListServiceRemoveRequest(name="e", value=b"b"))
    assert all_keys(coord) == []
    push(stub, "e", b"a")
    assert stub.Delete(pb.ListServiceDeleteRequest(name="e")).deleted
    assert all_keys(coord) == []
    pop(stub, "e", wait=dur(0.05))
    assert all_keys(coord) == []


def test_versions_increase_across_delete_and_recreate(stub: Stub) -> None:
    first = push(stub, "l", b"a").collection.version
    stub.Delete(pb.ListServiceDeleteRequest(name="l"))
    second = push(stub, "l", b"a").collection.version
    third = pop(stub, "l", count=1)
    assert second > first and not third.collection.exists
    assert push(stub, "l", b"b").collection.version > second


# -- limits and kinds ------------------------------------------------------------------------------


def test_a_push_past_the_element_limit_is_refused_whole(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", collection_max_elements=5)
    with list_stub(server.target) as small:
        before = push(small, "big", b"1", b"2", b"3")
        code, info = refused(lambda: push(small, "big", b"4", b"5", b"6"))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and info.reason == "COLLECTION_TOO_LARGE"
        assert info.metadata["limit"] == "5" and info.metadata["actual"] == "6"
        after = small.Length(pb.ListServiceLengthRequest(name="big")).collection
        assert after.version == before.collection.version and whole(small, "big") == [b"1", b"2", b"3"]
        # Counted after the push's own trim: a capped push fits.
        capped = push(small, "big", b"4", b"5", b"6", max_length=5)
        assert (
            capped.applied and capped.trimmed == 1 and whole(small, "big") == [b"2", b"3", b"4", b"5", b"6"]
        )
        code, _ = refused(lambda: push(small, "fresh", *[b"x"] * 6))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not small.Length(pb.ListServiceLengthRequest(name="fresh")).collection.exists
        assert push(small, "fresh", *[b"x"] * 6, max_length=5).collection.length == 5
    assert_every_key_expires(coord)


def test_wrong_kind_in_both_directions(stub: Stub, coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        maps = map_pb2_grpc.MapServiceStub(channel)
        maps.Set(map_pb2.MapServiceSetRequest(name="m", fields=[map_pb2.MapField(field="f", value=b"v")]))
        push(stub, "l", b"a")
        list_calls: list[Callable[[], object]] = [
            lambda: push(stub, "m", b"x"),
            lambda: pop(stub, "m"),
            lambda: pop(stub, "m", wait=dur(5)),
            lambda: stub.Range(pb.ListServiceRangeRequest(name="m", start=0, stop=-1)),
            lambda: stub.Length(pb.ListServiceLengthRequest(name="m")),
            lambda: stub.Remove(pb.ListServiceRemoveRequest(name="m", value=b"v")),
            lambda: stub.Trim(pb.ListServiceTrimRequest(name="m", start=0, stop=0)),
            lambda: stub.Delete(pb.ListServiceDeleteRequest(name="m")),
            lambda: stub.Touch(pb.ListServiceTouchRequest(name="m")),
        ]
        for call in list_calls:
            code, info = refused(call)
            assert code == grpc.StatusCode.FAILED_PRECONDITION and info.reason == "COLLECTION_WRONG_TYPE"
            assert info.metadata["expected"] == "list" and info.metadata["actual"] == "map"
        map_calls: list[Callable[[], object]] = [
            lambda: maps.Get(map_pb2.MapServiceGetRequest(name="l", fields=["f"])),
            lambda: maps.Set(
                map_pb2.MapServiceSetRequest(name="l", fields=[map_pb2.MapField(field="f", value=b"v")])
            ),
            lambda: maps.Delete(map_pb2.MapServiceDeleteRequest(name="l")),
        ]
        for call in map_calls:
            code, info = refused(call)
            assert code == grpc.StatusCode.FAILED_PRECONDITION and info.reason == "COLLECTION_WRONG_TYPE"
            assert info.metadata["expected"] == "map" and info.metadata["actual"] == "list"
    assert whole(stub, "l") == [b"a"]


def test_validation_errors_name_the_field(stub: Stub, coord: CoordUnderTest) -> None:
    big = b"x" * (coord.settings.max_value_bytes + 1)
    too_many = [b"v"] * (coord.settings.max_batch + 1)
    cases: list[tuple[Callable[[], object], grpc.StatusCode, str]] = [
        (lambda: push(stub, "", b"a"), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (lambda: push(stub, "a\nb", b"a"), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (lambda: push(stub, "l"), grpc.StatusCode.INVALID_ARGUMENT, "values"),
        (lambda: push(stub, "l", *too_many), grpc.StatusCode.INVALID_ARGUMENT, "values"),
        (lambda: push(stub, "l", b"a", big), grpc.StatusCode.RESOURCE_EXHAUSTED, "values[1]"),
        (lambda: push(stub, "l", b"a", max_length=-1), grpc.StatusCode.INVALID_ARGUMENT, "max_length"),
        (lambda: push(stub, "l", b"a", end=7), grpc.StatusCode.INVALID_ARGUMENT, "end"),
        (
            lambda: push(stub, "l", b"a", options=cpb.WriteOptions(ttl=dur(10**9))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "options.ttl",
        ),
        (
            lambda: push(stub, "l", b"a", options=cpb.WriteOptions(ttl_policy=9)),  # type: ignore[arg-type]
            grpc.StatusCode.INVALID_ARGUMENT,
            "options.ttl_policy",
        ),
        (lambda: pop(stub, "l", count=-1), grpc.StatusCode.INVALID_ARGUMENT, "count"),
        (lambda: pop(stub, "l", count=len(too_many)), grpc.StatusCode.INVALID_ARGUMENT, "count"),
        (lambda: pop(stub, "l", end=5), grpc.StatusCode.INVALID_ARGUMENT, "end"),
        (lambda: pop(stub, "l", wait=dur(10**9)), grpc.StatusCode.INVALID_ARGUMENT, "wait"),
        (
            lambda: pop(stub, "l", wait=dur(1), options=cpb.WriteOptions(if_version=3)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "options.if_version",
        ),
        (
            lambda: stub.Range(pb.ListServiceRangeRequest(name="", start=0, stop=1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "name",
        ),
        (
            lambda: stub.Remove(pb.ListServiceRemoveRequest(name="l", value=big)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "value",
        ),
        (
            lambda: stub.Trim(pb.ListServiceTrimRequest(name="l", options=cpb.WriteOptions(ttl=dur(10**9)))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "options.ttl",
        ),
        (
            lambda: stub.Touch(pb.ListServiceTouchRequest(name="l", ttl=dur(10**9))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ttl",
        ),
        (lambda: stub.Length(pb.ListServiceLengthRequest(name="")), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (lambda: stub.Delete(pb.ListServiceDeleteRequest(name="")), grpc.StatusCode.INVALID_ARGUMENT, "name"),
    ]
    for call, code, field in cases:
        got, info = refused(call)
        assert (got, info.metadata["field"]) == (code, field)
    assert all_keys(coord) == []


def test_large_values_come_in_replies_that_fit_and_a_pop_loses_none(coord: CoordUnderTest) -> None:
    """Five values of 1 MiB are more than one 4 MiB reply: Range pages them, Pop takes fewer than
    asked, and every value is read and popped exactly once."""
    big = [bytes([i]) * (1 << 20) for i in range(5)]
    with grpc.insecure_channel(coord.target) as channel:
        lists = list_pb2_grpc.ListServiceStub(channel)
        for value in big:
            lists.Push(pb.ListServicePushRequest(name="big", values=[value]))
        read: list[bytes] = []
        start = 0
        while True:
            page = lists.Range(pb.ListServiceRangeRequest(name="big", start=start, stop=-1))
            assert page.values
            read += page.values
            if not page.has_more:
                break
            start = page.next_start
        assert read == big
        popped: list[bytes] = []
        while len(popped) < len(big):
            reply = lists.Pop(pb.ListServicePopRequest(name="big", count=5))
            assert 0 < len(reply.values) < 5  # never more than one reply can carry
            popped += reply.values
        assert popped == big
        assert not lists.Length(pb.ListServiceLengthRequest(name="big")).collection.exists
