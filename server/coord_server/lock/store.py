"""Lock domain logic: runs the Lua scripts, waits for wake-ups, returns dataclasses. No gRPC in here."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..metrics.services import LockMetrics
from ..redis import RedisBackend, Script, ScriptArg, ScriptSet, text
from ..waiters import deadline_left
from .keys import LockKeys
from .waiters import lock_waiters

log = logging.getLogger(__name__)

HOLDERS_LISTED_ON_DENIAL = 16
# A waiter's fallback timer fires this long after the soonest holder expiry, so the expiry has passed
# by the Redis clock when the waiter looks again.
EXPIRY_MARGIN_S = 0.002


def new_lock_token() -> str:
    """A random lock token (144 bits of ``secrets.token_urlsafe``) that never starts with ``-``, so it
    can be passed as a command-line argument (``coordctl lock release NAME TOKEN``) as printed."""
    while True:
        token = secrets.token_urlsafe(24)
        if not token.startswith("-"):
            return token


class Mode(enum.Enum):
    """How a grant shares the lock; the values are what the scripts store."""

    EXCLUSIVE = "X"
    SHARED = "S"


class ReleaseOutcome(enum.Enum):
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    NOT_HELD = "NOT_HELD"
    HELD_BY_OTHER = "HELD_BY_OTHER"


class ExtendOutcome(enum.Enum):
    EXTENDED = "EXTENDED"
    RESUMED = "RESUMED"
    EXPIRED = "EXPIRED"
    RELEASED = "RELEASED"
    NOT_HELD = "NOT_HELD"
    HELD_BY_OTHER = "HELD_BY_OTHER"

    @property
    def holds(self) -> bool:
        return self in (ExtendOutcome.EXTENDED, ExtendOutcome.RESUMED)


@dataclass(frozen=True)
class LockRequest:
    """A validated request for a grant. ``limit`` 0 means no limit (SHARED) or not applicable."""

    name: str
    mode: Mode
    limit: int
    ttl_ms: int
    owner: str = ""


@dataclass(frozen=True)
class Holder:
    owner: str
    mode: Mode
    limit: int
    fencing_token: int
    expire_ms: int  # Unix ms by the Redis clock
    remaining_ms: int


@dataclass(frozen=True)
class Grant:
    name: str
    lock_token: str
    fencing_token: int
    mode: Mode
    expire_ms: int
    valid_for_ms: int


@dataclass(frozen=True)
class Denial:
    """Why an attempt was not granted: who holds the lock and where the caller stands in the queue."""

    holders: tuple[Holder, ...]
    queue_position: int
    queue_length: int


@dataclass(frozen=True)
class AcquireResult:
    grant: Grant | None
    denial: Denial | None

    @property
    def acquired(self) -> bool:
        return self.grant is not None


@dataclass(frozen=True)
class ExtendResult:
    outcome: ExtendOutcome
    fencing_token: int = 0
    expire_ms: int = 0
    valid_for_ms: int = 0


@dataclass(frozen=True)
class LockInfo:
    name: str
    holders: tuple[Holder, ...]
    holder_count: int
    queue_length: int
    last_fencing_token: int

    @property
    def mode(self) -> Mode | None:
        return self.holders[0].mode if self.holders else None

    @property
    def limit(self) -> int:
        limits = [h.limit for h in self.holders if h.mode is Mode.SHARED and h.limit]
        return min(limits) if limits else 0


OnQueued = Callable[[Denial], Awaitable[None]]


class LockStore:
    """Atomic lock operations on Redis, and waiting for them. Inputs are already validated."""

    def __init__(
        self,
        redis: RedisBackend,
        scripts: ScriptSet,
        keys: LockKeys,
        *,
        history_ms: int,
        waiter_ttl_ms: int,
        heartbeat_interval: float,
        fallback_max: float,
        metrics: LockMetrics | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._history_ms = history_ms
        self._waiter_ttl_ms = waiter_ttl_ms
        self._fallback_max = fallback_max
        # Every script includes the shared prelude (scripts/_lib.lua); ScriptSet composed them.
        self._acquire = scripts["acquire"]
        self._release = scripts["release"]
        self._extend = scripts["extend"]
        self._cancel = scripts["cancel"]
        self._describe = scripts["describe"]
        self.waiters = lock_waiters(
            redis,
            keys,
            scripts["heartbeat"],
            history_ms=history_ms,
            waiter_ttl_ms=waiter_ttl_ms,
            heartbeat_interval=heartbeat_interval,
        )
        # Grants by mode, waiters and their wait, when metrics are on (shared by every tenant's store).
        self._metrics = metrics
        self._granted = {mode: metrics.grants[mode.name.lower()] for mode in Mode} if metrics else {}

    async def _run(self, script: Script, name: str, args: list[ScriptArg]) -> Any:
        return await self._redis.run(script, self._keys.all(name), [self._history_ms, *args])

    # -- acquire -----------------------------------------------------------------------------------

    async def acquire(
        self, request: LockRequest, wait_s: float, on_queued: OnQueued | None = None
    ) -> AcquireResult:
        """Grant ``request`` now, or wait in the FIFO queue up to ``wait_s`` (and the RPC deadline).

        A caller that is cancelled while waiting leaves the queue at once; a grant that raced with the
        cancellation is released. ``on_queued`` is awaited once, when the caller first has to wait.
        """
        token = new_lock_token()
        metrics = self._metrics
        if wait_s <= 0:
            reply = await self._attempt(request, token, "", queue=False)
            result = await self._result(request, token, reply)
            if metrics is not None and result.acquired:
                self._count_grant(request.mode, None)
            return result
        loop = asyncio.get_running_loop()
        end = loop.time() + min(wait_s, deadline_left())
        async with self.waiters.waiting(request.name) as waiter:
            done = failed = False
            attempt: asyncio.Future[Any] | None = None
            queued_at: float | None = None  # when the first attempt was denied (for the metrics)
            try:
                while True:
                    waiter.woken.clear()  # before the attempt: a wake-up during it is kept
                    # Shielded: a cancelled caller must not cancel a script that may already be on its
                    # way to Redis (on a Cluster it can be, on another connection than the cleanup's);
                    # the cleanup waits for it instead, so the attempt can never queue the waiter again
                    # after the cleanup has taken it out.
                    attempt = asyncio.ensure_future(self._attempt(request, token, waiter.wid, queue=True))
                    reply = await asyncio.shield(attempt)
                    result = await self._result(request, token, reply)
                    if result.acquired:
                        done = True
                        if metrics is not None:
                            self._count_grant(request.mode, queued_at)
                        return result
                    if metrics is not None and queued_at is None:
                        metrics.waiting.value += 1
                        queued_at = loop.time()
                    if on_queued is not None:
                        callback, on_queued = on_queued, None
                        assert result.denial is not None
                        await callback(result.denial)
                    left = end - loop.time()
                    if left <= 0:
                        return result
                    timer = min(left, self._fallback(result.denial, int(reply[3])))
                    # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as
                    # the wake-up does (the cancelled caller would then wait on, queued, for its whole
                    # wait); a timeout scope around the plain await never loses one.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timer):
                            await waiter.woken.wait()
            except Exception:
                failed = True
                raise
            finally:
                if metrics is not None and queued_at is not None:
                    metrics.waiting.value -= 1
                if not done:
                    cleanup = self.detach(self._leave(request.name, waiter.wid, token, attempt))
                    # A wait that ran out (or was cancelled) has left the queue when it ends; a caller
                    # cancelled meanwhile stops waiting for the cleanup. A failed wait is answered at
                    # once: with Redis unreachable the cleanup could take as long as the failure did.
                    # Either way the cleanup runs to its end (and logs its own failure).
                    if not failed:
                        with contextlib.suppress(Exception):
                            await asyncio.shield(cleanup)

    def _count_grant(self, mode: Mode, queued_at: float | None) -> None:
        """A grant for the metrics; with the wait of a call that was queued (``queued_at``)."""
        assert self._metrics is not None
        self._granted[mode].value += 1
        if queued_at is not None:
            self._metrics.waited.observe(asyncio.get_running_loop().time() - queued_at)

    async def _leave(self, name: str, wid: str, token: str, attempt: asyncio.Future[Any] | None) -> None:
        """Take a waiter that stopped waiting out of the queue (and release a grant that raced with
        its cancellation), after its last attempt has been answered: never before it."""
        if attempt is not None and not attempt.cancelled():
            with contextlib.suppress(Exception):  # its failure was the caller's to see (or nobody's)
                await attempt
        await self._run(self._cancel, name, [wid, token])

    async def _attempt(self, request: LockRequest, token: str, wid: str, *, queue: bool) -> Any:
        args: list[ScriptArg] = [
            token,
            wid,
            request.mode.value,
            request.limit,
            request.ttl_ms,
            1 if queue else 0,
            self._waiter_ttl_ms,
            self.waiters.server_id,
            request.owner,
        ]
        return await self._run(self._acquire, request.name, args)

    async def _result(self, request: LockRequest, token: str, reply: Any) -> AcquireResult:
        await self.waiters.notify(reply[4])
        now_ms = int(reply[3])
        if int(reply[0]) == 1:
            expire_ms = int(reply[2])
            grant = Grant(
                request.name, token, int(reply[1]), request.mode, expire_ms, max(0, expire_ms - now_ms)
            )
            return AcquireResult(grant, None)
        holders = tuple(_holder(row, now_ms) for row in reply[5])
        return AcquireResult(None, Denial(holders, int(reply[1]), int(reply[2])))

    def _fallback(self, denial: Denial | None, now_ms: int) -> float:
        """How long to sleep without a wake-up: until the soonest holder expiry, at most the maximum."""
        if denial is None or not denial.holders:
            return self._fallback_max
        soonest = min(h.expire_ms for h in denial.holders)
        return min(self._fallback_max, max(0, soonest - now_ms) / 1000 + EXPIRY_MARGIN_S)

    # -- release, extend, describe -----------------------------------------------------------------

    async def release(self, name: str, token: str) -> ReleaseOutcome:
        reply = await self._run(self._release, name, [token])
        await self.waiters.notify(reply[1])
        return ReleaseOutcome(text(reply[0]))

    async def extend(self, name: str, token: str, ttl_ms: int, resume: bool = False) -> ExtendResult:
        reply = await self._run(self._extend, name, [token, ttl_ms, 1 if resume else 0])
        await self.waiters.notify(reply[4])
        outcome = ExtendOutcome(text(reply[0]))
        if not outcome.holds:
            return ExtendResult(outcome)
        expire_ms = int(reply[2])
        return ExtendResult(outcome, int(reply[1]), expire_ms, max(0, expire_ms - int(reply[3])))

    async def describe(self, name: str, max_holders: int) -> LockInfo:
        reply = await self._run(self._describe, name, [max_holders])
        now_ms = int(reply[0])
        holders = tuple(_holder(row, now_ms) for row in reply[4])
        return LockInfo(name, holders, int(reply[1]), int(reply[2]), int(reply[3]))

    def detach(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run cleanup ``work`` to its end even if the caller is cancelled, outside any RPC deadline;
        shutdown waits for it (RedisBackend.close)."""
        return self._redis.detach(work)


def _holder(row: Any, now_ms: int) -> Holder:
    record, expiry = text(row[0]), int(float(text(row[1])))
    # record: "state|mode|limit|fence|owner" (the owner may itself contain "|").
    parts = record.split("|", 4)
    if len(parts) < 5:
        return Holder("", Mode.EXCLUSIVE, 0, 0, expiry, max(0, expiry - now_ms))
    _, mode, limit, fence, owner = parts
    return Holder(owner, Mode(mode), int(limit), int(fence), expiry, max(0, expiry - now_ms))
