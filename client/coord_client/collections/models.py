"""What the collection handles take and return: the state every call reports, and one frozen result
per kind of write.

Every write result is a :class:`Written`: ``applied`` (False only when ``if_version`` did not match:
nothing changed) and the collection's state after the call (``exists``, ``version``,
``expire_time``, ``length``), plus what the write itself reports (``added``, ``removed``, ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

Value = bytes | str
TTL = float | timedelta | None

N = TypeVar("N", int, float)
T = TypeVar("T", bytes, str)


@dataclass(frozen=True)
class CollectionState:
    """A collection as of a call. A name that holds nothing (never written, expired, deleted or
    emptied) has ``exists`` False, ``version`` 0, no ``expire_time`` and ``length`` 0."""

    exists: bool
    version: int  # strictly increasing per name, also across a delete and re-create
    expire_time: datetime | None  # UTC, by the Redis server's clock
    length: int  # fields, values or members


@dataclass(frozen=True)
class Written(CollectionState):
    """A write's result: the state after it, and whether it applied (False only when ``if_version``
    did not match; the state is then the current one, for a retry)."""

    applied: bool


@dataclass(frozen=True)
class Added(Written):
    """:meth:`Map.set` and :meth:`Set.add`: how many fields or members were new."""

    added: int


@dataclass(frozen=True)
class Removed(Written):
    """Every ``remove`` and :meth:`List.trim`: how many elements went."""

    removed: int


@dataclass(frozen=True)
class Incremented(Written, Generic[N]):
    """:meth:`Map.increment` and :meth:`SortedSet.increment`: the value (or score) after the call,
    None when not applied."""

    value: N | None


@dataclass(frozen=True)
class Pushed(Written):
    """:meth:`List.push`: ``length`` is the list's new length, ``trimmed`` counts the values that
    ``max_length`` removed from the other end."""

    trimmed: int


@dataclass(frozen=True)
class Popped(Written, Generic[T]):
    """:meth:`List.pop` and :meth:`Set.pop`: the values (or members) taken, in the order taken;
    empty when there was nothing to take (or the wait ended first)."""

    values: list[T]

    @property
    def value(self) -> T | None:
        """The first value taken, or None: what a pop of one value reads."""
        return self.values[0] if self.values else None


@dataclass(frozen=True)
class Put(Written):
    """:meth:`SortedSet.put`: the members added, and the existing ones whose score changed."""

    added: int
    updated: int


@dataclass(frozen=True)
class Deleted(CollectionState):
    """A ``delete``: ``deleted`` is True when a collection was removed. The state is then that of a
    collection that does not exist; otherwise the one before the call (absent, or another version)."""

    deleted: bool


@dataclass(frozen=True)
class Ranked:
    """A member of a sorted set with its rank (from 0, in the order asked for) and score."""

    member: str
    rank: int
    score: float


class PutCondition(enum.StrEnum):
    """Which members a :meth:`SortedSet.put` may add or change (Redis ZADD NX, XX, GT, LT)."""

    IF_NEW = "if_new"  # only add new members
    IF_EXISTS = "if_exists"  # only change existing members
    IF_HIGHER = "if_higher"  # add new members, raise existing ones, never lower them
    IF_LOWER = "if_lower"  # add new members, lower existing ones, never raise them


__all__ = [
    "TTL",
    "Added",
    "CollectionState",
    "Deleted",
    "Incremented",
    "Popped",
    "Pushed",
    "Put",
    "PutCondition",
    "Ranked",
    "Removed",
    "Value",
    "Written",
]
