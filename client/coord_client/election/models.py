"""What the Election service's calls return and raise: the same for the sync and asyncio APIs.

A deposed leader's Proclaim, or a Resign of a term that already ended, is a falsy result, not an
exception (except through a :class:`Leadership`, whose ``proclaim`` raises :class:`LeadershipLost`).
Times are timezone-aware ``datetime`` values in UTC, by the Redis server's clock; ``valid_until``
deadlines are this process's ``time.monotonic()``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


class ChangeKind(enum.StrEnum):
    """What a :class:`LeaderChange` reports."""

    CURRENT = "current"  # the state, not a change: the first of a stream, or after a gap
    ELECTED = "elected"
    PROCLAIMED = "proclaimed"
    ENDED = "ended"  # nobody leads until the next ELECTED


class EndReason(enum.StrEnum):
    """Why a leadership ended: ``resigned`` (also when its Campaign stream ended) or ``expired``."""

    RESIGNED = "resigned"
    EXPIRED = "expired"


class ResignOutcome(enum.StrEnum):
    """What a Resign did; only RESIGNED means the leadership was ended by a resign (now or earlier)."""

    RESIGNED = "resigned"
    EXPIRED = "expired"
    NOT_LEADER = "not_leader"


# ---------------------------------------------------------------- errors


class LeadershipLost(Exception):
    """A leadership is gone: whatever runs after this point is not done by the leader.

    ``reason`` is ``expired`` (no renewal in time), ``ended`` (it was ended elsewhere: a Resign with
    its term), ``backend_unavailable`` (the server could not reach Redis to renew it),
    ``stream_broken`` (the Campaign stream failed), ``lease_timeout`` (no renewal was confirmed
    before the lease ran out by this process's clock), ``not_leader`` (a Proclaim was refused) or
    ``resigned`` (the block already ended it).
    """

    def __init__(self, name: str, reason: str, message: str = "") -> None:
        super().__init__(f"leadership of {name!r} lost ({reason})" + (f": {message}" if message else ""))
        self.name = name
        self.reason = reason
        self.message = message


class NotElected(Exception):
    """A campaign with a ``wait`` was not elected in time (it has left the queue)."""

    def __init__(self, name: str, leader_term: int, position: int) -> None:
        super().__init__(
            f"not elected in {name!r} in time (number {position} in the queue, leader term {leader_term})"
        )
        self.name = name
        self.leader_term = leader_term
        self.position = position


# Called with the LeadershipLost error when a leadership is lost (see ElectionAPI.campaign).
LostCallback = Callable[[LeadershipLost], object]


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Leader:
    """A leadership as everyone sees it: its term (a fencing token), the value it published, when it
    began and when the value was last set."""

    term: int
    value: bytes
    elect_time: datetime | None
    update_time: datetime | None


@dataclass(frozen=True)
class LeaderChange:
    """One answer of an Observe stream. ``leader`` is who leads after it (None: nobody);
    ``revision`` is where to resume after it (``observe(after=...)``)."""

    kind: ChangeKind
    revision: str
    leader: Leader | None
    change_time: datetime | None
    ended_term: int = 0  # ENDED only
    end_reason: EndReason | None = None  # ENDED only
    gap: bool = False  # CURRENT only: changes after the resume point were no longer kept

    @property
    def term(self) -> int:
        """The leader's term (0 when nobody leads)."""
        return self.leader.term if self.leader else 0

    @property
    def value(self) -> bytes | None:
        """The leader's value (None when nobody leads)."""
        return self.leader.value if self.leader else None


@dataclass(frozen=True)
class LeaderState:
    """Who leads (None: nobody) and the newest revision: ``observe(after=revision)`` follows the
    changes after this answer."""

    leader: Leader | None
    revision: str


@dataclass(frozen=True)
class ProclaimResult:
    """A Proclaim result; truthy when the value was published. ``leader`` is the leadership after
    the call (another one when refused, or None)."""

    proclaimed: bool
    leader: Leader | None
    revision: str

    def __bool__(self) -> bool:
        return self.proclaimed


@dataclass(frozen=True)
class ResignResult:
    """A Resign result; truthy when the leadership is ended by a resign (now or earlier)."""

    name: str
    outcome: ResignOutcome

    @property
    def resigned(self) -> bool:
        return self.outcome is ResignOutcome.RESIGNED

    def __bool__(self) -> bool:
        return self.resigned
