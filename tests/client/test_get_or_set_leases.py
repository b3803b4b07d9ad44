"""get_or_set and cached under fill leases: one fill for many concurrent callers across processes, a
dead filler's lease handed over, and what a caller does without the lease — sync and asyncio."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from coord_client import AsyncClient, Client, SetOutcome
from coord_server.cache.keys import CacheKeys

from ..conftest import CoordUnderTest, wait_for

KEYS = CacheKeys("default")

# One process of the stampede: 16 callers (threads of a sync Client, or tasks of an AsyncClient) that
# all miss the same key once the test says go. Every run of the fill appends a line to the counter
# file; each caller prints what get_or_set returned.
STAMPEDE = textwrap.dedent(
    """
    import asyncio, os, sys, threading, time
    from coord_client import AsyncClient, Client
    target, mode, counter, go, key = sys.argv[1:6]

    def record() -> bytes:
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\\n")
        return f"filled by {os.getpid()}".encode()

    def sync_fill() -> bytes:
        value = record()
        time.sleep(0.5)  # long enough for every caller to miss while it runs
        return value

    async def async_fill() -> bytes:
        value = record()
        await asyncio.sleep(0.5)
        return value

    def wait_for_go() -> None:
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.005)

    def threads() -> list[bytes]:
        results: list[bytes] = []
        with Client(target) as client:
            client.cache.get("warm-up")  # connected before the start
            wait_for_go()
            def call() -> None:
                results.append(client.cache.get_or_set(key, sync_fill, ttl=60, lease_ttl=30, wait=60))
            workers = [threading.Thread(target=call) for _ in range(16)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(120)
        return results

    async def tasks() -> list[bytes]:
        async with AsyncClient(target) as client:
            await client.cache.get("warm-up")
            await asyncio.to_thread(wait_for_go)
            fill = lambda: client.cache.get_or_set(key, async_fill, ttl=60, lease_ttl=30, wait=60)
            calls = [fill() for _ in range(16)]
            return list(await asyncio.gather(*calls))

    results = threads() if mode == "threads" else asyncio.run(tasks())
    for value in results:
        print("result", value.decode(), flush=True)
    """
)


def _start(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:  # each by its own pid
        if child.poll() is None:
            child.kill()
            child.wait(30)
        if child.stdout is not None:
            child.stdout.close()


def test_64_callers_in_4_processes_fill_once(
    coord: CoordUnderTest, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    counter, go = tmp_path / "fills", tmp_path / "go"
    for mode in ("threads", "threads", "tasks", "tasks"):
        children.append(_start(STAMPEDE, coord.target, mode, str(counter), str(go), "report"))
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    go.touch()
    results: list[str] = []
    for child in children:
        out, _ = child.communicate(timeout=180)
        assert child.returncode == 0
        results += [line.removeprefix("result ") for line in out.splitlines() if line.startswith("result ")]
    fills = counter.read_text().splitlines()
    assert len(fills) == 1, f"the fill ran {len(fills)} times"
    assert results == [f"filled by {fills[0]}"] * 64
    with Client(coord.target) as client:
        assert client.cache.get("report").value == f"filled by {fills[0]}".encode()
    with coord.redis() as r:
        assert not r.exists(*KEYS.all("report")[2:])  # no lease, no waiter left


HOLDER = textwrap.dedent(
    """
    import sys, time
    from coord_client import Client
    target, key = sys.argv[1:3]

    def fill() -> bytes:
        print("filling", flush=True)
        time.sleep(600)  # never returns: the process is killed meanwhile
        return b"never"

    with Client(target) as client:
        client.cache.get_or_set(key, fill, ttl=60, lease_ttl=3)
    """
)


def test_a_filler_that_dies_hands_its_lease_over(
    coord: CoordUnderTest, children: list[subprocess.Popen[str]]
) -> None:
    holder = _start(HOLDER, coord.target, "report")
    children.append(holder)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "filling"
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    with coord.redis() as r:
        assert r.exists(KEYS.all("report")[2])  # the dead filler's lease is still held
    calls: list[int] = []

    def fill() -> bytes:
        calls.append(1)
        return b"from the next caller"

    with Client(coord.target) as client:
        # Waits for the dead filler's lease to expire, takes it, fills.
        assert (
            client.cache.get_or_set("report", fill, ttl=60, lease_ttl=30, wait=30) == b"from the next caller"
        )
        assert client.cache.get("report").value == b"from the next caller"
    assert calls == [1]


def test_a_value_computed_across_a_delete_is_returned_but_not_stored(coord: CoordUnderTest) -> None:
    with Client(coord.target) as client:

        def fill() -> bytes:
            client.cache.delete("k")  # the source changed while the value was computed
            return b"stale"

        assert client.cache.get_or_set("k", fill, ttl=60) == b"stale"
        assert not client.cache.get("k").found
        assert client.cache.get_or_set("k", lambda: b"fresh", ttl=60) == b"fresh"
        assert client.cache.get("k").value == b"fresh"


def test_a_caller_whose_wait_ends_computes_without_storing(coord: CoordUnderTest) -> None:
    with Client(coord.target) as client:
        held = client.cache.get_or_lease("k", lease_ttl=30)
        assert held.leased and not held.entry.found and held.lease_expire_time is not None
        assert client.cache.get_or_set("k", lambda: b"mine", ttl=60, wait=0.2) == b"mine"
        assert not client.cache.get("k").found  # only the lease holder's value is stored
        stored = client.cache.set("k", b"holder's", 60, lease_token=held.lease_token)
        assert stored.stored
        assert (
            client.cache.set("k", b"again", 60, lease_token=held.lease_token).outcome is SetOutcome.LEASE_LOST
        )
        assert client.cache.get_or_set("k", lambda: b"unused") == b"holder's"


def test_without_leases_get_or_set_writes_no_lease(coord: CoordUnderTest) -> None:
    with Client(coord.target) as client:
        assert client.cache.get_or_set("k", lambda: b"v", ttl=60, lease=False) == b"v"
        assert client.cache.get_or_set("k", lambda: b"other", lease=False) == b"v"
    with coord.redis() as r:
        assert r.exists(*KEYS.all("k")) == 1  # the entry alone


def test_cached_runs_the_function_once_for_concurrent_callers(coord: CoordUnderTest) -> None:
    calls: list[int] = []
    started = threading.Event()
    release = threading.Event()
    with Client(coord.target) as client:

        @client.cache.cached(ttl=60, key="square:{n}", lease_ttl=30)
        def square(n: int) -> int:
            calls.append(n)
            started.set()
            release.wait(30)
            return n * n

        results: list[int] = []
        first = threading.Thread(target=lambda: results.append(square(7)))
        first.start()
        assert started.wait(30)
        others = [threading.Thread(target=lambda: results.append(square(7))) for _ in range(7)]
        for thread in others:
            thread.start()
        wait_for(lambda: _queued(coord, "square:7") == 7, "7 waiting callers")
        release.set()
        for thread in [first, *others]:
            thread.join(60)
    assert results == [49] * 8 and calls == [7]


def test_async_cached_and_get_or_set_fill_once(coord: CoordUnderTest) -> None:
    calls: list[str] = []

    async def main() -> None:
        async with AsyncClient(coord.target) as client:

            async def fill() -> bytes:
                calls.append("fill")
                await asyncio.sleep(0.3)
                return b"v"

            values = await asyncio.gather(*(client.cache.get_or_set("k", fill, ttl=60) for _ in range(16)))
            assert values == [b"v"] * 16

            @client.cache.cached(ttl=60, key=lambda user_id: f"user:{user_id}", wait=30)
            async def load_user(user_id: int) -> dict[str, object]:
                calls.append(f"load {user_id}")
                await asyncio.sleep(0.3)
                return {"id": user_id}

            users = await asyncio.gather(*(load_user(7) for _ in range(16)))
            assert users == [{"id": 7}] * 16
            held = await client.cache.get_or_lease("x", 30)
            assert held.leased
            assert (await client.cache.set("x", b"1", 60, lease_token=held.lease_token)).stored

    asyncio.run(main())
    assert calls == ["fill", "load 7"]


def test_bad_lease_arguments_fail_before_sending() -> None:
    with Client("127.0.0.1:1") as client:  # nothing listens: only a check before sending passes
        with pytest.raises(ValueError, match="lease_ttl"):
            client.cache.get_or_set("k", lambda: b"v", lease_ttl=0)
        with pytest.raises(ValueError, match="wait"):
            client.cache.get_or_set("k", lambda: b"v", wait=-1)
        with pytest.raises(ValueError, match="lease_ttl"):
            client.cache.cached(lease_ttl=-1)
        with pytest.raises(ValueError, match="lease_token"):
            client.cache.set("k", b"v", lease_token="")
        with pytest.raises(TypeError, match="lease_ttl"):
            client.cache.get_or_lease("k", "10s")  # type: ignore[arg-type]


def _queued(coord: CoordUnderTest, key: str) -> int:
    with coord.redis() as r:
        return int(r.zcard(KEYS.all(key)[3]))
