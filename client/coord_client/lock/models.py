"""What the Lock service's calls return and raise: the same for :class:`LockAPI` and :class:`AsyncLockAPI`.

A missed try-lock or a wait that ran out is a falsy :class:`AcquireResult`, not an exception; the
context managers raise :class:`LockNotAcquired` instead. Times are timezone-aware ``datetime`` values
in UTC, by the Redis server's clock; ``valid_until`` deadlines are this process's ``time.monotonic()``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


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


# Called with the LockLost error when a held lock is lost (see LockAPI.hold).
LostCallback = Callable[[LockLost], object]


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
    the lease (see ``_codec.grant``); ``lock_token`` is secret and kept out of ``repr``."""

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
    last_fencing_token: int  # the newest issued for this name (0 if none, or unused for a day)
    limit: int  # the smallest limit among SHARED holders (0: none given)

    @property
    def held(self) -> bool:
        return self.holder_count > 0
