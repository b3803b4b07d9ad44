"""List domain logic: the list scripts, and waiting Pops woken by Pushes. No gRPC in here.

A Pop that waits takes its place in the list's queue of waiting Pops (in Redis, shared by every Coord
server on it) and sleeps until a Push makes it eligible (first come, first served: each waiter ahead
of it reserves one value), a waiter ahead gives up, or its wait ends. Wake-ups, heartbeats and the
subscription are the shared waiter machinery (``coord_server/waiters.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...redis import RedisBackend, ScriptArg, ScriptSet
from ...waiters import Waiters, deadline_left
from ..common import LIST, CollectionStore, State, Write, Written, decode
from ..keys import CollectionKeys

log = logging.getLogger(__name__)


class End(enum.Enum):
    """An end of a list; the values are what the scripts take."""

    FRONT = "f"
    BACK = "b"


@dataclass(frozen=True)
class Pushed:
    written: Written
    trimmed: int
    wake: list[Any]  # the waiters the push made eligible, for Waiters.notify


@dataclass(frozen=True)
class Popped:
    written: Written
    values: list[bytes]
    wake: list[Any]


@dataclass(frozen=True)
class Page:
    state: State
    values: list[bytes]
    next_start: int  # -1 when the range was returned whole


@dataclass(frozen=True)
class Waiting:
    """How waiting Pops behave: heartbeat TTL and interval, and the longest sleep without a wake-up."""

    waiter_ttl_ms: int
    heartbeat_interval: float
    fallback: float


class ListStore(CollectionStore):
    kind = LIST

    def __init__(
        self,
        redis: RedisBackend,
        scripts: ScriptSet,
        keys: CollectionKeys,
        max_elements: int,
        waiting: Waiting,
        *,
        max_reply_bytes: int,
    ) -> None:
        super().__init__(redis, scripts, keys, max_elements)
        self._waiting = waiting
        # Pop and Range answer at most this many bytes of values (gRPC refuses a larger reply): a Pop
        # takes fewer values rather than take values it could not send.
        self._max_reply = max_reply_bytes
        self.waiters = Waiters(
            redis,
            keys,
            scripts["list_heartbeat"],
            heartbeat_args=[waiting.waiter_ttl_ms],
            heartbeat_interval=waiting.heartbeat_interval,
            label="list",
        )

    async def _queue_script(self, script: str, name: str, args: Sequence[ScriptArg]) -> Any:
        """Run a script that also takes the waiter queue's keys (CollectionKeys.all)."""
        return await self._redis.run(self._scripts[script], self._keys.all(name), list(args))

    # -- writes ------------------------------------------------------------------------------------

    async def push(
        self, name: str, values: Sequence[bytes], end: End, max_length: int, write: Write
    ) -> Pushed:
        """Push ``values`` and wake the waiting Pops the push made eligible."""
        reply = await self._queue_script(
            "list_push", name, [*write.args(self._max_elements), end.value, max_length, *values]
        )
        code, state, rest = decode(name, self.kind, reply, self._max_elements)
        written = Written(code == 1, state)
        if not written.applied:
            return Pushed(written, 0, [])
        pushed = Pushed(written, int(rest[0]), list(rest[1]))
        await self.waiters.notify(pushed.wake)
        return pushed

    async def remove(self, name: str, value: bytes, count: int, write: Write) -> tuple[Written, int]:
        written, rest = await self._write("list_remove", name, write, [count, value])
        return written, int(rest[0]) if written.applied else 0

    async def trim(self, name: str, start: int, stop: int, write: Write) -> tuple[Written, int]:
        written, rest = await self._write("list_trim", name, write, [start, stop])
        return written, int(rest[0]) if written.applied else 0

    # -- reads -------------------------------------------------------------------------------------

    async def range(self, name: str, start: int, stop: int, page: int) -> Page:
        _, state, rest = await self._call("list_range", name, [start, stop, page, self._max_reply])
        return Page(state, [bytes(v) for v in rest[1:]], int(rest[0]))

    # -- pop ---------------------------------------------------------------------------------------

    async def pop(self, name: str, end: End, count: int, write: Write, wait_s: float = 0.0) -> Popped:
        """Take up to ``count`` values now, or wait in the list's queue up to ``wait_s`` (and the RPC
        deadline) for a Push. ``write.if_version`` applies to a Pop that does not wait only.

        A caller that is cancelled while waiting leaves the queue at once, passing its reservation
        on; values an attempt took as the caller went away are pushed back where they came from.
        """
        wait_s = min(wait_s, deadline_left())
        if wait_s <= 0:
            popped = self._popped(name, await self._attempt(name, end, count, write, ""))
            await self.waiters.notify(popped.wake)
            return popped
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + wait_s
        async with self.waiters.waiting(name) as waiter:
            done = failed = False
            attempt: asyncio.Future[Any] | None = None
            try:
                while True:
                    waiter.woken.clear()  # before the attempt: a wake-up during it is kept
                    # Shielded: a cancelled caller must not cancel a script that may already be on its
                    # way to Redis; the cleanup waits for it instead, so the attempt can never queue
                    # the waiter again after the cleanup has taken it out (nor take values unseen).
                    attempt = asyncio.ensure_future(self._attempt(name, end, count, write, waiter.wid))
                    popped = self._popped(name, await asyncio.shield(attempt))
                    await self.waiters.notify(popped.wake)
                    if popped.values:
                        done = True
                        return popped
                    attempt = None  # answered and handled: nothing for the cleanup to wait for
                    left = ends_at - loop.time()
                    if left <= 0:
                        return popped
                    # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as
                    # the wake-up does (the cancelled caller would then wait on, queued, for its whole
                    # wait); a timeout scope around the plain await never loses one.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(left, self._waiting.fallback)):
                            await waiter.woken.wait()
            except Exception:
                failed = True
                raise
            finally:
                if not done:
                    cleanup = self._redis.detach(self._leave(name, waiter.wid, end, write, attempt))
                    # A wait that ran out (or was cancelled) has left the queue when it ends; a caller
                    # cancelled meanwhile stops waiting for the cleanup. A failed wait is answered at
                    # once: with Redis unreachable the cleanup could take as long as the failure did.
                    # Either way the cleanup runs to its end (and logs its own failure).
                    if not failed:
                        with contextlib.suppress(Exception):
                            await asyncio.shield(cleanup)

    async def _attempt(self, name: str, end: End, count: int, write: Write, wid: str) -> Any:
        args: list[ScriptArg] = [
            *write.args(self._max_elements),
            end.value,
            count,
            wid,
            self._waiting.waiter_ttl_ms,
            self.waiters.server_id,
            self._max_reply,
        ]
        return await self._queue_script("list_pop", name, args)

    def _popped(self, name: str, reply: Any) -> Popped:
        code, state, rest = decode(name, self.kind, reply, self._max_elements)
        if code != 1:
            return Popped(Written(False, state), [], [])
        return Popped(Written(True, state), [bytes(v) for v in rest[1]], list(rest[0]))

    async def _leave(
        self, name: str, wid: str, end: End, write: Write, attempt: asyncio.Future[Any] | None
    ) -> None:
        """Take a waiter that stopped waiting out of the queue, after its last attempt has been
        answered (never before it), and give back what that attempt took for a caller now gone."""
        taken: list[bytes] = []
        if attempt is not None and not attempt.cancelled():
            with contextlib.suppress(Exception):  # its failure was the caller's to see (or nobody's)
                popped = self._popped(name, await attempt)
                await self.waiters.notify(popped.wake)
                taken = popped.values
        await self.waiters.notify(await self._queue_script("list_cancel", name, [wid]))
        if taken:
            # Pushed back to the end they came from, last taken first, so they stand where they stood.
            back = Write(write.ttl_ms, write.keep_ttl)
            try:
                await self.push(name, taken[::-1], end, 0, back)
            except Exception as exc:
                log.warning(
                    "%d values a cancelled Pop took from list %r were lost: %s", len(taken), name, exc
                )
