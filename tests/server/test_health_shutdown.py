"""The health probe loop ends at shutdown even when a probe swallowed the task's cancellation.

A Coord resumed after SIGSTOP was once found probing on forever, its shutdown waiting on the health
task: the cancellation had been lost inside a probe. Here a probe step (the eviction gate, which a
probe awaits after Redis answered) swallows it on purpose, against a real Redis: shutting_down must
still end, and the task with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from coord_server.health import HealthMonitor
from coord_server.redis import RedisBackend

from ..conftest import RedisProcess


def test_shutdown_ends_the_probe_loop_even_when_a_probe_swallows_the_cancellation(
    redis_factory: Callable[..., RedisProcess],
) -> None:
    redis = redis_factory()

    async def main() -> tuple[bool, int]:
        backend = RedisBackend.from_url(redis.url, cluster=False, timeout=1.0)
        blocking = asyncio.Event()
        calls = 0

        async def gate() -> bool:
            nonlocal calls
            calls += 1
            if calls == 1:
                return False  # not passed yet: the next probe asks again
            blocking.set()
            with contextlib.suppress(asyncio.CancelledError):  # swallowed, as in the probe that hung
                await asyncio.sleep(3600)
            return False

        monitor = HealthMonitor(backend, ["coord.cache.v1.CacheService"], interval=0.05, gate=gate)
        try:
            await monitor.start()
            await asyncio.wait_for(blocking.wait(), 30)  # the second probe is inside the gate
            # Bounded by the test, not by the code under test: before the fix this never returned.
            # (asyncio.wait, not wait_for: nothing is cancelled, so the outcome is what the code did.)
            stopping = asyncio.create_task(monitor.shutting_down())
            ended, _ = await asyncio.wait({stopping}, timeout=30)
            task = monitor._task
            assert task is not None
            if not ended:
                task.cancel()  # let the run end; the assertions below report it
            return stopping in ended and task.done(), calls
        finally:
            await backend.close()

    done, calls = asyncio.run(main())
    assert done, "shutting_down did not return, or the health task still runs after it did"
    assert calls == 2, f"a probe ran after shutdown began ({calls} gate calls)"
