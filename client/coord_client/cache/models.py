"""What the Cache client takes and returns: values, TTLs, fences, and one frozen result per call.

Expected outcomes are results, not exceptions: a miss is ``Entry.found == False``, a condition that
did not hold is ``SetResult.stored == False`` with its ``outcome``. The server names these results
the same way (``coord_server.cache.store``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

Value = bytes | str
TTL = float | timedelta | None


class Serializer(Protocol):
    """What ``cached`` needs to store results: the ``json`` module fits, as does ``pickle``."""

    def dumps(self, obj: Any, /) -> str | bytes: ...
    def loads(self, data: bytes, /) -> Any: ...


class SetOutcome(enum.StrEnum):
    """What a Set did; anything but STORED means the condition did not hold and nothing changed."""

    STORED = "stored"
    ALREADY_EXISTS = "already_exists"
    NOT_FOUND = "not_found"
    VERSION_MISMATCH = "version_mismatch"
    FENCED = "fenced"  # a newer holder of the fence's lock already wrote this key
    # lease_token is not the key's fill lease any more: it expired and passed on, a Delete ended it,
    # or another write filled the key first
    LEASE_LOST = "lease_lost"


class DeleteOutcome(enum.StrEnum):
    """What a Delete did to one key."""

    DELETED = "deleted"
    NOT_FOUND = "not_found"
    VERSION_MISMATCH = "version_mismatch"


@dataclass(frozen=True)
class Entry:
    """One entry as read. When ``found`` is False the other fields hold their empty defaults."""

    key: str
    found: bool
    value: bytes = b""
    version: int = 0
    expire_time: datetime | None = None  # UTC, by the Redis server's clock
    # How long the value took to compute, in seconds, as its writer said (``compute_time=``); None when
    # it did not say. ``get_or_set(early_expiry=...)`` weighs its early refreshes by it.
    compute_time: float | None = None


@dataclass(frozen=True)
class SetResult:
    """The result of one Set: ``version`` is the new version when stored, else the current one (0 if
    the key does not exist)."""

    key: str
    outcome: SetOutcome
    version: int
    expire_time: datetime | None
    fencing_token: int = 0  # fenced writes: the highest token the key accepted for that lock

    @property
    def stored(self) -> bool:
        return self.outcome is SetOutcome.STORED


@dataclass(frozen=True)
class KeyDeleteResult:
    """What happened to one key of a Delete; ``version`` is the version it had (0 if absent)."""

    key: str
    outcome: DeleteOutcome
    version: int

    @property
    def deleted(self) -> bool:
        return self.outcome is DeleteOutcome.DELETED


@dataclass(frozen=True)
class DeleteResult:
    """The result of a Delete: how many keys went, and one result per key in request order."""

    deleted_count: int
    results: list[KeyDeleteResult]


@dataclass(frozen=True)
class IncrementResult:
    """The counter after an Increment; ``created`` is True when the call created the key."""

    key: str
    value: int
    version: int
    created: bool
    expire_time: datetime | None


@dataclass(frozen=True)
class TouchResult:
    """The result of a Touch; ``found`` is False (and nothing changed) when the key does not exist."""

    key: str
    found: bool
    expire_time: datetime | None


@dataclass(frozen=True)
class FillLease:
    """The result of a ``get_or_lease``: a hit (``entry.found``), the caller's fill lease
    (``lease_token``: compute the value and ``set`` it with ``lease_token=``), or neither (the wait
    ended while another caller held the lease). ``waited`` is True when the call waited for another
    caller's fill. ``stale`` is True when ``entry`` is past its expiry, served within its stale grace
    (``serve_stale=True``); with a ``lease_token`` this caller is the one to refresh it."""

    entry: Entry
    lease_token: str = ""
    lease_expire_time: datetime | None = None  # UTC, by the Redis server's clock
    waited: bool = False
    stale: bool = False

    @property
    def leased(self) -> bool:
        return bool(self.lease_token)


@dataclass(frozen=True)
class SetItem:
    """One write of a :meth:`CacheAPI.batch_set`, with the same arguments as ``set``."""

    key: str
    value: Value
    ttl: TTL = None
    if_absent: bool = False
    if_present: bool = False
    if_version: int | None = None
    fence: FenceLike | None = None
    lease_token: str | None = None  # the fill of this lease from get_or_lease: stored only under it
    tags: Sequence[str] = ()  # labels for invalidate_tags: any of them invalidated makes it a miss
    # Kept this long past ``ttl`` as a stale value that only get_or_lease(serve_stale=True) returns.
    stale_grace: TTL = None
    compute_time: TTL = None  # how long the value took to compute (returned as Entry.compute_time)


class _HasFence(Protocol):
    name: str
    fencing_token: int


# A fenced write names the lock and the grant's fencing token: ("jobs", 1795...) or a held lease.
FenceLike = tuple[str, int] | _HasFence
