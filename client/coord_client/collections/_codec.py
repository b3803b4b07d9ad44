"""What the four collection codecs share: argument checks, write options, the state every response
carries, the calls every service has (Length, Delete, Touch) and reads that follow pages.

No I/O here: :mod:`.sync` and :mod:`.aio` send the same calls. Bad arguments raise ValueError or
TypeError when a call is built, before anything is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import duration_pb2

from coord.collections.v1 import collection_pb2

from .._call import Call
from .._convert import duration_field, utc_or_none
from .models import TTL, CollectionState, Deleted, Value

I = TypeVar("I")  # noqa: E741  (an item of a page)
R = TypeVar("R")

# A read that follows pages starts over this many times when the collection changes between its
# pages (a new version), so that it returns one version's elements; after that it keeps going and
# returns what it read (every element present for the whole read, at least).
RESTARTS = 2


@dataclass(frozen=True)
class Kind:
    """One collection service: its full name and the request types of the calls every service has."""

    service: str
    length: Callable[..., Any]
    delete: Callable[..., Any]
    touch: Callable[..., Any]


# A write's options as sent: None when all are the defaults (the field is left unset).
Options = collection_pb2.WriteOptions | None

# ---------------------------------------------------------------- argument checks


def name(value: str) -> str:
    """A collection name: the server checks its rules, the client only its type."""
    if not isinstance(value, str):
        raise TypeError(f"a collection name must be a str, not {type(value).__name__}")
    return value


def text(value: str, what: str) -> str:
    """A field or member (``what`` names it in the error)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def texts(values: Iterable[str], what: str) -> list[str]:
    """Fields or members: a list of str (a lone str is refused, it would be taken letter by letter)."""
    if isinstance(values, str | bytes):
        raise TypeError(f"{what} must be a list of str, not a single {type(values).__name__}")
    return [text(v, f"{what}[{i}]") for i, v in enumerate(values)]


def value_bytes(value: Value, what: str = "value") -> bytes:
    """A value as stored: bytes as they are, a str as UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


def integer(value: int, what: str, *, low: int | None = None) -> int:
    """An int (not a bool) of at least ``low``, within a signed 64-bit integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{what} must fit in a signed 64-bit integer")
    if low is not None and value < low:
        raise ValueError(f"{what} must be {low} or more (got {value})")
    return value


def number(value: float, what: str, *, finite: bool = True) -> float:
    """An int or float (not a bool) as a float: never NaN, and finite unless ``finite`` is False."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    result = float(value)
    if math.isnan(result) or (finite and math.isinf(result)):
        raise ValueError(f"{what} must be {'a finite number' if finite else 'a number, not NaN'}")
    return result


def required(values: list[Any], method: str, what: str) -> list[Any]:
    """A write's elements: at least one (a write of nothing is a mistake, not a no-op)."""
    if not values:
        raise ValueError(f"{method} needs at least one {what}")
    return values


def version(value: int | None) -> int:
    """An ``if_version``: None (0 on the wire: unconditional) or a version read earlier."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("if_version must be a version (an integer >= 1) read from an earlier call")
    return value


def ttl(value: TTL) -> duration_pb2.Duration | None:
    """A TTL on the wire: more than zero, or None (unset: the server's default)."""
    return duration_field(value, "ttl", allow_zero=False)


def options(ttl_: TTL, keep_ttl: bool, if_version: int | None) -> Options:
    """The WriteOptions of a write; None (left unset) when all are the defaults."""
    duration = ttl(ttl_)
    condition = version(if_version)
    if not isinstance(keep_ttl, bool):
        raise TypeError(f"keep_ttl must be a bool, not {type(keep_ttl).__name__}")
    if duration is None and not keep_ttl and not condition:
        return None
    return collection_pb2.WriteOptions(
        ttl=duration,
        ttl_policy=collection_pb2.TTL_POLICY_KEEP if keep_ttl else collection_pb2.TTL_POLICY_REFRESH,
        if_version=condition,
    )


# ---------------------------------------------------------------- responses


def state_fields(pb: collection_pb2.CollectionState) -> dict[str, Any]:
    """The keyword arguments of a :class:`CollectionState` (and of every result built on it)."""
    return {
        "exists": pb.exists,
        "version": pb.version,
        "expire_time": utc_or_none(pb.expire_time, pb.HasField("expire_time")),
        "length": pb.length,
    }


def written(response: Any) -> dict[str, Any]:
    """The keyword arguments of a :class:`~.models.Written` from a write's response."""
    return {**state_fields(response.collection), "applied": response.applied}


def as_state(pb: collection_pb2.CollectionState) -> CollectionState:
    return CollectionState(**state_fields(pb))


# ---------------------------------------------------------------- what every service has


def length(kind: Kind, name_: str) -> Call[int]:
    return Call("Length", kind.length(name=name(name_)), lambda r: r.collection.length)


def state(kind: Kind, name_: str) -> Call[CollectionState]:
    """The collection's state, read with Length: its version (for ``if_version``) and expiry too."""
    return Call("Length", kind.length(name=name(name_)), lambda r: as_state(r.collection))


def delete(kind: Kind, name_: str, if_version: int | None) -> Call[Deleted]:
    request = kind.delete(name=name(name_), if_version=version(if_version))
    return Call("Delete", request, lambda r: Deleted(**state_fields(r.collection), deleted=r.deleted))


def touch(kind: Kind, name_: str, ttl_: TTL) -> Call[CollectionState]:
    return Call("Touch", kind.touch(name=name(name_), ttl=ttl(ttl_)), lambda r: as_state(r.collection))


# ---------------------------------------------------------------- reads that follow pages


@dataclass(frozen=True)
class Page(Generic[I]):
    """One page of a read: the collection's version as of it, its items, and where the next page
    starts (a cursor, a position or an offset), None after the last."""

    version: int
    items: list[I]
    after: Any


class Paged(Generic[I, R]):
    """A read that takes pages to the end: send :meth:`call` and :meth:`take` its page until
    :meth:`call` is None, then :meth:`result`. The sync and async handles only do the sending.

    ``request(start, remaining)`` builds the call of a page starting at ``start`` (``first`` for the
    first page); ``remaining`` is how many items ``limit`` still allows (None: no limit). ``finish``
    turns the items into the caller's result.
    """

    def __init__(
        self,
        request: Callable[[Any, int | None], Call[Page[I]]],
        first: Any,
        finish: Callable[[list[I]], R],
        *,
        limit: int | None = None,
    ) -> None:
        self._request, self._first, self._finish, self._limit = request, first, finish, limit
        self._restarts = RESTARTS
        self._start()

    def _start(self) -> None:
        self._at: Any = self._first
        self._items: list[I] = []
        self._version: int | None = None
        self._done = False

    def _remaining(self) -> int | None:
        return None if self._limit is None else self._limit - len(self._items)

    def call(self) -> Call[Page[I]] | None:
        """The next page's call, or None when the read is complete."""
        if self._done or self._remaining() == 0:
            return None
        return self._request(self._at, self._remaining())

    def take(self, page: Page[I]) -> None:
        """Add a page's items; start over when the collection changed since the first page."""
        if self._version is None:
            self._version = page.version
        elif page.version != self._version and self._restarts > 0:
            self._restarts -= 1
            self._start()
            return
        remaining = self._remaining()
        self._items.extend(page.items if remaining is None else page.items[:remaining])
        if page.after is None:
            self._done = True
        else:
            self._at = page.after

    def result(self) -> R:
        return self._finish(self._items)
