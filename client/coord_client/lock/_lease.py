"""The lease of a Hold stream, and the Hold's state machine, for the sync and async Holds alike.

A Hold sends the acquire, reads answers until it is granted (``queued`` moves the lease's anchor,
``not_acquired`` raises :class:`LockNotAcquired`), then renews the lease with heartbeats while the
block runs and reads the answers: ``renewed`` moves the deadline, ``lost`` or a broken stream records
the loss (the first one wins), and a lease that runs out before a renewal is confirmed is lost by
this process's clock. Everything here decides; nothing here waits. :class:`~.sync.Hold` runs it with
two threads and a request queue, :class:`~.aio.AsyncHold` with two tasks on a ``grpc.aio`` stream.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc

from coord.lock.v1 import lock_pb2

from .._convert import from_duration, utc_or_none
from ..errors import CoordError, from_grpc_error
from . import _codec
from .models import Grant, LockLost, LockNotAcquired, LostCallback, ReleaseOutcome

log = logging.getLogger("coord_client.lock")

# Heartbeats on a Hold stream go out at this fraction of the lease, so two may be lost in a row.
HEARTBEAT_FRACTION = 1 / 3

HEARTBEAT = lock_pb2.HoldRequest(heartbeat=lock_pb2.HoldHeartbeat())
RELEASE = lock_pb2.HoldRequest(release=lock_pb2.HoldRelease())

# One answer read from a Hold stream: a response, None once the stream ended, or why it failed.
Answer = lock_pb2.HoldResponse | CoordError | None


class LeaseState:
    """What a lease knows, for the sync and async leases alike; the Hold serializes updates."""

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
        self.valid_until = sent + from_duration(pb.valid_for)
        self.expire_time = utc_or_none(pb.expire_time, pb.HasField("expire_time"))
        self.renewals += 1

    def _lose(self, reason: str, message: str) -> LockLost | None:
        """Record the loss (the first one wins); the new error, or None if already lost."""
        if self.lost_error is not None or self.released:
            return None
        self.lost_error = LockLost(self.name, reason, message)
        self.lost.set()
        return self.lost_error


@dataclass(frozen=True)
class HoldSpec:
    """What a Hold was asked for: the acquire, its wait (seconds, 0 for a try-lock) and the options
    of :meth:`LockAPI.hold`. ``timeout`` None means the client's default call deadline."""

    request: lock_pb2.AcquireRequest
    wait: float
    heartbeat: float | None
    raise_on_lost: bool
    on_lost: LostCallback | None
    timeout: float | None


class _Flag(Protocol):
    """``threading.Event`` or ``asyncio.Event``: what the shared part of a Hold needs of its stop flag."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


LeaseT = TypeVar("LeaseT", bound=LeaseState)


def stream_error(exc: grpc.RpcError) -> CoordError:
    """The CoordError of a failed Hold stream, with the gRPC error as its cause."""
    error = from_grpc_error(exc)
    error.__cause__ = exc
    return error


class HoldBase(Generic[LeaseT]):
    """A Hold's state machine: the lease, the heartbeat schedule, loss handling and the meaning of
    each answer. Subclasses own the stream and the waiting, and set ``_stop`` (set when the Hold stops
    renewing) and ``_guard`` (what serializes the reader and the heartbeat sender)."""

    _stop: _Flag
    _guard: AbstractContextManager[Any]

    def __init__(self, spec: HoldSpec, default_timeout: float) -> None:
        self._spec = spec
        self._timeout = spec.timeout if spec.timeout is not None else default_timeout
        self._call: Any = None
        self._lease: LeaseT | None = None
        self._anchor = 0.0  # when the lease counts from (see _codec.grant)
        self._sent: collections.deque[float] = collections.deque()  # heartbeats awaiting renewal
        self._interval = 0.0
        self._next_beat = 0.0
        self._closing = False
        self.release_outcome: ReleaseOutcome | None = None

    # ------------------------------------------------------------ acquiring

    def _opening(self) -> lock_pb2.HoldRequest:
        """The first message; the lease counts from now until the server says the caller is queued."""
        if self._call is not None:
            raise RuntimeError("a Hold can be entered only once; call hold() again")
        self._anchor = time.monotonic()
        return lock_pb2.HoldRequest(acquire=self._spec.request)

    @property
    def _answer_within(self) -> float:
        """How long to wait for the grant: the server bounds the wait, this bounds a silent server."""
        return self._spec.wait + self._timeout

    def _granted(self, answer: Answer) -> lock_pb2.Grant | None:
        """Read one answer to the acquire: None while queued, the grant once acquired; raises
        :class:`LockNotAcquired` when refused and CoordError when the stream failed or ended."""
        if isinstance(answer, CoordError):
            raise answer
        kind = answer.WhichOneof("kind") if answer is not None else None
        if kind == "queued":
            self._anchor = time.monotonic()  # granted later: anchored at the answer (see _codec.grant)
            return None
        if kind == "acquired":
            assert answer is not None
            return answer.acquired
        if kind == "not_acquired":
            assert answer is not None
            refused = answer.not_acquired
            holders = [_codec.holder(h) for h in refused.holders]
            raise LockNotAcquired(self._spec.request.name, holders, refused.queue_position)
        raise CoordError(f"the Hold stream ended unexpectedly ({kind or 'no answer'})")

    def _hold(self, grant: lock_pb2.Grant, lease: type[LeaseT]) -> LeaseT:
        """Start holding ``grant``: the lease, and the first heartbeat's time."""
        held = self._lease = lease(_codec.grant(grant, self._anchor))
        self._interval = (
            self._spec.heartbeat
            if self._spec.heartbeat is not None
            else max(0.001, held.grant.valid_for * HEARTBEAT_FRACTION)
        )
        self._next_beat = time.monotonic() + self._interval
        return held

    def _held(self) -> LeaseT:
        assert self._lease is not None, "the Hold was not entered"
        return self._lease

    # ------------------------------------------------------------ holding

    def _read(self, answer: Answer) -> bool:
        """Apply one answer read while holding; False once the stream is over (the loss recorded)."""
        if answer is None or isinstance(answer, CoordError):
            self._lose("stream_broken", str(answer) if answer is not None else "the Hold stream ended")
            return False
        kind = answer.WhichOneof("kind")
        if kind == "renewed":
            with self._guard:
                sent = self._sent.popleft() if self._sent else time.monotonic()
                self._held()._renewed(answer.renewed, sent)
        elif kind == "lost":
            self._lose(*_codec.lost(answer.lost))
        elif kind == "released":
            self.release_outcome = _codec.RELEASE_OUTCOMES.get(answer.released.outcome)
        return True

    def _pause(self) -> float | None:
        """Seconds the heartbeat sender may sleep before looking again; None once the lease ran out
        with no renewal confirmed (the loss is recorded, and the sender should cut the stream)."""
        lease = self._held()
        now = time.monotonic()
        if now >= lease.valid_until:
            self._lose("lease_timeout", "no renewal was confirmed before the lease ran out")
            return None
        return max(0.0, min(self._next_beat, lease.valid_until) - now)

    def _beat_due(self) -> bool:
        """Whether a heartbeat is due now; if so it is counted as sent (its renewal counts from now)."""
        if time.monotonic() < self._next_beat:
            return False
        with self._guard:
            self._sent.append(time.monotonic())
        self._next_beat += self._interval
        return True

    def _lose(self, reason: str, message: str) -> None:
        lease = self._held()
        with self._guard:
            if self._closing and reason == "stream_broken":
                return  # the end of a stream this side closed
            error = lease._lose(reason, message)
        if error is not None:
            self._stop.set()
            _notify(self._spec.on_lost, error)

    # ------------------------------------------------------------ leaving

    def _close(self) -> bool:
        """From now on a broken stream is no loss; True if the lease is held (so release it)."""
        with self._guard:
            self._closing = True
            return self._held().lost_error is None

    def _closed(self, block_raised: bool) -> None:
        """Mark the lease released unless it was lost; raise the loss if the block raised nothing."""
        lease = self._held()
        with self._guard:
            lease.released = lease.lost_error is None
            lost = lease.lost_error
        if lost is not None and not block_raised and self._spec.raise_on_lost:
            raise lost


def _notify(on_lost: LostCallback | None, error: LockLost) -> None:
    """Call the user's ``on_lost`` callback; its failure is logged, never lets the lease go unwatched."""
    if on_lost is None:
        return
    try:
        on_lost(error)
    except Exception:
        log.exception("on_lost callback for lock %r failed", error.name)
