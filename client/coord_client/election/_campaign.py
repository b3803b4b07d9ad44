"""A Campaign stream's leadership and state machine, for the sync and async campaigns alike.

A campaign sends ``join`` and reads answers until it is elected (``queued`` moves the lease's
anchor; a ``wait`` that runs out raises :class:`NotElected`), then renews the lease with keep-alives
while the block runs and reads the answers: ``renewed`` moves the deadline, ``lost`` or a broken
stream records the loss (the first one wins), and a lease that runs out before a renewal is confirmed
is lost by this process's clock. Everything here decides; nothing here waits. The same design as the
lock's Hold (``coord_client.lock._lease``), on the election's messages.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc

from coord.election.v1 import election_pb2

from .._convert import from_duration, utc_or_none
from ..errors import CoordError, from_grpc_error
from . import _codec
from .models import LeadershipLost, LostCallback, NotElected, ProclaimResult

log = logging.getLogger("coord_client.election")

# Keep-alives go out at this fraction of the lease, so two may be lost in a row.
KEEP_ALIVE_FRACTION = 1 / 3

# One answer read from a Campaign stream: a response, None once the stream ended, or why it failed.
Answer = election_pb2.CampaignResponse | CoordError | None


class LeadershipState:
    """What a leadership knows, for the sync and async ones alike; the campaign serializes updates.

    ``term`` is the fencing token to send with every write the leader alone may make; ``value`` what
    it published (its latest ``proclaim``); ``leader_token`` the secret that Proclaim and Resign need
    (kept out of ``repr``).
    """

    lost: threading.Event | asyncio.Event

    def __init__(self, pb: election_pb2.Leadership, anchor: float, refused: Callable[[], None]) -> None:
        """``refused`` records the loss with the campaign when a Proclaim is refused."""
        self._refused = refused
        self.name = pb.name
        self.term = pb.term
        self.value = pb.value
        self.leader_token = pb.leader_token
        self.revision = pb.revision
        self.elect_time = utc_or_none(pb.elect_time, pb.HasField("elect_time"))
        self.expire_time = utc_or_none(pb.expire_time, pb.HasField("expire_time"))
        self.valid_for = from_duration(pb.valid_for)
        self.valid_until = anchor + self.valid_for
        self.renewals = 0  # keep-alives the server confirmed
        self.lost_error: LeadershipLost | None = None
        self.resigned = False

    def __repr__(self) -> str:
        state = "lost" if self.lost_error else "resigned" if self.resigned else "leading"
        return f"<{type(self).__name__} {self.name!r} term={self.term} {state}>"

    def remaining(self) -> float:
        """Seconds of lease left by this process's monotonic clock (0 once it ran out)."""
        return max(0.0, self.valid_until - time.monotonic())

    def check(self) -> None:
        """Raise :class:`LeadershipLost` unless this is still the leader (call it before each step
        that only the leader may take; send ``term`` with the step's writes as well)."""
        if self.lost_error is not None:
            raise self.lost_error
        if self.resigned:
            raise LeadershipLost(self.name, "resigned", "the leadership ended with its block")
        if time.monotonic() >= self.valid_until:
            raise LeadershipLost(
                self.name, "lease_timeout", "no renewal was confirmed before the lease ran out"
            )

    def _proclaimed(self, result: ProclaimResult, value: bytes) -> ProclaimResult:
        """After a Proclaim of ``value`` with this term: the new value, or the loss if refused."""
        if not result.proclaimed:
            self._refused()
            self.check()
        self.value = value
        return result

    def _renewed(self, pb: election_pb2.CampaignRenewed, sent: float) -> None:
        self.valid_until = sent + from_duration(pb.valid_for)
        self.expire_time = utc_or_none(pb.expire_time, pb.HasField("expire_time"))
        self.renewals += 1

    def _lose(self, reason: str, message: str) -> LeadershipLost | None:
        """Record the loss (the first one wins); the new error, or None if already over."""
        if self.lost_error is not None or self.resigned:
            return None
        self.lost_error = LeadershipLost(self.name, reason, message)
        self.lost.set()
        return self.lost_error


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign was asked for: the join message and the options of ``campaign()``.
    ``wait`` None: as long as it takes; ``timeout`` None: the client's default call deadline."""

    join: election_pb2.CampaignRequest
    wait: float | None
    keep_alive: float | None
    raise_on_lost: bool
    on_lost: LostCallback | None
    timeout: float | None

    @property
    def name(self) -> str:
        return self.join.join.name


class _Flag(Protocol):
    def set(self) -> None: ...

    def is_set(self) -> bool: ...


LeadershipT = TypeVar("LeadershipT", bound=LeadershipState)


def stream_error(exc: grpc.RpcError) -> CoordError:
    """The CoordError of a failed Campaign stream, with the gRPC error as its cause."""
    error = from_grpc_error(exc)
    error.__cause__ = exc
    return error


class CampaignBase(Generic[LeadershipT]):
    """A campaign's state machine. Subclasses own the stream and the waiting, and set ``_stop`` (set
    when the campaign stops renewing) and ``_guard`` (what serializes the reader and the sender)."""

    _stop: _Flag
    _guard: AbstractContextManager[Any]

    def __init__(self, spec: CampaignSpec, default_timeout: float) -> None:
        self._spec = spec
        self._timeout = spec.timeout if spec.timeout is not None else default_timeout
        self._call: Any = None
        self._leadership: LeadershipT | None = None
        self._anchor = 0.0
        self._sent: collections.deque[float] = collections.deque()  # keep-alives awaiting renewal
        self._interval = 0.0
        self._next_beat = 0.0
        self._closing = False
        self._queued: election_pb2.CampaignQueued | None = None

    # ------------------------------------------------------------ campaigning

    def _opening(self) -> election_pb2.CampaignRequest:
        if self._call is not None:
            raise RuntimeError("a campaign can be entered only once; call campaign() again")
        self._anchor = time.monotonic()
        return self._spec.join

    def _not_elected(self) -> NotElected:
        queued = self._queued
        return NotElected(
            self._spec.name, queued.leader_term if queued else 0, queued.position if queued else 0
        )

    def _elected(self, answer: Answer) -> election_pb2.Leadership | None:
        """Read one answer to the join: None while queued, the leadership once elected; raises
        CoordError when the stream failed or ended."""
        if isinstance(answer, CoordError):
            raise answer
        kind = answer.WhichOneof("kind") if answer is not None else None
        if kind == "queued":
            assert answer is not None
            self._queued = answer.queued
            self._anchor = time.monotonic()  # elected later: anchored at the answer
            return None
        if kind == "elected":
            assert answer is not None
            return answer.elected
        raise CoordError(f"the Campaign stream ended unexpectedly ({kind or 'no answer'})")

    def _lead(
        self, pb: election_pb2.Leadership, make: Callable[[election_pb2.Leadership, float], LeadershipT]
    ) -> LeadershipT:
        """Start leading: the leadership (``make(pb, anchor)``), and the first keep-alive's time."""
        # Elected at once: the lease counts from the join; after waiting, from the elected answer.
        anchor = self._anchor if self._queued is None else time.monotonic()
        held = self._leadership = make(pb, anchor)
        self._interval = (
            self._spec.keep_alive
            if self._spec.keep_alive is not None
            else max(0.001, held.valid_for * KEEP_ALIVE_FRACTION)
        )
        self._next_beat = time.monotonic() + self._interval
        return held

    def _led(self) -> LeadershipT:
        assert self._leadership is not None, "the campaign was not entered"
        return self._leadership

    # ------------------------------------------------------------ leading

    def _read(self, answer: Answer) -> bool:
        """Apply one answer read while leading; False once the stream is over (the loss recorded)."""
        if answer is None or isinstance(answer, CoordError):
            self._lose("stream_broken", str(answer) if answer is not None else "the Campaign stream ended")
            return False
        kind = answer.WhichOneof("kind")
        if kind == "renewed":
            with self._guard:
                sent = self._sent.popleft() if self._sent else time.monotonic()
                self._led()._renewed(answer.renewed, sent)
        elif kind == "lost":
            self._lose(_codec.LOST_REASONS.get(answer.lost.reason, "ended"), answer.lost.message)
        return True

    def _pause(self) -> float | None:
        """Seconds the keep-alive sender may sleep; None once the lease ran out unrenewed (the loss
        is recorded, and the sender should cut the stream)."""
        leadership = self._led()
        now = time.monotonic()
        if now >= leadership.valid_until:
            self._lose("lease_timeout", "no renewal was confirmed before the lease ran out")
            return None
        return max(0.0, min(self._next_beat, leadership.valid_until) - now)

    def _beat_due(self) -> bool:
        if time.monotonic() < self._next_beat:
            return False
        with self._guard:
            self._sent.append(time.monotonic())
        self._next_beat += self._interval
        return True

    def _refused(self) -> None:
        self._lose("not_leader", "a Proclaim with this term was refused: the leadership is over")

    def _lose(self, reason: str, message: str) -> None:
        """Record the loss (the first one wins): the sender stops and ``on_lost`` is told."""
        leadership = self._led()
        with self._guard:
            if self._closing and reason == "stream_broken":
                return  # the end of a stream this side closed
            error = leadership._lose(reason, message)
        if error is not None:
            self._stop.set()
            _notify(self._spec.on_lost, error)

    # ------------------------------------------------------------ leaving

    def _close(self) -> bool:
        """From now on a broken stream is no loss; True if still leading (so resign)."""
        with self._guard:
            self._closing = True
            return self._led().lost_error is None

    def _closed(self, block_raised: bool) -> None:
        """Mark the leadership resigned unless it was lost; raise the loss if the block raised nothing."""
        leadership = self._led()
        with self._guard:
            leadership.resigned = leadership.lost_error is None
            lost = leadership.lost_error
        if lost is not None and not block_raised and self._spec.raise_on_lost:
            raise lost


def _notify(on_lost: LostCallback | None, error: LeadershipLost) -> None:
    """Call the user's ``on_lost``; its failure is logged, never leaves the leadership unwatched."""
    if on_lost is None:
        return
    try:
        on_lost(error)
    except Exception:
        log.exception("on_lost callback for election %r failed", error.name)
