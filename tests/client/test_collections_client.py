"""The collection handles (``client.map``, ``list``, ``set``, ``sorted_set``) through Client and
AsyncClient, against single-node Redis and Redis Cluster.

Each scenario is written once and run twice: with a sync Client and with an AsyncClient (``run``
awaits what the async handles return and passes the sync results through).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coord_client import (
    Added,
    AsyncClient,
    Client,
    FailedPrecondition,
    Incremented,
    InvalidArgument,
    Popped,
    Pushed,
    Put,
    PutCondition,
    Ranked,
    Removed,
    ResourceExhausted,
)
from coord_client.collections import AsyncMap, Map, _maps
from tests.conftest import CoordThread, CoordUnderTest, wait_for

Scenario = Callable[[Any], Awaitable[None]]


async def v(result: Any) -> Any:
    """A handle method's result: awaited when it came from an async handle."""
    return await result if inspect.isawaitable(result) else result


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest, coord: CoordUnderTest) -> Callable[[Scenario], None]:
    """Run a scenario with the sync or the asyncio client."""

    def with_client(scenario: Scenario) -> None:
        async def main() -> None:
            if request.param == "sync":
                with Client(coord.target, timeout=10) as client:
                    await scenario(client)
            else:
                async with AsyncClient(coord.target, timeout=10) as client:
                    await scenario(client)

        asyncio.run(main())

    return with_client


@pytest.fixture
def client(coord: CoordUnderTest) -> Iterator[Client]:
    with Client(coord.target, timeout=10) as c:
        yield c


def near(moment: datetime | None, seconds: float) -> bool:
    assert moment is not None
    return abs((moment - (datetime.now(UTC) + timedelta(seconds=seconds))).total_seconds()) < 5


def same_time(a: datetime | None, b: datetime | None) -> bool:
    assert a is not None and b is not None
    return abs((a - b).total_seconds()) < 0.01


# ---------------------------------------------------------------- maps


def test_map(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: Any) -> None:
        m = client.map("user:42")
        assert m.name == "user:42" and repr(m).endswith("Map('user:42')")
        assert await v(m.get("name")) is None and await v(m.get_all()) == {}

        first = await v(m.set(name="Ada", email=b"ada@example.com", ttl=60))
        assert isinstance(first, Added)
        assert (first.applied, first.added, first.exists, first.length) == (True, 2, True, 2)
        assert first.version > 0 and near(first.expire_time, 60)
        # A mapping and keywords together; a field named like an option goes in the mapping.
        again = await v(m.set({"name": "Ada L.", "ttl": b"x"}, lang="en"))
        assert (again.added, again.length) == (2, 4) and again.version > first.version

        assert await v(m.get("name")) == b"Ada L."
        assert await v(m.get("nope")) is None
        assert await v(m.get_many(["name", "nope", "lang"])) == {"name": b"Ada L.", "lang": b"en"}
        assert await v(m.get_many([])) == {}
        everything = {"name": b"Ada L.", "email": b"ada@example.com", "ttl": b"x", "lang": b"en"}
        assert await v(m.get_all()) == everything
        assert await v(m.length()) == 4

        visits = await v(m.increment("visits"))
        assert isinstance(visits, Incremented) and visits.value == 1 and isinstance(visits.value, int)
        assert (await v(m.increment("visits", 41))).value == 42
        assert (await v(m.increment("visits", -2))).value == 40
        score = await v(m.increment("score", 0.5))
        assert score.value == 0.5 and isinstance(score.value, float)
        assert (await v(m.increment("score", 2.0))).value == 2.5
        assert await v(m.get("score")) == b"2.5"

    run(scenario)


def test_map_versions_ttl_delete(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: Any) -> None:
        m = client.map("profile")
        created = await v(m.set(a=b"1", b=b"2", ttl=timedelta(minutes=2)))
        assert near(created.expire_time, 120)

        state = await v(m.state())
        assert (state.exists, state.version, state.length) == (True, created.version, 2)
        assert same_time(state.expire_time, created.expire_time)

        stale = await v(m.set(c=b"3", if_version=state.version + 1))
        assert not stale.applied and stale.version == state.version and stale.length == 2
        assert await v(m.get("c")) is None
        cas = await v(m.set(c=b"3", if_version=state.version))
        assert cas.applied and cas.version > state.version

        not_removed = await v(m.remove("a", if_version=state.version))
        assert not not_removed.applied and not_removed.removed == 0
        removed = await v(m.remove("a", "nope"))
        assert isinstance(removed, Removed) and removed.removed == 1 and removed.length == 2
        unchanged = await v(m.increment("n", 5, if_version=1))
        assert not unchanged.applied and unchanged.value is None

        touched = await v(m.touch(3600))
        assert touched.exists and near(touched.expire_time, 3600) and touched.version == removed.version
        kept = await v(m.set(d=b"4", keep_ttl=True))
        assert same_time(kept.expire_time, touched.expire_time)
        refreshed = await v(m.set(d=b"5", ttl=30))
        assert near(refreshed.expire_time, 30)
        default = await v(m.touch())  # the server's default TTL (one hour in tests)
        assert default.exists and default.expire_time is not None

        mismatch = await v(m.delete(if_version=refreshed.version + 1))
        assert not mismatch.deleted and mismatch.exists and mismatch.version == refreshed.version
        deleted = await v(m.delete(if_version=refreshed.version))
        assert deleted.deleted and not deleted.exists and deleted.version == 0
        assert not (await v(m.delete())).deleted
        gone = await v(m.touch(10))
        assert not gone.exists and gone.expire_time is None
        assert await v(m.length()) == 0 and not (await v(m.state())).exists

        emptied = client.map("one-field")
        await v(emptied.set(f=b"v"))
        last = await v(emptied.remove("f"))
        assert last.removed == 1 and not last.exists and last.version == 0  # went with its last field

    run(scenario)


def test_map_pages_and_errors(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: Any) -> None:
        big = client.map("big")
        fields = {f"f{i}": str(i).encode() for i in range(1000)}  # a hashtable, which HSCAN pages
        assert (await v(big.set(fields))).added == 1000
        assert await v(big.get_all(page_size=50)) == fields
        assert await v(big.get_all()) == fields

        m = client.map("typed")
        await v(m.set(text="abc", n=b"1"))
        with pytest.raises(FailedPrecondition) as not_integer:
            await v(m.increment("text"))
        assert not_integer.value.reason == "VALUE_NOT_INTEGER"
        with pytest.raises(FailedPrecondition) as not_number:
            await v(m.increment("text", 1.5))
        assert not_number.value.reason == "COLLECTION_VALUE_NOT_NUMBER"
        with pytest.raises(InvalidArgument) as empty_field:
            await v(m.set({"": b"x"}))
        assert empty_field.value.field_violations

        # Arguments are checked before anything is sent, also by the async handles.
        with pytest.raises(ValueError, match="at least one field"):
            m.set()
        with pytest.raises(ValueError, match="at least one field"):
            m.remove()
        with pytest.raises(TypeError):
            m.get(b"name")
        with pytest.raises(TypeError):
            m.get_many("name")
        with pytest.raises(ValueError, match="finite"):
            m.increment("n", math.inf)
        with pytest.raises(ValueError, match="if_version"):
            m.set(a=b"1", if_version=0)
        with pytest.raises(ValueError, match="ttl"):
            m.set(a=b"1", ttl=0)
        with pytest.raises(TypeError):
            client.map(42)

    run(scenario)


def test_a_paged_read_starts_over_when_the_collection_changes(client: Client) -> None:
    m = client.map("changing")
    fields = {f"f{i}": b"v" for i in range(1000)}  # past Redis's small-hash size: HSCAN pages it
    m.set(fields)
    paged = _maps.get_all("changing", 10)
    first = paged.call()
    assert first is not None
    paged.take(m._send(first, None))
    m.set(extra=b"new")  # a new version between two pages
    calls = 1
    while (call := paged.call()) is not None:
        paged.take(m._send(call, None))
        calls += 1
    assert calls > 2 and paged.result() == {**fields, "extra": b"new"}


def test_a_wait_longer_than_the_client_timeout(coord: CoordUnderTest) -> None:
    # Without a timeout of its own, a pop's deadline is its wait plus the client's timeout: the
    # empty answer comes back, not DeadlineExceeded.
    with Client(coord.target, timeout=0.5) as client:
        popped = client.list("idle").pop(wait=1.0)
    assert popped.applied and popped.values == []


def test_async_methods_are_the_sync_ones(coord_single: CoordUnderTest) -> None:
    assert AsyncMap.get is Map.get and AsyncMap.get_all is Map.get_all

    async def main() -> None:
        async with AsyncClient(coord_single.target, timeout=5) as client:
            pending = client.map("m").set(a=b"1")
            assert inspect.isawaitable(pending)
            assert (await pending).applied
            reading = client.map("m").get_all()
            assert inspect.isawaitable(reading)
            assert await reading == {"a": b"1"}

    asyncio.run(main())


def test_too_large_and_wrong_type(
    coord_single: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(coord_single.backing.url, collection_max_elements=3)
    with Client(server.target, timeout=10) as client:
        m = client.map("capped")
        assert m.set(a=b"1", b=b"2").length == 2
        with pytest.raises(ResourceExhausted) as too_large:
            m.set(c=b"3", d=b"4")
        assert too_large.value.reason == "COLLECTION_TOO_LARGE"
        assert m.get_all() == {"a": b"1", "b": b"2"}  # refused whole
        with pytest.raises(FailedPrecondition) as wrong:
            client.set("capped").add("x")
        assert wrong.value.reason == "COLLECTION_WRONG_TYPE"
        with pytest.raises(FailedPrecondition):
            client.sorted_set("capped").score("x")
        with pytest.raises(FailedPrecondition):
            client.list("capped").push(b"x")


# ---------------------------------------------------------------- lists


def test_list(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: Any) -> None:
        lst = client.list("jobs")
        pushed = await v(lst.push(b"a", "b", b"c", ttl=60))
        assert isinstance(pushed, Pushed)
        assert (pushed.applied, pushed.length, pushed.trimmed) == (True, 3, 0) and near(
            pushed.expire_time, 60
        )
        front = await v(lst.push(b"y", b"x", front=True))
        assert front.length == 5
        assert await v(lst.range()) == [b"x", b"y", b"a", b"b", b"c"]
        assert await v(lst.range(1, 2)) == [b"y", b"a"]
        assert await v(lst.range(-2)) == [b"b", b"c"]
        capped = await v(lst.push(b"d", max_length=4))
        assert (capped.length, capped.trimmed) == (4, 2)
        assert await v(lst.range()) == [b"a", b"b", b"c", b"d"]

        one = await v(lst.pop())
        assert isinstance(one, Popped) and one.value == b"a" and one.values == [b"a"] and one.length == 3
        back = await v(lst.pop(2, front=False))
        assert back.values == [b"d", b"c"] and back.value == b"d"
        assert await v(lst.length()) == 1

        empty = await v(client.list("none").pop())
        assert empty.applied and empty.values == [] and empty.value is None and not empty.exists
        waited = await v(client.list("none").pop(wait=0.2))  # nothing arrives: no values
        assert waited.values == []

        state = await v(lst.state())
        stale = await v(lst.pop(if_version=state.version + 1))
        assert not stale.applied and stale.values == [] and stale.length == 1
        stale_push = await v(lst.push(b"z", if_version=state.version + 1))
        assert not stale_push.applied and stale_push.length == 1

        dup = client.list("dup")
        await v(dup.push(*[b"a", b"b", b"a", b"c", b"a", b"a"]))
        assert (await v(dup.remove(b"a", 2))).removed == 2
        assert await v(dup.range()) == [b"b", b"c", b"a", b"a"]
        assert (await v(dup.remove("a", -1))).removed == 1
        assert (await v(dup.remove(b"a"))).removed == 1
        assert await v(dup.range()) == [b"b", b"c"]

        digits = client.list("digits")
        await v(digits.push(*[str(i) for i in range(10)]))
        trimmed = await v(digits.trim(2, 4))
        assert isinstance(trimmed, Removed) and trimmed.removed == 7 and trimmed.length == 3
        assert await v(digits.range()) == [b"2", b"3", b"4"]

        touched = await v(digits.touch(600))
        assert touched.exists and near(touched.expire_time, 600)
        assert (await v(digits.delete())).deleted and await v(digits.range()) == []

        with pytest.raises(ValueError, match="at least one value"):
            lst.push()
        with pytest.raises(ValueError, match="if_version cannot be combined"):
            lst.pop(wait=1, if_version=3)
        with pytest.raises(ValueError):
            lst.pop(0)

    run(scenario)


def test_list_range_follows_pages(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: Any) -> None:
        lst = client.list("long")
        values = [str(i).encode() for i in range(2500)]
        for start in range(0, 2500, 1000):
            await v(lst.push(*values[start : start + 1000]))
        assert await v(lst.range()) == values
        assert await v(lst.range(1500)) == values[1500:]

    run(scenario)


def _waiting(coord: CoordUnderTest, name: str) -> Callable[[], bool]:
    """Whether a Pop waits on list ``name`` (its waiter queue key holds one)."""

    def check() -> bool:
        with coord.redis() as r:
            return int(r.zcard(f"coord:default:coll:{{{name}}}:q")) >= 1

    return check


def test_blocking_pop_released_by_a_push_from_another_client(coord: CoordUnderTest) -> None:
    got: list[Popped[bytes]] = []
    with Client(coord.target, timeout=10) as popper, Client(coord.target, timeout=10) as pusher:
        waiter = threading.Thread(target=lambda: got.append(popper.list("q").pop(wait=60)))
        waiter.start()
        wait_for(_waiting(coord, "q"), "the pop to wait")
        assert pusher.list("q").push(b"job-1").applied
        waiter.join(60)
    assert not waiter.is_alive() and [p.values for p in got] == [[b"job-1"]]


def test_async_blocking_pop_released_by_a_push_from_another_client(coord: CoordUnderTest) -> None:
    async def main() -> Popped[bytes]:
        async with AsyncClient(coord.target, timeout=10) as popper, AsyncClient(coord.target) as pusher:
            pending = asyncio.ensure_future(popper.list("q").pop(wait=60))
            await asyncio.to_thread(wait_for, _waiting(coord, "q"), "the pop to wait")
            assert not pending.done()
            assert (await pusher.list("q").push(b"job-1")).applied
            return await pending

    popped = asyncio.run(main())
    assert popped.values == [b"job-1"] and popped.value == b"job-1"


# ---------------------------------------------------------------- sets


def test_set(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: Any) -> None:
        s = client.set("tags")
        added = await v(s.add("red", "blue", "red", ttl=60))
        assert (
            isinstance(added, Added)
            and added.added == 2
            and added.length == 2
            and near(added.expire_time, 60)
        )
        again = await v(s.add("red"))
        assert again.applied and again.added == 0 and again.version == added.version  # nothing changed

        assert await v(s.contains("red")) is True
        assert await v(s.contains("green")) is False
        assert await v(s.contains_many(["red", "green"])) == {"red": True, "green": False}
        assert await v(s.contains_many([])) == {}
        assert await v(s.members()) == {"red", "blue"}
        assert await v(s.length()) == 2

        removed = await v(s.remove("red", "nope"))
        assert isinstance(removed, Removed) and removed.removed == 1 and removed.length == 1
        stale = await v(s.add("x", if_version=removed.version + 1))
        assert not stale.applied and stale.added == 0

        many = client.set("many")
        members = {f"m{i}" for i in range(300)}
        await v(many.add(*sorted(members)))
        assert await v(many.members(page_size=50)) == members

        one = await v(many.pop())
        assert isinstance(one, Popped) and one.value in members and one.length == 299
        five = await v(many.pop(5))
        assert len(set(five.values)) == 5 and set(five.values) <= members - {one.value}
        assert five.length == 294
        assert (await v(client.set("none").pop())).value is None

        touched = await v(s.touch(timedelta(hours=2)))
        assert touched.exists and near(touched.expire_time, 7200)
        assert (await v(s.delete())).deleted and await v(s.members()) == set()

        with pytest.raises(ValueError, match="at least one member"):
            s.add()
        with pytest.raises(TypeError):
            s.contains_many("red")

    run(scenario)


# ---------------------------------------------------------------- sorted sets


def test_sorted_set_leaderboard(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: Any) -> None:
        lb = client.sorted_set("board")
        put = await v(lb.put({"alice": 10, "bob": 20}, carol=15, ttl=60))
        assert isinstance(put, Put) and (put.added, put.updated, put.length) == (3, 0, 3)
        assert near(put.expire_time, 60)

        assert await v(lb.score("alice")) == 10.0 and await v(lb.score("nobody")) is None
        assert await v(lb.score_many(["alice", "nobody"])) == {"alice": 10.0}
        assert await v(lb.score_many([])) == {}
        assert await v(lb.rank("bob")) == Ranked("bob", 0, 20.0)  # leaderboard order by default
        assert await v(lb.rank("bob", descending=False)) == Ranked("bob", 2, 20.0)
        assert await v(lb.rank("nobody")) is None
        assert await v(lb.rank_many(["alice", "nobody", "carol"])) == {
            "alice": Ranked("alice", 2, 10.0),
            "carol": Ranked("carol", 1, 15.0),
        }

        incr = await v(lb.increment("alice", 15))
        assert isinstance(incr, Incremented) and incr.value == 25.0
        assert (await v(lb.increment("dave"))).value == 1.0
        assert await v(lb.top(2)) == [Ranked("alice", 0, 25.0), Ranked("bob", 1, 20.0)]
        assert [r.member for r in await v(lb.top(2, descending=False))] == ["dave", "carol"]
        assert [r.member for r in await v(lb.top())] == ["alice", "bob", "carol", "dave"]

        lower = await v(lb.put(alice=5, condition="if_higher"))
        assert (lower.added, lower.updated) == (0, 0) and await v(lb.score("alice")) == 25.0
        higher = await v(lb.put(alice=30, condition=PutCondition.IF_HIGHER))
        assert higher.updated == 1 and await v(lb.score("alice")) == 30.0
        assert (await v(lb.put(erin=1, condition="if_exists"))).added == 0
        assert (await v(lb.put(alice=0, condition="if_new"))).updated == 0
        assert (await v(lb.put(bob=1, condition="if_lower"))).updated == 1
        with pytest.raises(ValueError, match="condition"):
            lb.put(alice=1, condition="sometimes")

        state = await v(lb.state())
        stale = await v(lb.increment("alice", 1, if_version=state.version + 1))
        assert not stale.applied and stale.value is None

        removed = await v(lb.remove("dave", "nobody"))
        assert isinstance(removed, Removed) and removed.removed == 1
        assert await v(lb.length()) == 3
        assert (await v(lb.touch(120))).exists
        assert (await v(lb.delete())).deleted and await v(lb.top()) == []

        with pytest.raises(ValueError, match="NaN"):
            lb.put(x=math.nan)
        with pytest.raises(ValueError, match="at least one member"):
            lb.put()

    run(scenario)


def test_sorted_set_windows_and_ranges(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: Any) -> None:
        lb = client.sorted_set("ten")
        await v(lb.put({f"p{i}": i for i in range(10)}))

        around = await v(lb.around("p5", 2))
        assert [(r.member, r.rank) for r in around] == [("p7", 2), ("p6", 3), ("p5", 4), ("p4", 5), ("p3", 6)]
        assert [r.member for r in await v(lb.around("p5", before=1, after=0))] == ["p6", "p5"]
        assert [r.member for r in await v(lb.around("p5", 1, descending=False))] == ["p4", "p5", "p6"]
        assert [r.member for r in await v(lb.around("p9", 2))] == ["p9", "p8", "p7"]
        assert await v(lb.around("nobody", 2)) == []

        assert [r.member for r in await v(lb.range_by_rank(0, 2))] == ["p0", "p1", "p2"]
        assert [r.member for r in await v(lb.range_by_rank(0, 2, descending=True))] == ["p9", "p8", "p7"]
        assert len(await v(lb.range_by_rank())) == 10

        assert await v(lb.range_by_score(2, 4)) == [("p2", 2.0), ("p3", 3.0), ("p4", 4.0)]
        assert await v(lb.range_by_score(2, 4, min_exclusive=True, max_exclusive=True)) == [("p3", 3.0)]
        assert [m for m, _ in await v(lb.range_by_score(2, 4, descending=True))] == ["p4", "p3", "p2"]
        assert await v(lb.range_by_score(2, 4, offset=1, limit=1)) == [("p3", 3.0)]
        assert [m for m, _ in await v(lb.range_by_score(max=1))] == ["p0", "p1"]
        assert [m for m, _ in await v(lb.range_by_score(min=8))] == ["p8", "p9"]
        assert len(await v(lb.range_by_score())) == 10

        await v(lb.put(low=-math.inf, high=math.inf))
        assert (await v(lb.top(1)))[0] == Ranked("high", 0, math.inf)
        assert await v(lb.range_by_score(max=-1000)) == [("low", -math.inf)]

        big = client.sorted_set("big")
        await v(big.put({f"m{i:03}": i for i in range(250)}))
        assert [m for m, _ in await v(big.range_by_score())] == [f"m{i:03}" for i in range(250)]
        assert len(await v(big.range_by_score(limit=150))) == 150
        assert [m for m, _ in await v(big.range_by_score(offset=240, limit=100))] == [
            f"m{i:03}" for i in range(240, 250)
        ]

        with pytest.raises(ValueError):
            lb.top(0)
        with pytest.raises(ValueError):
            lb.around("p5", -1)

    run(scenario)
