"""SortedSetService over the wire: every RPC and option, a leaderboard, against single-node Redis and
Redis Cluster."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grpc
import pytest

from coord.collections.v1 import map_pb2, map_pb2_grpc, sorted_set_pb2_grpc
from coord.collections.v1 import sorted_set_pb2 as pb

from ..conftest import CoordThread, CoordUnderTest
from .test_sets import all_keys, assert_every_key_expires, error, expire_ms, ms, options

Stub = sorted_set_pb2_grpc.SortedSetServiceStub
INF = math.inf
DESC = pb.ORDER_DESCENDING
ASC = pb.ORDER_ASCENDING
NEW, EXISTS = pb.PUT_CONDITION_IF_NEW, pb.PUT_CONDITION_IF_EXISTS
HIGHER, LOWER = pb.PUT_CONDITION_IF_HIGHER, pb.PUT_CONDITION_IF_LOWER


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


def put(stub: Stub, name: str, scores: Mapping[str, float] | Sequence[tuple[str, float]], condition: int = 0,
        **kw: Any) -> pb.SortedSetServicePutResponse:  # fmt: skip
    pairs = scores.items() if isinstance(scores, Mapping) else scores
    return stub.Put(
        pb.SortedSetServicePutRequest(
            name=name,
            members=[pb.ScoredMember(member=m, score=s) for m, s in pairs],
            condition=condition,  # type: ignore[arg-type]
            options=options(**kw),
        )
    )


def incr(stub: Stub, name: str, member: str, delta: float, **kw: Any) -> pb.SortedSetServiceIncrementResponse:
    return stub.Increment(
        pb.SortedSetServiceIncrementRequest(name=name, member=member, delta=delta, options=options(**kw))
    )


def scores_of(stub: Stub, name: str, *members: str) -> dict[str, float | None]:
    reply = stub.GetScore(pb.SortedSetServiceGetScoreRequest(name=name, members=members))
    return {s.member: (s.score if s.found else None) for s in reply.scores}


def window(stub: Stub, name: str, start: int, stop: int, order: int = ASC) -> list[tuple[str, int, float]]:
    reply = stub.RangeByRank(
        pb.SortedSetServiceRangeByRankRequest(
            name=name,
            ranks=pb.RankWindow(start=start, stop=stop),
            order=order,  # type: ignore[arg-type]
        )
    )
    assert reply.found
    return [(m.member, m.rank, m.score) for m in reply.members]


def around(stub: Stub, name: str, member: str, before: int, after: int,
           order: int = DESC) -> pb.SortedSetServiceRangeByRankResponse:  # fmt: skip
    return stub.RangeByRank(
        pb.SortedSetServiceRangeByRankRequest(
            name=name,
            around=pb.Around(member=member, before=before, after=after),
            order=order,  # type: ignore[arg-type]
        )
    )


def by_score(
    stub: Stub,
    name: str,
    low: tuple[float, bool] | None = None,
    high: tuple[float, bool] | None = None,
    **kw: Any,
) -> tuple[list[tuple[str, float]], bool]:
    request = pb.SortedSetServiceRangeByScoreRequest(name=name, **kw)
    if low is not None:
        request.min.CopyFrom(pb.ScoreBound(score=low[0], exclusive=low[1]))
    if high is not None:
        request.max.CopyFrom(pb.ScoreBound(score=high[0], exclusive=high[1]))
    reply = stub.RangeByScore(request)
    return [(m.member, m.score) for m in reply.members], reply.has_more


# -- Put -------------------------------------------------------------------------------------------


def test_put_adds_and_updates(stub: Stub, coord: CoordUnderTest) -> None:
    first = put(stub, "z", {"a": 1, "b": 2.5, "c": -INF})
    assert first.applied and first.added == 3 and first.updated == 0
    assert first.collection.exists and first.collection.length == 3
    same = put(stub, "z", {"a": 1, "b": 2.5})
    assert same.added == 0 and same.updated == 0 and same.collection.version == first.collection.version
    changed = put(stub, "z", {"a": 5, "d": INF, "b": 2.5})
    assert changed.added == 1 and changed.updated == 1 and changed.collection.length == 4
    assert changed.collection.version > first.collection.version
    assert scores_of(stub, "z", "a", "b", "c", "d", "x") == {"a": 5, "b": 2.5, "c": -INF, "d": INF, "x": None}
    assert_every_key_expires(coord)


def test_a_member_given_twice_takes_its_last_score(stub: Stub) -> None:
    reply = put(stub, "z", [("a", 1), ("b", 2), ("a", 3)])
    assert reply.added == 2 and reply.updated == 0 and reply.collection.length == 2
    assert scores_of(stub, "z", "a") == {"a": 3}
    again = put(stub, "z", [("a", 7), ("a", 3)])  # the last score is the one held: no change
    assert again.updated == 0 and again.collection.version == reply.collection.version
    lower = put(stub, "z", [("a", 1), ("a", 5)], HIGHER)  # only 5 counts, and it is higher
    assert lower.updated == 1 and scores_of(stub, "z", "a") == {"a": 5}


def test_put_conditions(stub: Stub) -> None:
    put(stub, "z", {"a": 10, "b": 20})
    nx = put(stub, "z", {"a": 99, "c": 30}, NEW)
    assert (nx.added, nx.updated) == (1, 0)
    assert scores_of(stub, "z", "a", "c") == {"a": 10, "c": 30}
    xx = put(stub, "z", {"a": 11, "d": 40, "b": 20}, EXISTS)
    assert (xx.added, xx.updated) == (0, 1) and xx.collection.length == 3
    assert scores_of(stub, "z", "a", "d") == {"a": 11, "d": None}
    gt = put(stub, "z", {"a": 5, "b": 25, "e": 1}, HIGHER)
    assert (gt.added, gt.updated) == (1, 1)
    assert scores_of(stub, "z", "a", "b", "e") == {"a": 11, "b": 25, "e": 1}
    lt = put(stub, "z", {"a": 5, "b": 99, "f": 2}, LOWER)
    assert (lt.added, lt.updated) == (1, 1)
    assert scores_of(stub, "z", "a", "b", "f") == {"a": 5, "b": 25, "f": 2}
    v = lt.collection.version
    unchanged = put(stub, "z", {"a": 6}, LOWER)
    assert (unchanged.added, unchanged.updated) == (0, 0) and unchanged.collection.version == v
    # IF_EXISTS never adds, so never creates.
    none = put(stub, "missing", {"a": 1}, EXISTS)
    assert none.applied and none.added == 0 and not none.collection.exists


# -- Increment -------------------------------------------------------------------------------------


def test_increment(stub: Stub, coord: CoordUnderTest) -> None:
    first = incr(stub, "z", "a", 2.5)
    assert first.applied and first.score == 2.5 and first.collection.length == 1
    second = incr(stub, "z", "a", -1)
    assert second.score == 1.5 and second.collection.version > first.collection.version
    zero = incr(stub, "z", "a", 0)
    assert zero.score == 1.5 and zero.collection.version == second.collection.version
    big = incr(stub, "z", "b", 1e300)
    assert big.score == 1e300 and big.collection.length == 2
    assert incr(stub, "z", "b", 1.7e308).score == 1.7e308 + 1e300
    put(stub, "z", {"c": INF})
    assert incr(stub, "z", "c", -5).score == INF
    assert_every_key_expires(coord)
    stale = incr(stub, "z", "a", 1, if_version=1)
    assert not stale.applied and scores_of(stub, "z", "a") == {"a": 1.5}


def test_increment_of_a_full_sorted_set(small: Stub) -> None:
    put(small, "z", {"a": 1, "b": 2, "c": 3})
    assert incr(small, "z", "a", 1).score == 2
    code, info, _ = error(lambda: incr(small, "z", "d", 1))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and info.reason == "COLLECTION_TOO_LARGE"
    assert info.metadata["actual"] == "4"
    assert scores_of(small, "z", "d") == {"d": None}


# -- Remove, GetScore, Length ----------------------------------------------------------------------


def test_remove_and_the_last_member_takes_the_sorted_set(stub: Stub, coord: CoordUnderTest) -> None:
    v = put(stub, "z", {"a": 1, "b": 2, "c": 3}).collection.version
    none = stub.Remove(pb.SortedSetServiceRemoveRequest(name="z", members=["x"]))
    assert none.applied and none.removed == 0 and none.collection.version == v
    some = stub.Remove(pb.SortedSetServiceRemoveRequest(name="z", members=["a", "x", "a"]))
    assert some.removed == 1 and some.collection.length == 2 and some.collection.version > v
    stale = stub.Remove(
        pb.SortedSetServiceRemoveRequest(name="z", members=["b"], options=options(if_version=v))
    )
    assert not stale.applied and stale.removed == 0 and stale.collection.length == 2
    last = stub.Remove(pb.SortedSetServiceRemoveRequest(name="z", members=["b", "c"]))
    assert last.removed == 2 and not last.collection.exists
    assert all_keys(coord) == {}
    length = stub.Length(pb.SortedSetServiceLengthRequest(name="z")).collection
    assert not length.exists and length.length == 0


def test_length_and_get_score_state(stub: Stub) -> None:
    added = put(stub, "z", {"a": 1, "b": 2})
    assert stub.Length(pb.SortedSetServiceLengthRequest(name="z")).collection == added.collection
    reply = stub.GetScore(pb.SortedSetServiceGetScoreRequest(name="z", members=["b", "x", "a"]))
    assert reply.collection == added.collection
    assert [(s.member, s.found, s.score) for s in reply.scores] == [
        ("b", True, 2),
        ("x", False, 0),
        ("a", True, 1),
    ]
    missing = stub.GetScore(pb.SortedSetServiceGetScoreRequest(name="none", members=["a"]))
    assert not missing.collection.exists and not missing.scores[0].found


# -- A leaderboard ---------------------------------------------------------------------------------

PLAYERS = {f"p{i:02}": float((i * 37) % 7) for i in range(20)}  # many ties


def expected_board() -> list[tuple[str, float]]:
    """Highest score first; equal scores in reverse member order (the exact reverse of ascending)."""
    return sorted(PLAYERS.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


@pytest.fixture
def board(stub: Stub) -> list[tuple[str, float]]:
    for player, score in PLAYERS.items():  # several increments per player
        incr(stub, "board", player, score / 2)
        incr(stub, "board", player, score - score / 2)
    return expected_board()


def test_leaderboard_top_and_get_rank(stub: Stub, board: list[tuple[str, float]]) -> None:
    top = window(stub, "board", 0, 9, DESC)
    assert top == [(m, rank, s) for rank, (m, s) in enumerate(board[:10])]
    bottom = window(stub, "board", -3, -1, DESC)
    assert bottom == [(m, 17 + i, s) for i, (m, s) in enumerate(board[-3:])]
    everything = window(stub, "board", 0, -1, ASC)
    assert everything == [(m, rank, s) for rank, (m, s) in enumerate(reversed(board))]
    asked = [board[0][0], board[7][0], "nobody", board[19][0]]
    for order, ranks in ((DESC, (0, 7, 19)), (ASC, (19, 12, 0))):
        reply = stub.GetRank(pb.SortedSetServiceGetRankRequest(name="board", members=asked, order=order))
        got = [(r.member, r.found, r.rank, r.score) for r in reply.ranks]
        assert got == [
            (board[0][0], True, ranks[0], board[0][1]),
            (board[7][0], True, ranks[1], board[7][1]),
            ("nobody", False, 0, 0.0),
            (board[19][0], True, ranks[2], board[19][1]),
        ]
        assert reply.collection.length == 20
    assert window(stub, "board", 25, 30) == [] and window(stub, "board", 5, 2) == []
    assert window(stub, "board", -100, 1, DESC) == window(stub, "board", 0, 1, DESC)


def test_leaderboard_around(stub: Stub, board: list[tuple[str, float]]) -> None:
    def expect(first: int, last: int) -> list[tuple[str, int, float]]:
        return [(m, rank, s) for rank, (m, s) in enumerate(board) if first <= rank <= last]

    def got(reply: pb.SortedSetServiceRangeByRankResponse) -> list[tuple[str, int, float]]:
        assert reply.found and reply.collection.length == 20
        return [(m.member, m.rank, m.score) for m in reply.members]

    assert got(around(stub, "board", board[0][0], 2, 2)) == expect(0, 2)  # the top: clipped above
    assert got(around(stub, "board", board[10][0], 2, 3)) == expect(8, 13)
    assert got(around(stub, "board", board[19][0], 2, 2)) == expect(17, 19)  # the bottom
    assert got(around(stub, "board", board[1][0], 5, 0)) == expect(0, 1)
    assert got(around(stub, "board", board[5][0], 0, 0)) == expect(5, 5)
    ascending = around(stub, "board", board[0][0], 1, 1, ASC)  # last in ascending order
    assert [(m.member, m.rank) for m in ascending.members] == [(board[1][0], 18), (board[0][0], 19)]
    absent = around(stub, "board", "nobody", 2, 2)
    assert not absent.found and list(absent.members) == [] and absent.collection.length == 20
    nothing = around(stub, "empty", "nobody", 2, 2)
    assert not nothing.found and not nothing.collection.exists


# -- RangeByScore ----------------------------------------------------------------------------------


def test_range_by_score(stub: Stub) -> None:
    put(stub, "z", {"a": 1, "b": 2, "c": 2, "d": 3, "e": INF, "m": -INF})
    assert by_score(stub, "z") == ([("m", -INF), ("a", 1), ("b", 2), ("c", 2), ("d", 3), ("e", INF)], False)
    assert by_score(stub, "z", (2, False), (3, False)) == ([("b", 2), ("c", 2), ("d", 3)], False)
    assert by_score(stub, "z", (2, True), (3, False)) == ([("d", 3)], False)
    assert by_score(stub, "z", (1, False), (3, True)) == ([("a", 1), ("b", 2), ("c", 2)], False)
    assert by_score(stub, "z", (1, True), (2, True)) == ([], False)
    assert by_score(stub, "z", high=(1, False)) == ([("m", -INF), ("a", 1)], False)
    assert by_score(stub, "z", low=(3, False)) == ([("d", 3), ("e", INF)], False)
    assert by_score(stub, "z", (INF, False), (INF, False)) == ([("e", INF)], False)
    assert by_score(stub, "z", (-INF, True), (INF, True)) == ([("a", 1), ("b", 2), ("c", 2), ("d", 3)], False)
    assert by_score(stub, "z", (3, False), (1, False)) == ([], False)
    desc = by_score(stub, "z", (1, False), (3, False), order=DESC)
    assert desc == ([("d", 3), ("c", 2), ("b", 2), ("a", 1)], False)
    assert by_score(stub, "z", (1, False), (3, True), order=DESC) == ([("c", 2), ("b", 2), ("a", 1)], False)
    assert by_score(stub, "none") == ([], False)


def test_range_by_score_pages_with_offset_and_limit(stub: Stub) -> None:
    put(stub, "z", {f"m{i:03}": i for i in range(250)})
    first, more = by_score(stub, "z")
    assert [m for m, _ in first] == [f"m{i:03}" for i in range(100)] and more  # the default limit: 100
    page, more = by_score(stub, "z", (10, False), (20, True), offset=3, limit=4)
    assert [s for _, s in page] == [13, 14, 15, 16] and more
    page, more = by_score(stub, "z", (10, False), (20, True), offset=6, limit=4)
    assert [s for _, s in page] == [16, 17, 18, 19] and not more
    page, more = by_score(stub, "z", (10, False), (20, True), offset=10, limit=4)
    assert page == [] and not more
    read: list[float] = []
    offset = 0
    while True:
        page, more = by_score(stub, "z", low=(200, True), order=DESC, offset=offset, limit=7)
        read += [s for _, s in page]
        offset += len(page)
        if not more:
            break
    assert read == [float(i) for i in range(249, 200, -1)]
    page, more = by_score(stub, "z", offset=10**15, limit=3)
    assert page == [] and not more


# -- Options, Delete, Touch ------------------------------------------------------------------------


def test_if_version(stub: Stub) -> None:
    v = put(stub, "z", {"a": 1}).collection.version
    stale = put(stub, "z", {"b": 2}, if_version=v + 1)
    assert not stale.applied and (stale.added, stale.updated) == (0, 0) and stale.collection.version == v
    fresh = put(stub, "z", {"b": 2}, if_version=v)
    assert fresh.applied and fresh.added == 1 and fresh.collection.version > v
    assert not incr(stub, "z", "a", 1, if_version=v).applied
    assert incr(stub, "z", "a", 1, if_version=fresh.collection.version).score == 2
    assert not put(stub, "new", {"a": 1}, if_version=v).applied
    assert scores_of(stub, "z", "a", "b") == {"a": 2, "b": 2}


def test_ttl_refresh_and_keep(stub: Stub, coord: CoordUnderTest) -> None:
    created = put(stub, "z", {"a": 1}, ttl_ms=60_000).collection
    with coord.redis() as r:
        assert 0 < r.pttl(b"coord:default:coll:{z}") <= 60_000
    refreshed = put(stub, "z", {"a": 1}, ttl_ms=600_000).collection  # no change: the TTL still refreshes
    assert expire_ms(refreshed) > expire_ms(created) and refreshed.version == created.version
    kept = put(stub, "z", {"b": 1}, ttl_ms=1_000, keep=True).collection
    assert expire_ms(kept) == expire_ms(refreshed) and kept.version > refreshed.version
    kept = incr(stub, "z", "b", 1, ttl_ms=1_000, keep=True).collection
    assert expire_ms(kept) == expire_ms(refreshed)
    kept = stub.Remove(
        pb.SortedSetServiceRemoveRequest(name="z", members=["b"], options=options(1_000, keep=True))
    ).collection
    assert expire_ms(kept) == expire_ms(refreshed)
    assert_every_key_expires(coord)


def test_delete_and_touch(stub: Stub, coord: CoordUnderTest) -> None:
    v = put(stub, "z", {"a": 1}, ttl_ms=60_000).collection.version
    touched = stub.Touch(pb.SortedSetServiceTouchRequest(name="z", ttl=ms(600_000))).collection
    assert touched.version == v and touched.length == 1
    with coord.redis() as r:
        assert r.pttl(b"coord:default:coll:{z}:m") > 60_000
    assert not stub.Touch(pb.SortedSetServiceTouchRequest(name="none")).collection.exists
    assert not stub.Delete(pb.SortedSetServiceDeleteRequest(name="z", if_version=v + 1)).deleted
    deleted = stub.Delete(pb.SortedSetServiceDeleteRequest(name="z", if_version=v))
    assert deleted.deleted and not deleted.collection.exists
    assert all_keys(coord) == {}
    assert put(stub, "z", {"a": 1}).collection.version > v


# -- Refusals --------------------------------------------------------------------------------------


def test_too_large_is_refused_whole(small: Stub, coord: CoordUnderTest) -> None:
    first = put(small, "z", {"a": 1, "b": 2, "c": 3})
    for extra in ({"d": 4}, {"a": 9, "d": 4}, {"d": 4, "e": 5}):
        for condition in (0, NEW, HIGHER, LOWER):
            code, info, _ = error(functools.partial(put, small, "z", extra, condition))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and info.reason == "COLLECTION_TOO_LARGE"
            assert info.metadata["limit"] == "3" and int(info.metadata["actual"]) == 3 + len(
                set(extra) - {"a"}
            )
    assert scores_of(small, "z", "a", "d") == {"a": 1, "d": None}
    xx = put(small, "z", {"a": 9, "d": 4}, EXISTS)  # IF_EXISTS never adds: within the limit
    assert (xx.added, xx.updated) == (0, 1) and xx.collection.length == 3
    assert xx.collection.version > first.collection.version
    code, _, _ = error(lambda: put(small, "new", {"1": 1, "2": 2, "3": 3, "4": 4}))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert set(all_keys(coord)) == {b"coord:default:coll:{z}", b"coord:default:coll:{z}:m"}


def test_wrong_kind(stub: Stub, maps: map_pb2_grpc.MapServiceStub) -> None:
    maps.Set(map_pb2.MapServiceSetRequest(name="m", fields=[map_pb2.MapField(field="f", value=b"v")]))
    calls: list[Callable[[], Any]] = [
        lambda: put(stub, "m", {"a": 1}),
        lambda: incr(stub, "m", "a", 1),
        lambda: stub.Remove(pb.SortedSetServiceRemoveRequest(name="m", members=["a"])),
        lambda: stub.GetScore(pb.SortedSetServiceGetScoreRequest(name="m", members=["a"])),
        lambda: stub.GetRank(pb.SortedSetServiceGetRankRequest(name="m", members=["a"])),
        lambda: window(stub, "m", 0, 9),
        lambda: around(stub, "m", "a", 1, 1),
        lambda: by_score(stub, "m"),
        lambda: stub.Length(pb.SortedSetServiceLengthRequest(name="m")),
        lambda: stub.Delete(pb.SortedSetServiceDeleteRequest(name="m")),
        lambda: stub.Touch(pb.SortedSetServiceTouchRequest(name="m")),
    ]
    for call in calls:
        code, info, _ = error(call)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and info.reason == "COLLECTION_WRONG_TYPE"
        assert dict(info.metadata) == {"name": "m", "expected": "sorted_set", "actual": "map"}
    assert maps.Get(map_pb2.MapServiceGetRequest(name="m", fields=["f"])).values[0].value == b"v"
    put(stub, "z", {"a": 1})
    code, info, _ = error(lambda: maps.Get(map_pb2.MapServiceGetRequest(name="z", fields=["a"])))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and info.reason == "COLLECTION_WRONG_TYPE"
    assert dict(info.metadata) == {"name": "z", "expected": "map", "actual": "sorted_set"}
    code, _, _ = error(
        lambda: maps.Set(
            map_pb2.MapServiceSetRequest(name="z", fields=[map_pb2.MapField(field="f", value=b"")])
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert scores_of(stub, "z", "a") == {"a": 1}


def test_a_window_wider_than_a_page_is_refused(stub: Stub) -> None:
    put(stub, "z", {f"m{i:04}": i for i in range(1000)})
    put(stub, "z", {f"n{i:04}": i for i in range(5)})
    assert len(window(stub, "z", 0, 999)) == 1000
    assert len(window(stub, "z", -1000, -1)) == 1000
    assert len(window(stub, "z", 5, -1)) == 1000  # mixed signs: resolved against the length
    for start, stop, count in ((0, 1000, 1001), (-1001, -1, 1001), (0, -1, 1005), (-1005, 1004, 1005)):
        code, info, fields = error(functools.partial(window, stub, "z", start, stop))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and fields == ["ranks"]
        assert info.reason == "BATCH_TOO_LARGE" and info.metadata["actual"] == str(count)
    code, info, fields = error(lambda: around(stub, "z", "m0001", 500, 500))
    assert (
        code == grpc.StatusCode.INVALID_ARGUMENT
        and fields == ["around"]
        and info.metadata["actual"] == "1001"
    )


def rbr(**kw: Any) -> Callable[[Stub], Any]:
    return lambda s: s.RangeByRank(pb.SortedSetServiceRangeByRankRequest(name="z", **kw))


def rbs(**kw: Any) -> Callable[[Stub], Any]:
    return lambda s: s.RangeByScore(pb.SortedSetServiceRangeByScoreRequest(name="z", **kw))


NAN = math.nan
INVALID: list[tuple[str, Callable[[Stub], Any], str, str]] = [
    ("empty name", lambda s: put(s, "", {"a": 1}), "name", "INVALID_FIELD"),
    ("no members", lambda s: put(s, "z", {}), "members", "INVALID_FIELD"),
    ("too many members", lambda s: put(s, "z", {str(i): i for i in range(1001)}), "members",
     "BATCH_TOO_LARGE"),
    ("empty member", lambda s: put(s, "z", {"a": 1, "": 2}), "members[1].member", "INVALID_FIELD"),
    ("NaN score", lambda s: put(s, "z", {"a": 1, "b": NAN}), "members[1].score", "INVALID_FIELD"),
    ("bad condition", lambda s: put(s, "z", {"a": 1}, 9), "condition", "INVALID_FIELD"),
    ("NaN delta", lambda s: incr(s, "z", "a", NAN), "delta", "INVALID_FIELD"),
    ("infinite delta", lambda s: incr(s, "z", "a", INF), "delta", "INVALID_FIELD"),
    ("empty increment member", lambda s: incr(s, "z", "", 1), "member", "INVALID_FIELD"),
    ("remove none", lambda s: s.Remove(pb.SortedSetServiceRemoveRequest(name="z")), "members",
     "INVALID_FIELD"),
    ("score of none", lambda s: s.GetScore(pb.SortedSetServiceGetScoreRequest(name="z")), "members",
     "INVALID_FIELD"),
    ("rank member", lambda s: s.GetRank(pb.SortedSetServiceGetRankRequest(name="z", members=["a", "b\r"])),
     "members[1]", "INVALID_FIELD"),
    ("bad order", lambda s: s.GetRank(pb.SortedSetServiceGetRankRequest(name="z", members=["a"], order=5)),  # type: ignore[arg-type]
     "order", "INVALID_FIELD"),
    ("no window", rbr(), "window", "INVALID_FIELD"),
    ("wide window", rbr(ranks=pb.RankWindow(start=0, stop=1000)), "ranks", "BATCH_TOO_LARGE"),
    ("around nobody", rbr(around=pb.Around(before=1)), "around.member", "INVALID_FIELD"),
    ("around before", rbr(around=pb.Around(member="a", before=-1)), "around.before", "INVALID_FIELD"),
    ("around after", rbr(around=pb.Around(member="a", after=-1)), "around.after", "INVALID_FIELD"),
    ("around wide", rbr(around=pb.Around(member="a", before=999, after=1)), "around", "BATCH_TOO_LARGE"),
    ("NaN min", rbs(min=pb.ScoreBound(score=NAN)), "min.score", "INVALID_FIELD"),
    ("NaN max", rbs(max=pb.ScoreBound(score=NAN, exclusive=True)), "max.score", "INVALID_FIELD"),
    ("negative offset", rbs(offset=-1), "offset", "INVALID_FIELD"),
    ("limit too large", rbs(limit=1001), "limit", "BATCH_TOO_LARGE"),
    ("ttl", lambda s: put(s, "z", {"a": 1}, ttl_ms=10**12), "options.ttl", "TTL_OUT_OF_RANGE"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "field", "reason"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_validation_names_the_field(
    stub: Stub, coord: CoordUnderTest, call: Callable[[Stub], Any], field: str, reason: str
) -> None:
    code, info, fields = error(lambda: call(stub))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == reason and fields == [field]
    assert all_keys(coord) == {}
