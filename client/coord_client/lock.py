# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The Lock service: :class:`LockAPI` (sync) and :class:`AsyncLockAPI` (asyncio).

Both share the request builders and response parsers below; only the sending differs. A missed
try-lock or a wait that ran out is a falsy :class:`AcquireResult`, not an exception; the context
managers raise :class:`LockNotAcquired` instead. Durations are seconds (``float``) or ``timedelta``;
times are timezone-aware ``datetime`` values in UTC, by the Redis server's clock.

    with Client() as client:
        # Held through a Hold stream: renewed in the background, released the moment the block ends.
        with client.lock("jobs/nightly", ttl=10, wait=30) as lease:
            for chunk in work:
                lease.check()                       # raises LockLost once the grant is gone
                write(chunk, fence=lease.fencing_token)

        # Plain Acquire/Release: the block must finish within the TTL.
        with client.lock.acquired("report", ttl=60, wait=5) as grant:
            ...

        # A semaphore of 3 permits; a read/write lock.
        with client.lock.semaphore("gpu", 3, wait=60): ...
        with client.lock.read_lock("config"): ...
        with client.lock.write_lock("config"): ...

        result = client.lock.acquire("L", ttl=30)  # one method per RPC, too
        if result:
            client.lock.release("L", result.lock_token)

Retries: Acquire, Extend and Hold are never retried (a second attempt could make a second grant or
report something else); Release (idempotent with its token) and Describe are retried on UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from ._base import AsyncTransport, Transport, utc
from .errors import CoordError, DeadlineExceeded, from_grpc_error

SERVICE = "coord.lock.v1.LockService"
log = logging.getLogger("coord_client.lock")
_M = f"/{SERVICE}/"

Seconds = float | timedelta

# Heartbeats on a Hold stream go out at this fraction of the lease, so two may be lost in a row.
HEARTBEAT_FRACTION = 1 / 3


class Mode(enum.StrEnum):
    """How a grant shares the lock: ``exclusive`` (mutex, writer) or ``shared`` (permit, reader)."""

    EXCLUSIVE = "exclusive"
    SHARED = "shared"


class ReleaseOutcome(enum.StrEnum):
    """What a Release did; only RELEASED means this call (or an earlier one) ended the grant."""

    RELEASED = "released"
    EXPIRED = "expired"
    NOT_HELD = "not_held"
    HELD_BY_OTHER = "held_by_other"


class ExtendOutcome(enum.StrEnum):
    """What an Extend did; EXTENDED and RESUMED mean the caller holds the lock."""

    EXTENDED = "extended"
    RESUMED = "resumed"
    EXPIRED = "expired"
    RELEASED = "released"
    NOT_HELD = "not_held"
    HELD_BY_OTHER = "held_by_other"


_MODE_PB = {Mode.EXCLUSIVE: lock_pb2.LOCK_MODE_EXCLUSIVE, Mode.SHARED: lock_pb2.LOCK_MODE_SHARED}
_MODE_OF = {v: k for k, v in _MODE_PB.items()}
_RELEASE_OUTCOMES = {
    lock_pb2.RELEASE_OUTCOME_RELEASED: ReleaseOutcome.RELEASED,
    lock_pb2.RELEASE_OUTCOME_EXPIRED: ReleaseOutcome.EXPIRED,
    lock_pb2.RELEASE_OUTCOME_NOT_HELD: ReleaseOutcome.NOT_HELD,
    lock_pb2.RELEASE_OUTCOME_HELD_BY_OTHER: ReleaseOutcome.HELD_BY_OTHER,
}
_EXTEND_OUTCOMES = {
    lock_pb2.EXTEND_OUTCOME_EXTENDED: ExtendOutcome.EXTENDED,
    lock_pb2.EXTEND_OUTCOME_RESUMED: ExtendOutcome.RESUMED,
    lock_pb2.EXTEND_OUTCOME_EXPIRED: ExtendOutcome.EXPIRED,
    lock_pb2.EXTEND_OUTCOME_RELEASED: ExtendOutcome.RELEASED,
    lock_pb2.EXTEND_OUTCOME_NOT_HELD: ExtendOutcome.NOT_HELD,
    lock_pb2.EXTEND_OUTCOME_HELD_BY_OTHER: ExtendOutcome.HELD_BY_OTHER,
}
_LOST_REASONS = {
    lock_pb2.LOST_REASON_EXPIRED: "expired",
    lock_pb2.LOST_REASON_NOT_HELD: "not_held",
    lock_pb2.LOST_REASON_BACKEND_UNAVAILABLE: "backend_unavailable",
}


# ---------------------------------------------------------------- errors


class LockNotAcquired(Exception):
    """A context manager did not get the lock: a try-lock found it taken, or the wait ran out.

    ``holders`` are the holders at that moment (at most 16), ``queue_position`` the caller's place
    in the queue when its wait ended (0 for a try-lock).
    """

    def __init__(self, name: str, holders: list[Holder], queue_position: int = 0) -> None:
        held = ", ".join(h.owner or "(no owner label)" for h in holders) or "nobody"
        where = f"; was number {queue_position} in the queue" if queue_position else ""
        super().__init__(f"lock {name!r} not acquired: held by {held}{where}")
        self.name = name
        self.holders = holders
        self.queue_position = queue_position


class LockLost(Exception):
    """A held lock is gone: whatever runs after this point is not protected by it.

    ``reason`` is ``expired`` (no renewal in time), ``not_held`` (the grant was released or
    removed elsewhere), ``backend_unavailable`` (the server could not reach Redis to renew it),
    ``stream_broken`` (the Hold stream failed), ``lease_timeout`` (no renewal was confirmed before
    the lease ran out by this process's clock) or ``released`` (the holder already let it go).
    """

    def __init__(self, name: str, reason: str, message: str = "") -> None:
        super().__init__(f"lock {name!r} lost ({reason})" + (f": {message}" if message else ""))
        self.name = name
        self.reason = reason
        self.message = message


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Holder:
    """One current grant as others see it (never with its lock token)."""

    owner: str
    mode: Mode
    fencing_token: int
    expire_time: datetime | None
    remaining: float  # seconds of lease left when the server answered
    limit: int  # the most SHARED holders this holder accepted (0: exclusive, or no limit)


@dataclass(frozen=True)
class Grant:
    """A successful acquisition. ``valid_until`` is this process's ``time.monotonic()`` deadline for
    the lease (see :func:`_grant`); ``lock_token`` is secret and kept out of ``repr``."""

    name: str
    lock_token: str = field(repr=False)
    fencing_token: int
    expire_time: datetime | None
    valid_for: float  # seconds of lease left when the server answered
    mode: Mode
    valid_until: float

    def remaining(self) -> float:
        """Seconds of lease left by this process's monotonic clock (0 once it ran out)."""
        return max(0.0, self.valid_until - time.monotonic())


@dataclass(frozen=True)
class AcquireResult:
    """An Acquire result; truthy when acquired. When not: ``holders`` (at most 16), and the caller's
    ``queue_position`` when its wait ended (0 for a try-lock); ``queue_length`` is the queue then."""

    acquired: bool
    grant: Grant | None
    holders: list[Holder] = field(default_factory=list)
    queue_position: int = 0
    queue_length: int = 0

    def __bool__(self) -> bool:
        return self.acquired

    @property
    def lock_token(self) -> str:
        """The grant's secret token ("" when not acquired)."""
        return self.grant.lock_token if self.grant else ""

    @property
    def fencing_token(self) -> int:
        """The grant's fencing token (0 when not acquired)."""
        return self.grant.fencing_token if self.grant else 0

    @property
    def expire_time(self) -> datetime | None:
        return self.grant.expire_time if self.grant else None


@dataclass(frozen=True)
class ReleaseResult:
    """A Release result; truthy when the grant is ended (now or by an earlier call with the token)."""

    name: str
    outcome: ReleaseOutcome

    @property
    def released(self) -> bool:
        return self.outcome is ReleaseOutcome.RELEASED

    def __bool__(self) -> bool:
        return self.released


@dataclass(frozen=True)
class ExtendResult:
    """An Extend result; truthy when the caller holds the lock (EXTENDED or RESUMED). The other
    fields are set only then."""

    name: str
    outcome: ExtendOutcome
    expire_time: datetime | None = None
    valid_for: float = 0.0
    fencing_token: int = 0
    valid_until: float = 0.0  # time.monotonic() deadline, from when the request was sent

    @property
    def held(self) -> bool:
        return self.outcome in (ExtendOutcome.EXTENDED, ExtendOutcome.RESUMED)

    def __bool__(self) -> bool:
        return self.held


@dataclass(frozen=True)
class LockInfo:
    """A Describe result: a snapshot of one lock."""

    name: str
    mode: Mode | None  # None when nobody holds it
    holders: list[Holder]  # oldest grant first, at most 100
    holder_count: int
    queue_length: int
    last_fencing_token: int  # the newest ever issued for this name (0 if none)
    limit: int  # the smallest limit among SHARED holders (0: none given)

    @property
    def held(self) -> bool:
        return self.holder_count > 0


# ---------------------------------------------------------------- builders and parsers


def _seconds(value: Seconds | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{name} must be seconds (float) or a timedelta, not {type(value).__name__}")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{name} must be a finite number of seconds, zero or more (got {value!r})")
    return seconds


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if not seconds:
        return None  # unset: the server's default (ttl) or no waiting (wait)
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _mode(mode: Mode | str | None, limit: int | None) -> Mode:
    """The requested mode; without one, a ``limit`` means a semaphore (SHARED), else a mutex."""
    if mode is None:
        return Mode.SHARED if limit is not None else Mode.EXCLUSIVE
    try:
        return Mode(mode)
    except ValueError:
        raise ValueError(f"mode must be 'exclusive' or 'shared' (got {mode!r})") from None


def _acquire_request(
    name: str,
    *,
    ttl: Seconds | None,
    wait: Seconds | None,
    mode: Mode | str | None,
    limit: int | None,
    owner: str,
) -> tuple[lock_pb2.AcquireRequest, float]:
    """The request, and the wait in seconds (0 for a try-lock)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    wait_s = _seconds(wait, "wait") or 0.0
    request = lock_pb2.AcquireRequest(
        name=name,
        mode=_MODE_PB[_mode(mode, limit)],
        ttl=_duration(_seconds(ttl, "ttl")),
        wait=_duration(wait_s),
        owner=owner,
    )
    if limit is not None:
        request.limit = limit
    return request, wait_s


def _time(stamp: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    return utc(stamp) if present else None


def _holder(pb: lock_pb2.Holder) -> Holder:
    return Holder(
        owner=pb.owner,
        mode=_MODE_OF.get(pb.mode, Mode.EXCLUSIVE),
        fencing_token=pb.fencing_token,
        expire_time=_time(pb.expire_time, pb.HasField("expire_time")),
        remaining=pb.remaining.ToNanoseconds() / 1e9,
        limit=pb.limit,
    )


def _grant(pb: lock_pb2.Grant, anchor: float) -> Grant:
    """A Grant whose local deadline is ``anchor`` (a ``time.monotonic()`` reading) + ``valid_for``.

    The anchor is when the request was sent for a try-lock, which errs on the safe side whatever the
    clocks do. A grant made after waiting can only be anchored when its answer arrives, so its
    deadline is late by the one-way network delay; keep a margin.
    """
    valid_for = pb.valid_for.ToNanoseconds() / 1e9
    return Grant(
        name=pb.name,
        lock_token=pb.lock_token,
        fencing_token=pb.fencing_token,
        expire_time=_time(pb.expire_time, pb.HasField("expire_time")),
        valid_for=valid_for,
        mode=_MODE_OF.get(pb.mode, Mode.EXCLUSIVE),
        valid_until=anchor + valid_for,
    )


def _acquire_result(pb: lock_pb2.AcquireResponse, sent: float, waited: bool) -> AcquireResult:
    if pb.acquired:
        return AcquireResult(True, _grant(pb.grant, time.monotonic() if waited else sent))
    return AcquireResult(False, None, [_holder(h) for h in pb.holders], pb.queue_position, pb.queue_length)


def _release_request(name: str, token: str) -> lock_pb2.ReleaseRequest:
    return lock_pb2.ReleaseRequest(name=name, lock_token=token)


def _extend_request(name: str, token: str, ttl: Seconds | None, resume: bool) -> lock_pb2.ExtendRequest:
    return lock_pb2.ExtendRequest(
        name=name, lock_token=token, ttl=_duration(_seconds(ttl, "ttl")), resume=resume
    )


def _extend_result(name: str, pb: lock_pb2.ExtendResponse, sent: float) -> ExtendResult:
    outcome = _EXTEND_OUTCOMES.get(pb.outcome, ExtendOutcome.NOT_HELD)
    if outcome not in (ExtendOutcome.EXTENDED, ExtendOutcome.RESUMED):
        return ExtendResult(name, outcome)
    valid_for = pb.valid_for.ToNanoseconds() / 1e9
    expires = _time(pb.expire_time, pb.HasField("expire_time"))
    return ExtendResult(name, outcome, expires, valid_for, pb.fencing_token, sent + valid_for)


def _lock_info(pb: lock_pb2.DescribeResponse) -> LockInfo:
    return LockInfo(
        name=pb.name,
        mode=_MODE_OF.get(pb.mode),
        holders=[_holder(h) for h in pb.holders],
        holder_count=pb.holder_count,
        queue_length=pb.queue_length,
        last_fencing_token=pb.last_fencing_token,
        limit=pb.limit,
    )


def _call_timeout(transport: Transport | AsyncTransport, timeout: float | None, wait_s: float) -> float:
    """A waiting Acquire's deadline covers its wait plus the usual call deadline."""
    return timeout if timeout is not None else transport.timeout + wait_s


# ---------------------------------------------------------------- the lease of a Hold stream


_HEARTBEAT = lock_pb2.HoldRequest(heartbeat=lock_pb2.HoldHeartbeat())
_RELEASE = lock_pb2.HoldRequest(release=lock_pb2.HoldRelease())


class _LeaseState:
    """What a lease knows, for the sync and async leases alike; the owner serializes updates."""

    lost: threading.Event | asyncio.Event

    def __init__(self, grant: Grant) -> None:
        self.grant = grant
        self.name = grant.name
        self.mode = grant.mode
        self.lock_token = grant.lock_token
        self.fencing_token = grant.fencing_token
        self.expire_time = grant.expire_time
        self.valid_until = grant.valid_until
        self.renewals = 0  # heartbeats the server confirmed
        self.lost_error: LockLost | None = None
        self.released = False

    def __repr__(self) -> str:
        state = "lost" if self.lost_error else "released" if self.released else "held"
        return f"<{type(self).__name__} {self.name!r} fencing_token={self.fencing_token} {state}>"

    def remaining(self) -> float:
        """Seconds of lease left by this process's monotonic clock (0 once it ran out)."""
        return max(0.0, self.valid_until - time.monotonic())

    def check(self) -> None:
        """Raise :class:`LockLost` unless the lock is still held (call it before each protected step)."""
        if self.lost_error is not None:
            raise self.lost_error
        if self.released:
            raise LockLost(self.name, "released", "the lease was released when its block ended")
        if time.monotonic() >= self.valid_until:
            raise LockLost(self.name, "lease_timeout", "no renewal was confirmed before the lease ran out")

    def _renewed(self, pb: lock_pb2.HoldRenewed, sent: float) -> None:
        valid_for = pb.valid_for.ToNanoseconds() / 1e9
        self.valid_until = sent + valid_for
        self.expire_time = _time(pb.expire_time, pb.HasField("expire_time"))
        self.renewals += 1

    def _lose(self, reason: str, message: str) -> LockLost | None:
        """Record the loss (the first one wins); the new error, or None if already lost."""
        if self.lost_error is not None or self.released:
            return None
        self.lost_error = LockLost(self.name, reason, message)
        self.lost.set()
        return self.lost_error


class Lease(_LeaseState):
    """A lock held through a Hold stream (sync); what ``with client.lock(...) as lease`` gives.

    ``fencing_token`` goes with every write to the protected resource. ``lost`` is a
    ``threading.Event`` set the moment the grant is known to be gone (the server said so, the stream
    broke, or no renewal came back before the lease ran out); :meth:`check` raises :class:`LockLost`
    from then on. ``renewals`` counts the heartbeats the server confirmed.
    """

    lost: threading.Event

    def __init__(self, grant: Grant) -> None:
        super().__init__(grant)
        self.lost = threading.Event()


class AsyncLease(_LeaseState):
    """The asyncio twin of :class:`Lease`: ``lost`` is an ``asyncio.Event``."""

    lost: asyncio.Event

    def __init__(self, grant: Grant) -> None:
        super().__init__(grant)
        self.lost = asyncio.Event()


def _notify(on_lost: LostCallback | None, error: LockLost) -> None:
    """Call the user's ``on_lost`` callback; its failure is logged, never lets the lease go unwatched."""
    if on_lost is None:
        return
    try:
        on_lost(error)
    except Exception:
        log.exception("on_lost callback for lock %r failed", error.name)


def _lost_of(pb: lock_pb2.HoldLost) -> tuple[str, str]:
    return _LOST_REASONS.get(pb.reason, "not_held"), pb.message


def _interval(lease: _LeaseState, heartbeat: float | None) -> float:
    return heartbeat if heartbeat is not None else max(0.001, lease.grant.valid_for * HEARTBEAT_FRACTION)


LostCallback = Callable[[LockLost], object]


class Hold:
    """What :meth:`LockAPI.hold` returns: ``with`` it to hold the lock through a Hold stream.

    Entering sends the acquire and waits (up to ``wait``) for the grant, raising
    :class:`LockNotAcquired` without one. While the block runs, one thread sends heartbeats every
    ``heartbeat`` seconds (a third of the lease by default) and another reads the answers. Leaving
    the block releases the lock at once and waits for the server's confirmation (the stream is cut
    if it does not come within the call deadline, which releases it too). If the lease was lost and
    the block itself raised nothing, leaving it raises :class:`LockLost` (``raise_on_lost=False``
    turns that off): work done in the block may not have been protected.
    """

    def __init__(
        self,
        api: LockAPI,
        *,
        request: lock_pb2.AcquireRequest,
        wait_s: float,
        heartbeat: float | None,
        raise_on_lost: bool,
        on_lost: LostCallback | None,
        timeout: float | None,
    ) -> None:
        self._api = api
        self._request = request
        self._wait = wait_s
        self._heartbeat = heartbeat
        self._raise_on_lost = raise_on_lost
        self._on_lost = on_lost
        self._timeout = timeout if timeout is not None else api._t.timeout
        self._requests: queue.SimpleQueue[lock_pb2.HoldRequest | None] = queue.SimpleQueue()
        self._call: Any = None
        self._lease: Lease | None = None
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._closing = False
        self._threads: list[threading.Thread] = []
        self.release_outcome: ReleaseOutcome | None = None

    def __enter__(self) -> Lease:
        if self._call is not None:
            raise RuntimeError("a Hold can be entered only once; call hold() again")
        self._requests.put(lock_pb2.HoldRequest(acquire=self._request))
        anchor = time.monotonic()
        self._call = self._api._stub.Hold(iter(self._requests.get, None), metadata=self._api._t.metadata)
        # The server bounds the wait; this bounds a server that never answers.
        expired = threading.Event()

        def give_up() -> None:
            expired.set()
            self._call.cancel()

        watchdog = threading.Timer(self._wait + self._timeout, give_up)
        watchdog.daemon = True
        watchdog.start()
        granted = False
        try:
            while True:
                response = self._next()
                kind = response.WhichOneof("kind") if response is not None else None
                if kind == "queued":
                    anchor = time.monotonic()
                    continue
                if kind == "acquired":
                    granted = True
                    break
                if kind == "not_acquired":
                    pb = response.not_acquired  # type: ignore[union-attr]
                    raise LockNotAcquired(
                        self._request.name, [_holder(h) for h in pb.holders], pb.queue_position
                    )
                raise CoordError(f"the Hold stream ended unexpectedly ({kind or 'no answer'})")
        except CoordError as error:
            if expired.is_set():
                raise DeadlineExceeded("no answer to the Hold request in time") from error
            raise
        finally:
            watchdog.cancel()
            if not granted:  # end the request stream (freeing its thread) and the call
                self._requests.put(None)
                self._call.cancel()  # the server leaves the queue, or releases a grant that raced
        assert response is not None
        self._lease = Lease(_grant(response.acquired, anchor))
        for target, label in ((self._read, "reader"), (self._beat, "heartbeat")):
            thread = threading.Thread(target=target, name=f"coord-lock-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self._lease

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease = self._lease
        assert lease is not None
        self._stop.set()
        self._threads[1].join()  # the heartbeat thread sends nothing from now on
        with self._lock:
            self._closing = True
            lost = lease.lost_error
        if lost is None:
            self._requests.put(_RELEASE)
        self._requests.put(None)
        if lost is not None or not self._finished.wait(self._timeout):
            self._call.cancel()  # a broken stream is released by the server at once, too
        self._threads[0].join(self._timeout)
        with self._lock:
            lease.released = lease.lost_error is None
            lost = lease.lost_error
        if lost is not None and exc_type is None and self._raise_on_lost:
            raise lost

    def _next(self) -> lock_pb2.HoldResponse | None:
        try:
            response: lock_pb2.HoldResponse = next(self._call)
        except StopIteration:
            return None
        except grpc.RpcError as exc:
            raise from_grpc_error(exc) from exc
        return response

    def _lose(self, reason: str, message: str) -> None:
        assert self._lease is not None
        with self._lock:
            if self._closing and reason == "stream_broken":
                return  # the end of a stream this side closed
            error = self._lease._lose(reason, message)
        if error is not None:
            self._stop.set()
            _notify(self._on_lost, error)

    def _read(self) -> None:
        """The reader thread: renewals move the deadline; lost, an error or the end mark the loss."""
        assert self._lease is not None
        try:
            while True:
                try:
                    response = self._next()
                except CoordError as error:
                    self._lose("stream_broken", str(error))
                    return
                if response is None:
                    self._lose("stream_broken", "the Hold stream ended")
                    return
                kind = response.WhichOneof("kind")
                if kind == "renewed":
                    with self._lock:
                        sent = self._sent.popleft() if self._sent else time.monotonic()
                        self._lease._renewed(response.renewed, sent)
                elif kind == "lost":
                    self._lose(*_lost_of(response.lost))
                elif kind == "released":
                    self.release_outcome = _RELEASE_OUTCOMES.get(response.released.outcome)
        finally:
            self._finished.set()

    def _beat(self) -> None:
        """The heartbeat thread: renew every interval; notice a lease that ran out unconfirmed."""
        lease = self._lease
        assert lease is not None
        interval = _interval(lease, self._heartbeat)
        next_beat = time.monotonic() + interval
        while True:
            now = time.monotonic()
            if now >= lease.valid_until:
                self._lose("lease_timeout", "no renewal was confirmed before the lease ran out")
                self._call.cancel()
                return
            if self._stop.wait(max(0.0, min(next_beat, lease.valid_until) - now)):
                return
            if time.monotonic() >= next_beat:
                with self._lock:
                    self._sent.append(time.monotonic())
                    self._requests.put(_HEARTBEAT)
                next_beat += interval


class AsyncHold:
    """What :meth:`AsyncLockAPI.hold` returns: ``async with`` it (see :class:`Hold`).

    One task sends heartbeats and another reads the answers; both end with the block.
    """

    def __init__(
        self,
        api: AsyncLockAPI,
        *,
        request: lock_pb2.AcquireRequest,
        wait_s: float,
        heartbeat: float | None,
        raise_on_lost: bool,
        on_lost: LostCallback | None,
        timeout: float | None,
    ) -> None:
        self._api = api
        self._request = request
        self._wait = wait_s
        self._heartbeat = heartbeat
        self._raise_on_lost = raise_on_lost
        self._on_lost = on_lost
        self._timeout = timeout if timeout is not None else api._t.timeout
        self._call: Any = None
        self._lease: AsyncLease | None = None
        self._sent: collections.deque[float] = collections.deque()
        self._stop = asyncio.Event()
        self._closing = False
        self._reader: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self.release_outcome: ReleaseOutcome | None = None

    async def __aenter__(self) -> AsyncLease:
        if self._call is not None:
            raise RuntimeError("a Hold can be entered only once; call hold() again")
        self._call = self._api._stub.Hold(None, metadata=self._api._t.metadata)
        anchor = time.monotonic()
        try:
            await self._call.write(lock_pb2.HoldRequest(acquire=self._request))
            async with asyncio.timeout(self._wait + self._timeout):
                while True:
                    response = await self._read_one()
                    kind = response.WhichOneof("kind") if response is not None else None
                    if kind == "queued":
                        anchor = time.monotonic()
                        continue
                    if kind == "acquired":
                        break
                    if kind == "not_acquired":
                        pb = response.not_acquired  # type: ignore[union-attr]
                        raise LockNotAcquired(
                            self._request.name, [_holder(h) for h in pb.holders], pb.queue_position
                        )
                    raise CoordError(f"the Hold stream ended unexpectedly ({kind or 'no answer'})")
        except TimeoutError as error:
            self._call.cancel()
            raise DeadlineExceeded("no answer to the Hold request in time") from error
        except BaseException:
            self._call.cancel()  # the server leaves the queue or releases at once
            raise
        assert response is not None
        self._lease = AsyncLease(_grant(response.acquired, anchor))
        self._reader = asyncio.create_task(self._read())
        self._beater = asyncio.create_task(self._beat())
        return self._lease

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease, reader, beater = self._lease, self._reader, self._beater
        assert lease is not None and reader is not None and beater is not None
        self._stop.set()
        await beater  # it ends after its current write, never in the middle of one
        self._closing = True
        try:
            if lease.lost_error is None:
                await self._call.write(_RELEASE)
                await self._call.done_writing()
                await asyncio.wait_for(asyncio.shield(reader), self._timeout)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError, asyncio.InvalidStateError):
            pass  # the stream is cut below, which releases the lock at once as well
        finally:
            self._call.cancel()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        lease.released = lease.lost_error is None
        if lease.lost_error is not None and exc_type is None and self._raise_on_lost:
            raise lease.lost_error

    async def _read_one(self) -> lock_pb2.HoldResponse | None:
        try:
            response = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise from_grpc_error(exc) from exc
        if response is grpc.aio.EOF:  # type: ignore[attr-defined]
            return None
        assert isinstance(response, lock_pb2.HoldResponse)
        return response

    def _lose(self, reason: str, message: str) -> None:
        assert self._lease is not None
        if self._closing and reason == "stream_broken":
            return
        error = self._lease._lose(reason, message)
        if error is not None:
            self._stop.set()
            _notify(self._on_lost, error)

    async def _read(self) -> None:
        assert self._lease is not None
        while True:
            try:
                response = await self._read_one()
            except CoordError as error:
                self._lose("stream_broken", str(error))
                return
            if response is None:
                self._lose("stream_broken", "the Hold stream ended")
                return
            kind = response.WhichOneof("kind")
            if kind == "renewed":
                sent = self._sent.popleft() if self._sent else time.monotonic()
                self._lease._renewed(response.renewed, sent)
            elif kind == "lost":
                self._lose(*_lost_of(response.lost))
            elif kind == "released":
                self.release_outcome = _RELEASE_OUTCOMES.get(response.released.outcome)

    async def _beat(self) -> None:
        lease = self._lease
        assert lease is not None
        interval = _interval(lease, self._heartbeat)
        next_beat = time.monotonic() + interval
        while True:
            now = time.monotonic()
            if now >= lease.valid_until:
                self._lose("lease_timeout", "no renewal was confirmed before the lease ran out")
                self._call.cancel()
                return
            try:
                await asyncio.wait_for(self._stop.wait(), max(0.0, min(next_beat, lease.valid_until) - now))
                return
            except TimeoutError:
                pass
            if time.monotonic() >= next_beat:
                self._sent.append(time.monotonic())
                try:
                    await self._call.write(_HEARTBEAT)
                except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                    return  # the reader reports the broken stream
                next_beat += interval


class Acquired:
    """What :meth:`LockAPI.acquired` returns: Acquire on enter (or :class:`LockNotAcquired`), Release
    on exit. Nothing renews the lease: the block must end within the TTL."""

    def __init__(self, api: LockAPI, kwargs: dict[str, Any]) -> None:
        self._api, self._kwargs = api, kwargs
        self.grant: Grant | None = None
        self.release_result: ReleaseResult | None = None

    def __enter__(self) -> Grant:
        result = self._api.acquire(**self._kwargs)
        if result.grant is None:
            raise LockNotAcquired(self._kwargs["name"], result.holders, result.queue_position)
        self.grant = result.grant
        return result.grant

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.grant is not None
        try:
            self.release_result = self._api.release(self.grant.name, self.grant.lock_token)
        except CoordError:
            if exc_type is None:
                raise  # otherwise the block's own exception matters more; the lease ends by its TTL


class AsyncAcquired:
    """What :meth:`AsyncLockAPI.acquired` returns (see :class:`Acquired`)."""

    def __init__(self, api: AsyncLockAPI, kwargs: dict[str, Any]) -> None:
        self._api, self._kwargs = api, kwargs
        self.grant: Grant | None = None
        self.release_result: ReleaseResult | None = None

    async def __aenter__(self) -> Grant:
        result = await self._api.acquire(**self._kwargs)
        if result.grant is None:
            raise LockNotAcquired(self._kwargs["name"], result.holders, result.queue_position)
        self.grant = result.grant
        return result.grant

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.grant is not None
        try:
            self.release_result = await self._api.release(self.grant.name, self.grant.lock_token)
        except CoordError:
            if exc_type is None:
                raise


# ---------------------------------------------------------------- sync


class LockAPI:
    """Sync access to ``coord.lock.v1.LockService``; reached as ``Client(...).lock``.

    ``client.lock(name, ...)`` is :meth:`hold`. Every method takes ``timeout`` (seconds for the
    whole call; an Acquire that waits gets ``wait`` on top of the client's default). Failures raise
    :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError or TypeError before
    anything is sent. ``mode`` is ``"exclusive"`` or ``"shared"``; left out, it is ``"shared"`` when
    a ``limit`` is given (a semaphore) and ``"exclusive"`` otherwise. ``ttl`` None means the
    server's default lease; ``wait`` None or 0 means a try-lock.
    """

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = lock_pb2_grpc.LockServiceStub(transport.channel)

    def acquire(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        timeout: float | None = None,
    ) -> AcquireResult:
        """Ask for a grant; never retried. Not getting it is a falsy result with the holders."""
        request, wait_s = _acquire_request(name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner)
        sent = time.monotonic()
        timeout = _call_timeout(self._t, timeout, wait_s)
        response = self._t.call(self._stub.Acquire, _M + "Acquire", request, timeout)
        return _acquire_result(response, sent, wait_s > 0)

    def release(self, name: str, lock_token: str, *, timeout: float | None = None) -> ReleaseResult:
        """End a grant; idempotent with its token, so retried on UNAVAILABLE."""
        request = _release_request(name, lock_token)
        response = self._t.call(self._stub.Release, _M + "Release", request, timeout)
        return ReleaseResult(name, _RELEASE_OUTCOMES.get(response.outcome, ReleaseOutcome.NOT_HELD))

    def extend(
        self,
        name: str,
        lock_token: str,
        ttl: Seconds | None = None,
        *,
        resume: bool = False,
        timeout: float | None = None,
    ) -> ExtendResult:
        """Give a live grant a new lease counted from now (``resume``: revive an expired one if no
        other grant happened since)."""
        request = _extend_request(name, lock_token, ttl, resume)
        sent = time.monotonic()
        return _extend_result(name, self._t.call(self._stub.Extend, _M + "Extend", request, timeout), sent)

    def describe(self, name: str, *, timeout: float | None = None) -> LockInfo:
        """A snapshot of the lock: holders, mode, limit, queue length, newest fencing token."""
        request = lock_pb2.DescribeRequest(name=name)
        return _lock_info(self._t.call(self._stub.Describe, _M + "Describe", request, timeout))

    def hold(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        heartbeat: Seconds | None = None,
        raise_on_lost: bool = True,
        on_lost: LostCallback | None = None,
        timeout: float | None = None,
    ) -> Hold:
        """Hold the lock through a Hold stream for the length of a ``with`` block (see :class:`Hold`).

        ``heartbeat`` is the renewal interval (default: a third of the lease); ``on_lost`` is called
        with the :class:`LockLost` error, from a background thread, when the grant is lost.
        """
        request, wait_s = _acquire_request(name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner)
        return Hold(
            self,
            request=request,
            wait_s=wait_s,
            heartbeat=_seconds(heartbeat, "heartbeat"),
            raise_on_lost=raise_on_lost,
            on_lost=on_lost,
            timeout=timeout,
        )

    __call__ = hold

    def semaphore(self, name: str, limit: int, ttl: Seconds | None = None, **options: Any) -> Hold:
        """Hold one of ``limit`` permits (every caller of ``name`` should use the same limit)."""
        return self.hold(name, ttl, mode=Mode.SHARED, limit=limit, **options)

    def read_lock(self, name: str, ttl: Seconds | None = None, **options: Any) -> Hold:
        """Hold the read side of a read/write lock: shared with other readers, not with a writer."""
        return self.hold(name, ttl, mode=Mode.SHARED, **options)

    def write_lock(self, name: str, ttl: Seconds | None = None, **options: Any) -> Hold:
        """Hold the write side of a read/write lock: alone. Waiting writers hold back later readers."""
        return self.hold(name, ttl, mode=Mode.EXCLUSIVE, **options)

    def acquired(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        timeout: float | None = None,
    ) -> Acquired:
        """Acquire for a ``with`` block and Release after it, without a stream (see :class:`Acquired`)."""
        kwargs = dict(name=name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner, timeout=timeout)
        return Acquired(self, kwargs)


# ---------------------------------------------------------------- async


class AsyncLockAPI:
    """Asyncio access to ``coord.lock.v1.LockService``; reached as ``AsyncClient(...).lock``.

    The same methods, arguments and results as :class:`LockAPI`, as coroutines; the context
    managers are used with ``async with``.
    """

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub = lock_pb2_grpc.LockServiceStub(transport.channel)

    async def acquire(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        timeout: float | None = None,
    ) -> AcquireResult:
        """Ask for a grant (see :meth:`LockAPI.acquire`)."""
        request, wait_s = _acquire_request(name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner)
        sent = time.monotonic()
        timeout = _call_timeout(self._t, timeout, wait_s)
        response = await self._t.call(self._stub.Acquire, _M + "Acquire", request, timeout)
        return _acquire_result(response, sent, wait_s > 0)

    async def release(self, name: str, lock_token: str, *, timeout: float | None = None) -> ReleaseResult:
        """End a grant; idempotent with its token, so retried on UNAVAILABLE."""
        request = _release_request(name, lock_token)
        response = await self._t.call(self._stub.Release, _M + "Release", request, timeout)
        return ReleaseResult(name, _RELEASE_OUTCOMES.get(response.outcome, ReleaseOutcome.NOT_HELD))

    async def extend(
        self,
        name: str,
        lock_token: str,
        ttl: Seconds | None = None,
        *,
        resume: bool = False,
        timeout: float | None = None,
    ) -> ExtendResult:
        """Give a live grant a new lease (see :meth:`LockAPI.extend`)."""
        request = _extend_request(name, lock_token, ttl, resume)
        sent = time.monotonic()
        response = await self._t.call(self._stub.Extend, _M + "Extend", request, timeout)
        return _extend_result(name, response, sent)

    async def describe(self, name: str, *, timeout: float | None = None) -> LockInfo:
        """A snapshot of the lock (see :meth:`LockAPI.describe`)."""
        request = lock_pb2.DescribeRequest(name=name)
        return _lock_info(await self._t.call(self._stub.Describe, _M + "Describe", request, timeout))

    def hold(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        heartbeat: Seconds | None = None,
        raise_on_lost: bool = True,
        on_lost: LostCallback | None = None,
        timeout: float | None = None,
    ) -> AsyncHold:
        """Hold the lock for an ``async with`` block (see :meth:`LockAPI.hold`); ``on_lost`` runs
        in the event loop."""
        request, wait_s = _acquire_request(name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner)
        return AsyncHold(
            self,
            request=request,
            wait_s=wait_s,
            heartbeat=_seconds(heartbeat, "heartbeat"),
            raise_on_lost=raise_on_lost,
            on_lost=on_lost,
            timeout=timeout,
        )

    __call__ = hold

    def semaphore(self, name: str, limit: int, ttl: Seconds | None = None, **options: Any) -> AsyncHold:
        """Hold one of ``limit`` permits (see :meth:`LockAPI.semaphore`)."""
        return self.hold(name, ttl, mode=Mode.SHARED, limit=limit, **options)

    def read_lock(self, name: str, ttl: Seconds | None = None, **options: Any) -> AsyncHold:
        """Hold the read side of a read/write lock (see :meth:`LockAPI.read_lock`)."""
        return self.hold(name, ttl, mode=Mode.SHARED, **options)

    def write_lock(self, name: str, ttl: Seconds | None = None, **options: Any) -> AsyncHold:
        """Hold the write side of a read/write lock (see :meth:`LockAPI.write_lock`)."""
        return self.hold(name, ttl, mode=Mode.EXCLUSIVE, **options)

    def acquired(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        timeout: float | None = None,
    ) -> AsyncAcquired:
        """Acquire for an ``async with`` block and Release after it (see :meth:`LockAPI.acquired`)."""
        kwargs = dict(name=name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner, timeout=timeout)
        return AsyncAcquired(self, kwargs)


__all__ = [
    "HEARTBEAT_FRACTION",
    "SERVICE",
    "AcquireResult",
    "Acquired",
    "AsyncAcquired",
    "AsyncHold",
    "AsyncLease",
    "AsyncLockAPI",
    "ExtendOutcome",
    "ExtendResult",
    "Grant",
    "Hold",
    "Holder",
    "Lease",
    "LockAPI",
    "LockInfo",
    "LockLost",
    "LockNotAcquired",
    "Mode",
    "ReleaseOutcome",
    "ReleaseResult",
]
