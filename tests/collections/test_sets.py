"""SetService over the wire: every RPC and option, against single-node Redis and Redis Cluster."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.collections.v1 import collection_pb2 as cpb
from coord.collections.v1 import map_pb2, map_pb2_grpc, set_pb2_grpc
from coord.collections.v1 import set_pb2 as pb

from ..conftest import CoordThread, CoordUnderTest, RedisClusterProcess

Stub = set_pb2_grpc.SetServiceStub
KEEP = cpb.TTL_POLICY_KEEP


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield Stub(channel)


@pytest.fixture
def maps(coord: CoordUnderTest) -> Iterator[map_pb2_grpc.MapServiceStub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield map_pb2_grpc.MapServiceStub(channel)


@pytest.fixture
def small(coord: CoordUnderTest, start_coord: Callable[..., CoordThread]) -> Iterator[Stub]:
    """A second Coord on the same Redis whose collections hold at most 3 elements."""
    server = start_coord(coord.backing.url, cluster=coord.kind == "cluster", collection_max_elements=3)
    with grpc.insecure_channel(server.target) as channel:
        yield Stub(channel)


def ms(millis: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(millis)
    return d


def options(ttl_ms: int = 0, *, keep: bool = False, if_version: int = 0) -> cpb.WriteOptions:
    return cpb.WriteOptions(
        ttl=ms(ttl_ms), ttl_policy=KEEP if keep else cpb.TTL_POLICY_REFRESH, if_version=if_version
    )


def add(stub: Stub, name: str, *members: str, **kw: Any) -> pb.SetServiceAddResponse:
    return stub.Add(pb.SetServiceAddRequest(name=name, members=members, options=options(**kw)))


def remove(stub: Stub, name: str, *members: str, **kw: Any) -> pb.SetServiceRemoveResponse:
    return stub.Remove(pb.SetServiceRemoveRequest(name=name, members=members, options=options(**kw)))


def members_of(stub: Stub, name: str, page_size: int = 0) -> list[str]:
    found: list[str] = []
    cursor = ""
    while True:
        page = stub.Members(pb.SetServiceMembersRequest(name=name, cursor=cursor, page_size=page_size))
        found += page.members
        cursor = page.next_cursor
        if not cursor:
            return found


def expire_ms(state: cpb.CollectionState) -> int:
    return state.expire_time.ToMilliseconds()


def error(fn: Callable[[], Any]) -> tuple[grpc.StatusCode, error_details_pb2.ErrorInfo, list[str]]:
    """The status code, ErrorInfo and violated fields of a call that must fail."""
    with pytest.raises(grpc.RpcError) as excinfo:
        fn()
    err: Any = excinfo.value
    status = rpc_status.from_call(err)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return err.code(), info, fields


def all_keys(coord: CoordUnderTest) -> dict[bytes, int]:
    """Every key in Redis (every node of a cluster) with its PTTL."""
    backing = coord.backing
    nodes = backing.nodes if isinstance(backing, RedisClusterProcess) else [backing]
    found: dict[bytes, int] = {}
    for node in nodes:
        with node.client() as r:
            for key in r.keys("*"):
                found[key] = int(r.pttl(key))
    return found


def assert_every_key_expires(coord: CoordUnderTest) -> None:
    keys = all_keys(coord)
    assert keys
    assert all(pttl > 0 for pttl in keys.values()), keys


# -- Add, Remove, Contains, Length -----------------------------------------------------------------


def test_add_counts_new_members_and_bumps_the_version_only_on_change(
    stub: Stub, coord: CoordUnderTest
) -> None:
    first = add(stub, "s", "a", "b")
    assert first.applied and first.added == 2
    assert first.collection.exists and first.collection.length == 2 and first.collection.version > 0
    again = add(stub, "s", "a", "b", "a")
    assert again.applied and again.added == 0
    assert again.collection.version == first.collection.version and again.collection.length == 2
    more = add(stub, "s", "b", "c", "c", "d")
    assert more.added == 2 and more.collection.length == 4
    assert more.collection.version > first.collection.version
    assert sorted(members_of(stub, "s")) == ["a", "b", "c", "d"]
    assert_every_key_expires(coord)


def test_unicode_members_round_trip(stub: Stub) -> None:
    names = ["ünï", "日本", "a b", "🙂"]
    add(stub, "u", *names)
    assert sorted(members_of(stub, "u")) == sorted(names)
    assert list(stub.Contains(pb.SetServiceContainsRequest(name="u", members=names)).contains) == [True] * 4


def test_remove_counts_and_the_last_member_takes_the_set(stub: Stub, coord: CoordUnderTest) -> None:
    v = add(stub, "s", "a", "b", "c").collection.version
    none = remove(stub, "s", "x")
    assert none.applied and none.removed == 0 and none.collection.version == v
    some = remove(stub, "s", "a", "x", "a")
    assert some.removed == 1 and some.collection.length == 2 and some.collection.version > v
    assert_every_key_expires(coord)
    last = remove(stub, "s", "b", "c")
    assert last.removed == 2 and not last.collection.exists
    assert last.collection.version == 0 and last.collection.length == 0
    assert all_keys(coord) == {}
    missing = remove(stub, "nothing", "a")
    assert missing.applied and missing.removed == 0 and not missing.collection.exists


def test_contains_answers_in_request_order(stub: Stub) -> None:
    absent = stub.Contains(pb.SetServiceContainsRequest(name="s", members=["a", "b"]))
    assert list(absent.contains) == [False, False] and not absent.collection.exists
    added = add(stub, "s", "a", "c")
    found = stub.Contains(pb.SetServiceContainsRequest(name="s", members=["c", "b", "a", "c"]))
    assert list(found.contains) == [True, False, True, True]
    assert found.collection == added.collection


def test_length(stub: Stub) -> None:
    empty = stub.Length(pb.SetServiceLengthRequest(name="s")).collection
    assert not empty.exists and empty.length == 0 and empty.version == 0
    assert not empty.HasField("expire_time")
    added = add(stub, "s", *(f"m{i}" for i in range(7)))
    assert stub.Length(pb.SetServiceLengthRequest(name="s")).collection == added.collection


# -- Members -----------------------------------------------------------------------------------


def test_members_of_a_small_set_come_in_one_page(stub: Stub) -> None:
    add(stub, "s", "a", "b", "c")
    page = stub.Members(pb.SetServiceMembersRequest(name="s"))
    assert sorted(page.members) == ["a", "b", "c"] and page.next_cursor == ""
    assert page.collection.length == 3
    missing = stub.Members(pb.SetServiceMembersRequest(name="none"))
    assert list(missing.members) == [] and missing.next_cursor == "" and not missing.collection.exists


def test_members_pages_through_a_large_set(stub: Stub) -> None:
    wanted = {f"member-{i}" for i in range(700)}
    for chunk in range(0, 700, 250):
        add(stub, "big", *sorted(wanted)[chunk : chunk + 250])
    pages = 0
    seen: list[str] = []
    cursor = ""
    while True:
        page = stub.Members(pb.SetServiceMembersRequest(name="big", cursor=cursor, page_size=50))
        pages += 1
        seen += page.members
        assert page.collection.length == 700
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages > 1
    assert set(seen) == wanted  # SSCAN may repeat a member, never miss one


# -- Pop -----------------------------------------------------------------------------------------


def test_pop_takes_random_members_and_the_last_takes_the_set(stub: Stub, coord: CoordUnderTest) -> None:
    v = add(stub, "s", "a", "b", "c", "d", "e").collection.version
    one = stub.Pop(pb.SetServicePopRequest(name="s"))
    assert one.applied and len(one.members) == 1 and one.collection.length == 4
    assert one.collection.version > v
    three = stub.Pop(pb.SetServicePopRequest(name="s", count=3))
    assert len(three.members) == 3 and three.collection.length == 1
    taken = set(one.members) | set(three.members)
    assert len(taken) == 4 and taken < {"a", "b", "c", "d", "e"}
    left = members_of(stub, "s")
    assert taken | set(left) == {"a", "b", "c", "d", "e"}
    assert_every_key_expires(coord)
    rest = stub.Pop(pb.SetServicePopRequest(name="s", count=10))
    assert list(rest.members) == left and not rest.collection.exists
    assert all_keys(coord) == {}
    nothing = stub.Pop(pb.SetServicePopRequest(name="s", count=2))
    assert nothing.applied and list(nothing.members) == [] and not nothing.collection.exists


# -- Options: if_version, TTL ----------------------------------------------------------------------


def test_if_version_applies_only_at_that_version(stub: Stub) -> None:
    v = add(stub, "s", "a").collection.version
    stale = add(stub, "s", "b", if_version=v + 1)
    assert not stale.applied and stale.added == 0 and stale.collection.version == v
    assert stale.collection.length == 1
    fresh = add(stub, "s", "b", if_version=v)
    assert fresh.applied and fresh.added == 1 and fresh.collection.version > v
    v2 = fresh.collection.version
    assert not remove(stub, "s", "a", if_version=v).applied
    popped = stub.Pop(pb.SetServicePopRequest(name="s", options=options(if_version=v)))
    assert not popped.applied and list(popped.members) == []
    assert sorted(members_of(stub, "s")) == ["a", "b"]
    assert remove(stub, "s", "a", if_version=v2).removed == 1
    # A missing set has version 0: no if_version matches it.
    assert not add(stub, "new", "a", if_version=v).applied
    assert not stub.Length(pb.SetServiceLengthRequest(name="new")).collection.exists


def test_ttl_refresh_and_keep(stub: Stub, coord: CoordUnderTest) -> None:
    created = add(stub, "s", "a", ttl_ms=60_000).collection
    with coord.redis() as r:
        pttls = [r.pttl(k) for k in (b"coord:default:coll:{s}", b"coord:default:coll:{s}:m")]
    assert all(0 < p <= 60_000 for p in pttls)
    refreshed = add(stub, "s", "a", ttl_ms=600_000).collection  # no new member: the TTL still refreshes
    assert expire_ms(refreshed) > expire_ms(created) and refreshed.version == created.version
    kept = add(stub, "s", "b", ttl_ms=1_000, keep=True).collection
    assert expire_ms(kept) == expire_ms(refreshed) and kept.version > refreshed.version
    kept = remove(stub, "s", "b", ttl_ms=1_000, keep=True).collection
    assert expire_ms(kept) == expire_ms(refreshed)
    # KEEP on a new set gives it the request's TTL.
    new = add(stub, "t", "a", ttl_ms=90_000, keep=True).collection
    with coord.redis() as r:
        assert 0 < r.pttl(b"coord:default:coll:{t}") <= 90_000
    assert new.exists
    # No TTL given: the server's default.
    add(stub, "d", "a")
    with coord.redis() as r:
        assert coord.settings.default_ttl * 1000 - 60_000 < r.pttl(b"coord:default:coll:{d}:m")
    assert_every_key_expires(coord)


def test_delete_and_touch(stub: Stub, coord: CoordUnderTest) -> None:
    v = add(stub, "s", "a", "b", ttl_ms=60_000).collection.version
    touched = stub.Touch(pb.SetServiceTouchRequest(name="s", ttl=ms(600_000))).collection
    assert touched.version == v and touched.length == 2
    with coord.redis() as r:
        assert r.pttl(b"coord:default:coll:{s}") > 60_000
    assert not stub.Touch(pb.SetServiceTouchRequest(name="none")).collection.exists
    stale = stub.Delete(pb.SetServiceDeleteRequest(name="s", if_version=v + 1))
    assert not stale.deleted and stale.collection.version == v and stale.collection.length == 2
    deleted = stub.Delete(pb.SetServiceDeleteRequest(name="s", if_version=v))
    assert deleted.deleted and not deleted.collection.exists
    assert all_keys(coord) == {}
    assert not stub.Delete(pb.SetServiceDeleteRequest(name="s")).deleted
    again = add(stub, "s", "a").collection.version
    assert again > v  # versions keep increasing across a delete and re-create


# -- Refusals ------------------------------------------------------------------------------------


def test_too_large_is_refused_whole(small: Stub, coord: CoordUnderTest) -> None:
    first = add(small, "s", "a", "b", "c")
    assert first.added == 3
    for extra in (("d",), ("a", "d"), ("d", "e")):
        code, info, _ = error(functools.partial(add, small, "s", *extra))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and info.reason == "COLLECTION_TOO_LARGE"
        assert info.metadata["name"] == "s" and info.metadata["limit"] == "3"
        assert int(info.metadata["actual"]) == 3 + len(set(extra) - {"a"})
    again = add(small, "s", "a", "b", "c", "a")  # nothing new: within the limit
    assert again.added == 0 and again.collection.version == first.collection.version
    assert sorted(members_of(small, "s")) == ["a", "b", "c"]
    code, info, _ = error(lambda: add(small, "new", "1", "2", "3", "4"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and info.metadata["actual"] == "4"
    assert set(all_keys(coord)) == {b"coord:default:coll:{s}", b"coord:default:coll:{s}:m"}


def test_wrong_kind(stub: Stub, maps: map_pb2_grpc.MapServiceStub, coord: CoordUnderTest) -> None:
    maps.Set(map_pb2.MapServiceSetRequest(name="m", fields=[map_pb2.MapField(field="f", value=b"v")]))
    calls: list[Callable[[], Any]] = [
        lambda: add(stub, "m", "a"),
        lambda: remove(stub, "m", "a"),
        lambda: stub.Contains(pb.SetServiceContainsRequest(name="m", members=["a"])),
        lambda: stub.Members(pb.SetServiceMembersRequest(name="m")),
        lambda: stub.Length(pb.SetServiceLengthRequest(name="m")),
        lambda: stub.Pop(pb.SetServicePopRequest(name="m")),
        lambda: stub.Delete(pb.SetServiceDeleteRequest(name="m")),
        lambda: stub.Touch(pb.SetServiceTouchRequest(name="m")),
    ]
    for call in calls:
        code, info, _ = error(call)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and info.reason == "COLLECTION_WRONG_TYPE"
        assert dict(info.metadata) == {"name": "m", "expected": "set", "actual": "map"}
    got = maps.Get(map_pb2.MapServiceGetRequest(name="m", fields=["f"]))
    assert got.values[0].value == b"v" and got.collection.length == 1
    # And the other way round: a map call on a set's name.
    add(stub, "s", "a")
    code, info, _ = error(lambda: maps.Length(map_pb2.MapServiceLengthRequest(name="s")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert dict(info.metadata) == {"name": "s", "expected": "map", "actual": "set"}


INVALID: list[tuple[str, Callable[[Stub], Any], str, str]] = [
    ("empty name", lambda s: add(s, "", "a"), "name", "INVALID_FIELD"),
    ("long name", lambda s: add(s, "n" * 1025, "a"), "name", "KEY_TOO_LONG"),
    ("no members", lambda s: add(s, "s"), "members", "INVALID_FIELD"),
    ("too many members", lambda s: add(s, "s", *map(str, range(1001))), "members", "BATCH_TOO_LARGE"),
    ("empty member", lambda s: add(s, "s", "a", ""), "members[1]", "INVALID_FIELD"),
    ("member with LF", lambda s: remove(s, "s", "a\nb"), "members[0]", "INVALID_FIELD"),
    ("long member", lambda s: s.Contains(pb.SetServiceContainsRequest(name="s", members=["m" * 1025])),
     "members[0]", "KEY_TOO_LONG"),
    ("contains none", lambda s: s.Contains(pb.SetServiceContainsRequest(name="s")), "members",
     "INVALID_FIELD"),
    ("page too large", lambda s: s.Members(pb.SetServiceMembersRequest(name="s", page_size=1001)),
     "page_size", "BATCH_TOO_LARGE"),
    ("negative page", lambda s: s.Members(pb.SetServiceMembersRequest(name="s", page_size=-1)),
     "page_size", "INVALID_FIELD"),
    ("bad cursor", lambda s: s.Members(pb.SetServiceMembersRequest(name="s", cursor="x1")), "cursor",
     "INVALID_FIELD"),
    ("negative count", lambda s: s.Pop(pb.SetServicePopRequest(name="s", count=-1)), "count",
     "INVALID_FIELD"),
    ("count too large", lambda s: s.Pop(pb.SetServicePopRequest(name="s", count=1001)), "count",
     "BATCH_TOO_LARGE"),
    ("ttl too long", lambda s: add(s, "s", "a", ttl_ms=10**12), "options.ttl", "TTL_OUT_OF_RANGE"),
    ("bad policy", lambda s: s.Add(pb.SetServiceAddRequest(name="s", members=["a"],
                                                           options=cpb.WriteOptions(ttl_policy=7))),  # type: ignore[arg-type]
     "options.ttl_policy", "INVALID_FIELD"),
    ("touch ttl", lambda s: s.Touch(pb.SetServiceTouchRequest(name="s", ttl=ms(-5))), "ttl",
     "TTL_OUT_OF_RANGE"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "field", "reason"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_validation_names_the_field(
    stub: Stub, coord: CoordUnderTest, call: Callable[[Stub], Any], field: str, reason: str
) -> None:
    code, info, fields = error(lambda: call(stub))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == reason and fields == [field]
    assert all_keys(coord) == {}
