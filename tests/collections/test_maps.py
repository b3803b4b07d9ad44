"""MapService over the wire, and what every collection shares (TTL policy, versions, if_version,
kinds, limits, keys), against single-node Redis and Redis Cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.collections.v1 import collection_pb2 as cpb
from coord.collections.v1 import list_pb2, list_pb2_grpc, map_pb2_grpc
from coord.collections.v1 import map_pb2 as pb
from tests.conftest import CoordThread, CoordUnderTest, wait_for

from ._util import assert_every_key_expires, refused, sec

Stub = map_pb2_grpc.MapServiceStub


@pytest.fixture
def channel(coord: CoordUnderTest) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(coord.target) as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.Channel) -> Stub:
    return map_pb2_grpc.MapServiceStub(channel)


def fields(**values: bytes) -> list[pb.MapField]:
    return [pb.MapField(field=k, value=v) for k, v in values.items()]


def put(
    stub: Stub, name: str, options: cpb.WriteOptions | None = None, **values: bytes
) -> pb.MapServiceSetResponse:
    return stub.Set(pb.MapServiceSetRequest(name=name, fields=fields(**values), options=options))


def get(stub: Stub, name: str, *names: str) -> dict[str, bytes | None]:
    reply = stub.Get(pb.MapServiceGetRequest(name=name, fields=list(names)))
    return {v.field: (v.value if v.found else None) for v in reply.values}


def test_set_get_and_counts(stub: Stub, coord: CoordUnderTest) -> None:
    first = put(stub, "user:1", first=b"Ada", lang=b"en")
    assert first.applied and first.added == 2
    state = first.collection
    assert state.exists and state.length == 2 and state.version > 0 and state.HasField("expire_time")
    again = put(stub, "user:1", first=b"Ada L.", city=b"London")
    assert again.added == 1 and again.collection.length == 3 and again.collection.version > state.version
    assert get(stub, "user:1", "first", "city", "nothing") == {
        "first": b"Ada L.",
        "city": b"London",
        "nothing": None,
    }
    reply = stub.Get(pb.MapServiceGetRequest(name="user:1", fields=["first"]))
    assert reply.collection.version == again.collection.version  # a read reports the version
    keys = assert_every_key_expires(coord)
    assert sorted(keys) == ["coord:default:coll:{user:1}", "coord:default:coll:{user:1}:m"]


def test_binary_values_and_a_field_given_twice(stub: Stub) -> None:
    value = bytes(range(256))
    request = pb.MapServiceSetRequest(
        name="bin", fields=[pb.MapField(field="f", value=b"first"), pb.MapField(field="f", value=value)]
    )
    reply = stub.Set(request)
    assert reply.added == 1 and reply.collection.length == 1
    assert get(stub, "bin", "f") == {"f": value}


def test_missing_map_reads_as_empty(stub: Stub) -> None:
    reply = stub.Get(pb.MapServiceGetRequest(name="none", fields=["a"]))
    assert not reply.collection.exists and reply.collection.version == 0 and not reply.values[0].found
    assert not reply.collection.HasField("expire_time")
    assert stub.Length(pb.MapServiceLengthRequest(name="none")).collection.length == 0
    page = stub.GetAll(pb.MapServiceGetAllRequest(name="none"))
    assert list(page.fields) == [] and page.next_cursor == ""


def test_get_all_pages_cover_every_field(stub: Stub) -> None:
    for start in range(0, 600, 200):
        stub.Set(
            pb.MapServiceSetRequest(
                name="big",
                fields=[pb.MapField(field=f"f{i}", value=str(i).encode()) for i in range(start, start + 200)],
            )
        )
    seen: dict[str, bytes] = {}
    cursor, pages = "", 0
    while True:
        page = stub.GetAll(pb.MapServiceGetAllRequest(name="big", cursor=cursor, page_size=50))
        pages += 1
        seen.update({f.field: f.value for f in page.fields})
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages > 1  # 600 fields in a hashtable, pages of about 50
    assert seen == {f"f{i}": str(i).encode() for i in range(600)}
    small = stub.GetAll(pb.MapServiceGetAllRequest(name="big2"))
    assert small.next_cursor == ""


def test_remove_and_the_last_field_takes_the_map(stub: Stub, coord: CoordUnderTest) -> None:
    put(stub, "m", a=b"1", b=b"2")
    removed = stub.Remove(pb.MapServiceRemoveRequest(name="m", fields=["a", "zz"]))
    assert removed.applied and removed.removed == 1 and removed.collection.length == 1
    version = removed.collection.version
    nothing = stub.Remove(pb.MapServiceRemoveRequest(name="m", fields=["zz"]))
    assert nothing.removed == 0 and nothing.collection.version == version  # nothing changed
    last = stub.Remove(pb.MapServiceRemoveRequest(name="m", fields=["b"]))
    assert last.removed == 1 and not last.collection.exists
    assert assert_every_key_expires(coord) == {}


def test_increment_integer_and_float(stub: Stub) -> None:
    assert stub.Increment(pb.MapServiceIncrementRequest(name="c", field="n", delta=5)).int_value == 5
    assert stub.Increment(pb.MapServiceIncrementRequest(name="c", field="n", delta=-7)).int_value == -2
    big = 2**62
    stub.Increment(pb.MapServiceIncrementRequest(name="c", field="big", delta=big))
    exact = stub.Increment(pb.MapServiceIncrementRequest(name="c", field="big", delta=big - 1))
    assert exact.int_value == 2**63 - 1  # exact past 2^53: no double on the way
    overflow = refused(lambda: stub.Increment(pb.MapServiceIncrementRequest(name="c", field="big", delta=1)))
    assert (overflow.code, overflow.reason) == (grpc.StatusCode.OUT_OF_RANGE, "INTEGER_OVERFLOW")
    assert (
        stub.Increment(pb.MapServiceIncrementRequest(name="c", field="f", float_delta=1.5)).float_value == 1.5
    )
    assert (
        stub.Increment(pb.MapServiceIncrementRequest(name="c", field="n", float_delta=0.5)).float_value
        == -1.5
    )
    put(stub, "c", word=b"hello")
    not_int = refused(lambda: stub.Increment(pb.MapServiceIncrementRequest(name="c", field="word", delta=1)))
    assert (not_int.code, not_int.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VALUE_NOT_INTEGER")
    not_num = refused(
        lambda: stub.Increment(pb.MapServiceIncrementRequest(name="c", field="word", float_delta=1))
    )
    assert (not_num.code, not_num.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "COLLECTION_VALUE_NOT_NUMBER",
    )
    assert not_num.metadata == {"name": "c", "field": "word"}
    assert get(stub, "c", "word") == {"word": b"hello"}
    nan = refused(
        lambda: stub.Increment(pb.MapServiceIncrementRequest(name="c", field="f", float_delta=float("nan")))
    )
    assert (nan.code, nan.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "float_delta")


def test_if_version_is_compare_and_set_over_the_whole_map(stub: Stub) -> None:
    first = put(stub, "cas", a=b"1")
    version = first.collection.version
    stale = put(stub, "cas", cpb.WriteOptions(if_version=version + 1), a=b"2")
    assert not stale.applied and stale.added == 0
    assert stale.collection.version == version and get(stub, "cas", "a") == {"a": b"1"}
    ok = put(stub, "cas", cpb.WriteOptions(if_version=version), a=b"3")
    assert ok.applied and ok.collection.version > version
    # Every write takes it: Remove and Increment too; a missing map has version 0, never matched.
    assert not stub.Remove(
        pb.MapServiceRemoveRequest(name="cas", fields=["a"], options=cpb.WriteOptions(if_version=version))
    ).applied
    assert not stub.Increment(
        pb.MapServiceIncrementRequest(
            name="cas", field="n", delta=1, options=cpb.WriteOptions(if_version=version)
        )
    ).applied
    assert not put(stub, "absent", cpb.WriteOptions(if_version=1), a=b"x").applied
    assert not stub.Length(pb.MapServiceLengthRequest(name="absent")).collection.exists


def test_versions_increase_across_delete_and_recreate(stub: Stub) -> None:
    versions = [put(stub, "v", a=b"1").collection.version]
    for _ in range(3):
        deleted = stub.Delete(pb.MapServiceDeleteRequest(name="v"))
        assert deleted.deleted and not deleted.collection.exists
        versions.append(put(stub, "v", a=b"1").collection.version)
        versions.append(
            stub.Increment(pb.MapServiceIncrementRequest(name="v", field="n", delta=1)).collection.version
        )
    assert versions == sorted(set(versions))


def test_delete_with_if_version(stub: Stub, coord: CoordUnderTest) -> None:
    version = put(stub, "d", a=b"1").collection.version
    kept = stub.Delete(pb.MapServiceDeleteRequest(name="d", if_version=version + 1))
    assert not kept.deleted and kept.collection.version == version
    assert stub.Delete(pb.MapServiceDeleteRequest(name="d", if_version=version)).deleted
    assert not stub.Delete(pb.MapServiceDeleteRequest(name="d")).deleted
    assert assert_every_key_expires(coord) == {}


def expiry_ms(state: cpb.CollectionState) -> int:
    return state.expire_time.ToMilliseconds()


def test_ttl_policies(stub: Stub, coord: CoordUnderTest) -> None:
    created = put(stub, "t", cpb.WriteOptions(ttl=sec(100)), a=b"1").collection
    refreshed = put(stub, "t", cpb.WriteOptions(ttl=sec(1000)), a=b"2").collection
    assert expiry_ms(refreshed) >= expiry_ms(created) + 899_000
    kept = put(stub, "t", cpb.WriteOptions(ttl=sec(5), ttl_policy=cpb.TTL_POLICY_KEEP), a=b"3").collection
    assert expiry_ms(kept) == expiry_ms(refreshed) and kept.version > refreshed.version
    # KEEP on a write that creates the map gives it the TTL (no key ever lacks one).
    new = put(stub, "t2", cpb.WriteOptions(ttl=sec(50), ttl_policy=cpb.TTL_POLICY_KEEP), a=b"1").collection
    with coord.redis() as r:
        for key in ("coord:default:coll:{t2}", "coord:default:coll:{t2}:m"):
            assert 40_000 < r.pttl(key) <= 50_000
        assert r.pexpiretime("coord:default:coll:{t}") == expiry_ms(kept)
    assert new.exists
    # The default TTL applies when none is given.
    default = put(stub, "t3", a=b"1").collection
    assert expiry_ms(default) > expiry_ms(new)
    # Touch sets a new TTL, keeping version and fields.
    touched = stub.Touch(pb.MapServiceTouchRequest(name="t", ttl=sec(10))).collection
    assert touched.version == kept.version and expiry_ms(touched) < expiry_ms(kept)
    assert not stub.Touch(pb.MapServiceTouchRequest(name="nothing", ttl=sec(10))).collection.exists
    assert_every_key_expires(coord)


def test_a_map_expires_whole(stub: Stub, coord: CoordUnderTest) -> None:
    put(stub, "short", cpb.WriteOptions(ttl=sec(0.2)), a=b"1")
    wait_for(lambda: not stub.Length(pb.MapServiceLengthRequest(name="short")).collection.exists, "expiry")
    assert get(stub, "short", "a") == {"a": None}


def test_a_name_holds_one_kind(channel: grpc.Channel, stub: Stub, coord: CoordUnderTest) -> None:
    lists = list_pb2_grpc.ListServiceStub(channel)
    put(stub, "shared", a=b"1")
    for call in (
        lambda: lists.Push(list_pb2.ListServicePushRequest(name="shared", values=[b"x"])),
        lambda: lists.Length(list_pb2.ListServiceLengthRequest(name="shared")),
        lambda: lists.Delete(list_pb2.ListServiceDeleteRequest(name="shared")),
    ):
        said = refused(call)
        assert (said.code, said.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "COLLECTION_WRONG_TYPE")
        assert said.metadata == {"name": "shared", "expected": "list", "actual": "map"}
    assert get(stub, "shared", "a") == {"a": b"1"}  # nothing changed
    # A cache key of the same name is another thing.
    cache = cache_pb2_grpc.CacheServiceStub(channel)
    cache.Set(cache_pb2.SetRequest(key="shared", value=b"cached"))
    assert cache.Get(cache_pb2.GetRequest(key="shared")).entry.value == b"cached"
    assert get(stub, "shared", "a") == {"a": b"1"}


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        (pb.MapServiceSetRequest(name="", fields=fields(a=b"1")), "name", "INVALID_FIELD"),
        (pb.MapServiceSetRequest(name="m", fields=[]), "fields", "INVALID_FIELD"),
        (pb.MapServiceSetRequest(name="m", fields=fields(**{"": b"1"})), "fields[0].field", "INVALID_FIELD"),
        (pb.MapServiceSetRequest(name="m" * 1025, fields=fields(a=b"1")), "name", "KEY_TOO_LONG"),
        (
            pb.MapServiceSetRequest(
                name="m", fields=[pb.MapField(field=f"f{i}", value=b"") for i in range(1001)]
            ),
            "fields",
            "BATCH_TOO_LARGE",
        ),
        (
            pb.MapServiceSetRequest(
                name="m", fields=fields(a=b"1"), options=cpb.WriteOptions(ttl=sec(40 * 86400))
            ),
            "options.ttl",
            "TTL_OUT_OF_RANGE",
        ),
        (
            pb.MapServiceSetRequest(name="m", fields=fields(a=b"1"), options=cpb.WriteOptions(ttl_policy=9)),  # type: ignore[arg-type]
            "options.ttl_policy",
            "INVALID_FIELD",
        ),
        (pb.MapServiceGetRequest(name="m", fields=["a", "b\n"]), "fields[1]", "INVALID_FIELD"),
        (pb.MapServiceGetAllRequest(name="m", page_size=1001), "page_size", "BATCH_TOO_LARGE"),
        (pb.MapServiceGetAllRequest(name="m", cursor="abc"), "cursor", "INVALID_FIELD"),
        (pb.MapServiceIncrementRequest(name="m", field=""), "field", "INVALID_FIELD"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_bad_input_names_the_field(
    stub: Stub, request_: object, field: str, reason: str, coord: CoordUnderTest
) -> None:
    method = {
        pb.MapServiceSetRequest: stub.Set,
        pb.MapServiceGetRequest: stub.Get,
        pb.MapServiceGetAllRequest: stub.GetAll,
        pb.MapServiceIncrementRequest: stub.Increment,
    }[type(request_)]
    said = refused(lambda: method(request_))
    assert said.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (said.reason, said.metadata["field"]) == (reason, field)
    assert assert_every_key_expires(coord) == {}


def test_a_value_over_the_limit_is_refused(stub: Stub) -> None:
    said = refused(lambda: put(stub, "m", a=b"x" * ((1 << 20) + 1)))
    assert (said.code, said.reason, said.metadata["field"]) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "VALUE_TOO_LARGE",
        "fields[0].value",
    )


@pytest.fixture
def small(coord: CoordUnderTest, start_coord: Callable[..., CoordThread]) -> Iterator[Stub]:
    server = start_coord(coord.backing.url, cluster=coord.kind == "cluster", collection_max_elements=3)
    with grpc.insecure_channel(server.target) as channel:
        yield map_pb2_grpc.MapServiceStub(channel)


def test_a_write_past_the_max_elements_is_refused_whole(small: Stub) -> None:
    first = put(small, "cap", a=b"1", b=b"2")
    said = refused(lambda: put(small, "cap", a=b"9", c=b"3", d=b"4"))
    assert (said.code, said.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "COLLECTION_TOO_LARGE")
    assert said.metadata == {"name": "cap", "limit": "3", "actual": "4"}
    assert get(small, "cap", "a", "c") == {"a": b"1", "c": None}  # nothing applied, not even a
    assert small.Length(pb.MapServiceLengthRequest(name="cap")).collection.version == first.collection.version
    assert put(small, "cap", a=b"9", c=b"3").collection.length == 3  # replacing counts nothing new
    over = refused(lambda: small.Increment(pb.MapServiceIncrementRequest(name="cap", field="d", delta=1)))
    assert over.reason == "COLLECTION_TOO_LARGE"
    assert small.Increment(pb.MapServiceIncrementRequest(name="cap", field="a", delta=1)).int_value == 10


def test_reads_that_would_not_fit_one_reply_are_refused_before_reading(stub: Stub) -> None:
    big = b"v" * (1 << 20)
    for i in range(5):  # 5 MiB of values; a reply holds at most 4 MiB
        put(stub, "big", **{f"f{i}": big})
    said = refused(lambda: stub.Get(pb.MapServiceGetRequest(name="big", fields=[f"f{i}" for i in range(5)])))
    assert (said.code, said.reason, said.metadata["field"]) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "VALUE_TOO_LARGE",
        "fields",
    )
    assert int(said.metadata["actual"]) > int(said.metadata["limit"])
    assert len(get(stub, "big", "f0", "f1", "f2")) == 3
    whole = refused(lambda: stub.GetAll(pb.MapServiceGetAllRequest(name="big", page_size=100)))
    assert (whole.reason, whole.metadata["field"]) == ("VALUE_TOO_LARGE", "page_size")
    seen: set[str] = set()
    cursor = ""
    while True:  # page by page, each within the limit
        page = stub.GetAll(pb.MapServiceGetAllRequest(name="big", cursor=cursor, page_size=1))
        seen.update(f.field for f in page.fields)
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == {f"f{i}" for i in range(5)}
