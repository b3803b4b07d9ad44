"""A waiting Acquire whose caller goes away at the very moment it is woken: the cancellation must win.

Python 3.11's ``asyncio.wait_for`` returns the inner result, and drops the cancellation, when both
land in the same loop step. A waiter that slept in it and was cancelled just as a wake-up arrived
(a release, or the wake-up every waiter gets when the wake-up subscription is confirmed) went on
waiting, still queued, for its whole wait — the caller long gone. These tests make the two land in
one step, on the lock store itself, against single-node Redis and Redis Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from coord_server.lock.keys import LockKeys
from coord_server.lock.store import LockRequest, LockStore, Mode
from coord_server.redis import RedisBackend, ScriptSet

from ..conftest import RedisClusterProcess, RedisProcess

TENANT = "cancel-races"


def _store(backend: RedisBackend) -> LockStore:
    return LockStore(
        backend,
        ScriptSet("coord_server.lock"),
        LockKeys(TENANT),
        history_ms=60_000,
        waiter_ttl_ms=300_000,  # only the cancellation can take the waiter out within the test
        heartbeat_interval=100.0,
        fallback_max=120.0,  # and only a wake-up can end its sleep
    )


def _request(owner: str, ttl_ms: int = 100_000) -> LockRequest:
    return LockRequest(name="L", mode=Mode.EXCLUSIVE, limit=1, ttl_ms=ttl_ms, owner=owner)


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def backing(request: pytest.FixtureRequest) -> RedisProcess | RedisClusterProcess:
    if request.param == "single":
        single: RedisProcess = request.getfixturevalue("redis_single")
        return single
    cluster: RedisClusterProcess = request.getfixturevalue("redis_cluster")
    return cluster


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(1000):  # 20 s at most
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def _queued(store: LockStore, length: int) -> bool:
    return (await store.describe("L", 1)).queue_length == length


async def _subscribed(backing: RedisProcess | RedisClusterProcess, channel: str) -> bool:
    nodes = backing.nodes if isinstance(backing, RedisClusterProcess) else [backing]
    total = 0
    for node in nodes:
        with node.client() as r:
            total += int(dict(r.pubsub_numsub(channel)).get(channel.encode(), 0))
    return total > 0


def test_a_cancellation_that_lands_with_a_wake_up_takes_the_waiter_out(
    backing: RedisProcess | RedisClusterProcess,
) -> None:
    async def main() -> tuple[Any, int, int]:
        backend = RedisBackend.from_url(
            backing.url, cluster=isinstance(backing, RedisClusterProcess), timeout=5.0, coalesce=True
        )
        store = _store(backend)
        try:
            holder = await store.acquire(_request("holder"), 0)
            assert holder.grant is not None
            waiting = asyncio.ensure_future(store.acquire(_request("waiter"), 60.0))
            await _eventually(lambda: _queued(store, 1), "the waiter to queue")
            # Let the waiter reach its sleep: its wake-up subscription made (every waiter tries once
            # more when it is confirmed). Should it still be trying, the cancellation meets that
            # attempt instead, which must end the call all the same.
            await _eventually(lambda: _subscribed(backing, store.waiters._channel), "the subscription")
            await asyncio.sleep(0.3)
            queued = (await store.describe("L", 1)).queue_length
            # One loop step: the wake-up and the caller's cancellation.
            store.waiters.wake_all()
            waiting.cancel()
            outcome: Any
            try:
                async with asyncio.timeout(10):  # a swallowed cancellation sleeps for 120 s
                    outcome = await waiting
            except asyncio.CancelledError:
                outcome = "cancelled"
            except TimeoutError:
                outcome = "still waiting"
            await asyncio.sleep(0)
            # The cleanup (the cancel script) runs detached; wait for it to be done.
            await _eventually(lambda: _queued(store, 0), "the waiter to leave the queue")
            return outcome, queued, (await store.describe("L", 1)).queue_length
        finally:
            await backend.close()

    outcome, queued, left = asyncio.run(main())
    assert queued == 1
    assert outcome == "cancelled", f"the cancelled waiter went on: {outcome!r}"
    assert left == 0
