"""The flag a stream's sending task sleeps on between frames, with a timeout for heartbeats."""

from __future__ import annotations

import asyncio


class Wake:
    """A flag one task sleeps on with a timeout: an ``asyncio.Event`` without the task that
    ``asyncio.wait_for`` makes per timed wait or the loop lookup per wait (a ``getpid`` system call
    on Python 3.11). A subscriber sleeps on it once per frame it sends. Make it inside the loop."""

    __slots__ = ("_loop", "_set", "_waiter")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, seconds: float) -> None:
        """Return when set (at once if it is) or after ``seconds``, whichever comes first."""
        if self._set:
            return
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(seconds, _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
