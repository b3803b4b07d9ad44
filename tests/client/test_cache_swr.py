"""get_or_set and cached with a stale grace (stale-while-revalidate: the stale value at once while
one caller refreshes it) and with probabilistic early expiry (XFetch), counted with a fixed random
source and clock, never timed — sync and asyncio."""

from __future__ import annotations

import asyncio
import math
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from coord_client import AsyncClient, Client, EarlyExpiry, Entry
from coord_client.cache._cached import Filling

from ..conftest import CoordUnderTest, wait_for

COMPUTE = 10.0  # seconds the test's entries say they took to compute
AHEAD = 10.0  # how long before the expiry the test's clock stands


# -- the XFetch rule ---------------------------------------------------------------------------------


def entry(compute_time: float | None = COMPUTE) -> Entry:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    return Entry("k", True, b"v", 1, expires, compute_time)


def before_expiry(seconds: float) -> float:
    expires = entry().expire_time
    assert expires is not None
    return expires.timestamp() - seconds


def test_early_expiry_follows_xfetch_with_a_seeded_random_source() -> None:
    early = EarlyExpiry(beta=1.0, random=random.Random(7).random, clock=lambda: before_expiry(AHEAD))
    twin = random.Random(7)
    calls = 10_000
    due = sum(early.due(entry()) for _ in range(calls))
    # Due when now - compute_time * beta * ln(U) >= expiry, U = 1 - draw in (0, 1].
    expected = sum(1 for _ in range(calls) if -COMPUTE * math.log(1.0 - twin.random()) >= AHEAD)
    assert due == expected
    # The chance is e^(-ahead / (compute_time * beta)): about 37% here.
    assert abs(due / calls - math.exp(-1)) < 0.02


def test_early_expiry_weighs_by_beta_and_needs_a_compute_time() -> None:
    calls = 2000
    eager = EarlyExpiry(beta=4.0, random=random.Random(1).random, clock=lambda: before_expiry(AHEAD))
    lazy = EarlyExpiry(beta=0.25, random=random.Random(1).random, clock=lambda: before_expiry(AHEAD))
    assert sum(eager.due(entry()) for _ in range(calls)) > sum(lazy.due(entry()) for _ in range(calls))
    always = EarlyExpiry(random=random.Random(1).random, clock=lambda: before_expiry(0))
    assert all(always.due(entry()) for _ in range(100))
    assert not any(always.due(entry(None)) for _ in range(100))
    with pytest.raises(ValueError, match="beta"):
        EarlyExpiry(beta=0)
    with pytest.raises(TypeError, match="early_expiry"):
        Filling(early_expiry="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stale_grace needs lease"):
        Filling(lease=False, stale_grace=5)


# -- early refreshes through the server ----------------------------------------------------------


def test_get_or_set_refreshes_early_as_often_as_xfetch_says(coord: CoordUnderTest) -> None:
    """Each call reads an entry the test has just written (compute time 10 s, expiring in an hour) with
    a clock 10 s before its expiry: the fill runs exactly when the rule says so for that call's draw."""
    calls, seed = 60, 11
    clock = [0.0]
    early = EarlyExpiry(random=random.Random(seed).random, clock=lambda: clock[0])
    twin = random.Random(seed)
    fills = 0

    def fill() -> bytes:
        nonlocal fills
        fills += 1
        return b"fresh"

    expected = 0
    with Client(coord.target) as client:
        for _ in range(calls):
            written = client.cache.set("hot", b"cached", ttl=3600, compute_time=COMPUTE)
            assert written.expire_time is not None
            clock[0] = written.expire_time.timestamp() - AHEAD
            due = -COMPUTE * math.log(1.0 - twin.random()) >= AHEAD
            expected += due
            got = client.cache.get_or_set("hot", fill, ttl=3600, early_expiry=early)
            assert got == (b"fresh" if due else b"cached")
            if due:  # the refresh was stored (nobody wrote the key meanwhile)
                assert client.cache.get("hot").value == b"fresh"
    assert fills == expected and 0 < expected < calls


def test_an_early_refresh_does_not_overwrite_a_newer_write(coord: CoordUnderTest) -> None:
    with Client(coord.target) as client:
        client.cache.set("k", b"old", ttl=3600, compute_time=COMPUTE)

        def fill() -> bytes:
            client.cache.set("k", b"written meanwhile", ttl=3600)
            return b"refreshed"

        always = EarlyExpiry(clock=lambda: datetime.now(UTC).timestamp() + 7200)
        assert client.cache.get_or_set("k", fill, ttl=60, early_expiry=always) == b"refreshed"
        assert client.cache.get("k").value == b"written meanwhile"


def test_cached_passes_early_expiry_on(coord: CoordUnderTest) -> None:
    calls = 0
    always = EarlyExpiry(clock=lambda: datetime.now(UTC).timestamp() + 7200)
    with Client(coord.target) as client:

        @client.cache.cached(ttl=3600, key="square:{n}", early_expiry=always)
        def square(n: int) -> int:
            nonlocal calls
            calls += 1
            return n * n

        for _ in range(4):
            client.cache.set(square.key_for(3), b"9", ttl=3600, compute_time=COMPUTE)
            assert square(3) == 9
        assert calls == 4  # every call was due (its clock is past the expiry): refreshed each time
        # The refresh took under a millisecond: stored without a compute time, never refreshed early.
        assert client.cache.get(square.key_for(3)).compute_time is None
        assert square(3) == 9 and calls == 4


def test_async_get_or_set_refreshes_early(coord: CoordUnderTest) -> None:
    clock = [0.0]
    early = EarlyExpiry(random=random.Random(5).random, clock=lambda: clock[0])
    twin = random.Random(5)
    fills = expected = 0

    async def fill() -> bytes:
        nonlocal fills
        fills += 1
        return b"fresh"

    async def main() -> None:
        nonlocal expected
        async with AsyncClient(coord.target) as client:
            for _ in range(20):
                written = await client.cache.set("hot", b"cached", ttl=3600, compute_time=COMPUTE)
                assert written.expire_time is not None
                clock[0] = written.expire_time.timestamp() - AHEAD
                expected += -COMPUTE * math.log(1.0 - twin.random()) >= AHEAD
                await client.cache.get_or_set("hot", fill, ttl=3600, early_expiry=early)

    asyncio.run(main())
    assert fills == expected


# -- stale-while-revalidate ----------------------------------------------------------------------------


def make_stale(client: Client, key: str, value: bytes) -> None:
    """An entry that expires at once (1 ms) and is kept 10 minutes as a stale value."""
    assert client.cache.get_or_set(key, lambda: value, ttl=0.001, stale_grace=600) == value
    wait_for(lambda: not client.cache.get(key).found, f"{key!r} to go stale")


def test_callers_get_the_stale_value_at_once_while_one_refreshes(coord: CoordUnderTest) -> None:
    callers = 8
    release = threading.Event()
    fills: list[int] = []
    results: list[bytes] = []
    with Client(coord.target) as client:
        make_stale(client, "page", b"old page")

        def refresh() -> bytes:
            fills.append(1)
            # Returns only once every other caller has its answer: they did not wait for this one.
            assert release.wait(30)
            return b"new page"

        def call() -> None:
            results.append(client.cache.get_or_set("page", refresh, ttl=60, stale_grace=600))
            if len(results) == callers - 1:
                release.set()

        threads = [threading.Thread(target=call) for _ in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(fills) == 1
        assert sorted(results) == [b"new page"] + [b"old page"] * (callers - 1)
        fresh = client.cache.get("page")
        assert fresh.found and fresh.value == b"new page"
        lease = client.cache.get_or_lease("page", 10, serve_stale=True)
        assert not lease.stale and lease.entry.value == b"new page"


def test_a_caller_without_stale_grace_misses_a_stale_value(coord: CoordUnderTest) -> None:
    with Client(coord.target) as client:
        make_stale(client, "k", b"old")
        got = client.cache.get_or_lease("k", 10, serve_stale=True)
        assert got.stale and got.entry.value == b"old" and got.leased
        # The lease is held by that caller: a get_or_set without a grace waits for it, then fills.
        assert client.cache.get_or_set("k", lambda: b"mine", ttl=60, wait=0) == b"mine"
        assert client.cache.set("k", b"refreshed", ttl=60, lease_token=got.lease_token).stored


def test_async_stale_while_revalidate(coord: CoordUnderTest) -> None:
    with Client(coord.target) as client:
        make_stale(client, "a", b"old")

    async def main() -> None:
        async with AsyncClient(coord.target) as client:
            started, release = asyncio.Event(), asyncio.Event()

            async def refresh() -> bytes:
                started.set()
                await release.wait()  # set only once the other callers have their answers
                return b"new"

            grace = timedelta(minutes=5)
            refresher = asyncio.ensure_future(
                client.cache.get_or_set("a", refresh, ttl=60, stale_grace=grace)
            )
            await asyncio.wait_for(started.wait(), 30)
            others = [
                await client.cache.get_or_set("a", refresh, ttl=60, stale_grace=grace) for _ in range(3)
            ]
            release.set()
            assert others == [b"old"] * 3 and await refresher == b"new"
            assert (await client.cache.get("a")).value == b"new"

    asyncio.run(main())
