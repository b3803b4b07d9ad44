"""Calls in flight: a burst far larger than one channel takes is queued in the client, not cut short.

Without the bound, ``asyncio.gather`` of a few thousand calls on one channel got some of them ended
with a bare ``CANCELLED`` by gRPC itself (not applied, but the caller could not know). The counting
stub below wraps the client's real stub: it counts the calls on the channel at once, then sends them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from coord_client import AsyncClient, Client, DeadlineExceeded
from coord_client._base import DEFAULT_MAX_IN_FLIGHT


class CountingStub:
    """Forwards every method to ``stub``, counting the calls in progress (``now``, ``peak``) and sent.

    ``before`` runs on the way in (a barrier, or with ``aio`` a coroutine function such as a gate).
    """

    def __init__(self, stub: Any, *, aio: bool, before: Callable[[], Any] | None = None) -> None:
        self._stub = stub
        self._aio = aio
        self._before = before
        self._lock = threading.Lock()
        self.now = self.peak = self.sent = 0

    def _enter(self) -> None:
        with self._lock:
            self.now += 1
            self.sent += 1
            self.peak = max(self.peak, self.now)

    def _leave(self) -> None:
        with self._lock:
            self.now -= 1

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            self._enter()
            try:
                if self._before is not None:
                    self._before()
                return real(request, **kwargs)
            finally:
                self._leave()

        async def call_async(request: Any, **kwargs: Any) -> Any:
            self._enter()
            try:
                if self._before is not None:
                    await self._before()
                return await real(request, **kwargs)
            finally:
                self._leave()

        return call_async if self._aio else call


@pytest.mark.timeout(60)  # about 7 s here; a hang fails fast
def test_ten_thousand_concurrent_increments_all_answered(coord_single):
    # Single node: this checks the client's queue, not Redis. The generous deadline is the caller's
    # choice: a queued call's deadline counts from when it was called.
    async def main() -> tuple[list[Any], int]:
        async with AsyncClient(coord_single.target, timeout=60) as client:
            results = await asyncio.gather(
                *(client.cache.increment("burst") for _ in range(10_000)), return_exceptions=True
            )
            return results, (await client.cache.increment("burst", 0)).value

    results, total = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert sorted(r.value for r in results) == list(range(1, 10_001))  # each increment applied exactly once
    assert total == 10_000


def test_async_client_keeps_at_most_max_in_flight_on_the_channel(coord_single):
    async def main() -> CountingStub:
        async with AsyncClient(coord_single.target, timeout=30, max_in_flight=8) as client:
            counting = CountingStub(client.cache._stub, aio=True)
            client.cache._stub = counting
            values = await asyncio.gather(*(client.cache.increment("k") for _ in range(300)))
            assert sorted(v.value for v in values) == list(range(1, 301))
            return counting

    counting = asyncio.run(main())
    assert counting.sent == 300
    assert counting.peak == 8  # reached, never passed


def test_sync_client_keeps_at_most_max_in_flight_across_threads(coord_single):
    # The first 4 calls meet at the barrier, which opens only when 4 are on the channel at once; then
    # it is broken so that it never holds a call again (the limit, not the barrier, bounds the rest).
    barrier = threading.Barrier(4)

    def meet() -> None:
        if not barrier.broken:
            try:
                barrier.wait(timeout=10)
            except threading.BrokenBarrierError:
                return
            barrier.abort()

    with Client(coord_single.target, timeout=30, max_in_flight=4) as client:
        counting = CountingStub(client.cache._stub, aio=False, before=meet)
        client.cache._stub = counting
        with ThreadPoolExecutor(32) as pool:
            values = list(pool.map(lambda _: client.cache.increment("k"), range(200)))
    assert sorted(v.value for v in values) == list(range(1, 201))
    assert counting.sent == 200
    assert counting.peak == 4


def test_a_call_queued_past_its_deadline_is_not_sent(coord_single):
    async def main() -> None:
        gate = asyncio.Event()
        async with AsyncClient(coord_single.target, timeout=30, max_in_flight=1) as client:
            parked = asyncio.Event()

            async def park() -> None:
                parked.set()
                await gate.wait()

            counting = CountingStub(client.cache._stub, aio=True, before=park)
            client.cache._stub = counting
            first = asyncio.ensure_future(client.cache.increment("k"))
            await parked.wait()  # the first call holds the only slot, parked at the gate
            with pytest.raises(DeadlineExceeded, match="max_in_flight"):
                await client.cache.increment("k", timeout=0.1)
            assert counting.sent == 1  # the late call never reached the channel
            gate.set()
            assert (await first).value == 1
            assert (await client.cache.increment("k")).value == 2  # its slot was given back

    asyncio.run(main())


def test_max_in_flight_must_be_positive():
    assert DEFAULT_MAX_IN_FLIGHT == 512
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_in_flight"):
            Client(max_in_flight=bad)  # type: ignore[arg-type]
