"""The sync collection handles: :class:`Map`, :class:`List`, :class:`Set` and :class:`SortedSet`,
reached as ``client.map(name)``, ``client.list(name)``, ``client.set(name)`` and
``client.sorted_set(name)``. Every call is built and read by the codecs (``_maps``, ``_lists``,
``_sets``, ``_sorted_sets``); the asyncio handles (:mod:`.aio`) take these methods over."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar, overload

from coord.collections.v1 import list_pb2_grpc, map_pb2_grpc, set_pb2_grpc, sorted_set_pb2_grpc

from .._base import Transport
from .._call import SyncService
from .._convert import Seconds
from . import _codec, _lists, _maps, _sets, _sorted_sets
from .models import (
    TTL,
    Added,
    CollectionState,
    Deleted,
    Incremented,
    Popped,
    Pushed,
    Put,
    PutCondition,
    Ranked,
    Removed,
    Value,
)

R = TypeVar("R")


class Handle(SyncService):
    """What every sync handle has: its collection's ``name`` and the calls every kind offers.

    A handle is cheap (it holds a name and the client's stub) and safe to share between threads.
    Every method takes ``timeout`` (seconds; default: the client's). Failures raise
    :class:`coord_client.CoordError` subclasses (a name holding another kind of collection:
    FailedPrecondition, reason COLLECTION_WRONG_TYPE; a write past the server's size limit:
    ResourceExhausted, reason COLLECTION_TOO_LARGE); bad arguments raise ValueError or TypeError
    before anything is sent. Writes are never retried.
    """

    _kind: ClassVar[_codec.Kind]

    def __init__(self, transport: Transport, stub: Any, name: str) -> None:
        super().__init__(transport, stub, self._kind.service)
        self.name = _codec.name(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _collect(self, paged: _codec.Paged[Any, R], timeout: float | None) -> R:
        """Send a paged read's calls until its last page (``timeout`` is each call's)."""
        while (call := paged.call()) is not None:
            paged.take(self._send(call, timeout))
        return paged.result()

    def length(self, *, timeout: float | None = None) -> int:
        """The number of elements (0 when the collection does not exist)."""
        return self._send(_codec.length(self._kind, self.name), timeout)

    def state(self, *, timeout: float | None = None) -> CollectionState:
        """Whether the collection exists, its version, expiry and length.

        For a compare-and-set, read the version before the elements: a write with that
        ``if_version`` then applies only if nothing changed since.
        """
        return self._send(_codec.state(self._kind, self.name), timeout)

    def delete(self, *, if_version: int | None = None, timeout: float | None = None) -> Deleted:
        """Remove the whole collection (only at version ``if_version``, when given)."""
        return self._send(_codec.delete(self._kind, self.name, if_version), timeout)

    def touch(self, ttl: TTL = None, *, timeout: float | None = None) -> CollectionState:
        """Give an existing collection a new TTL from now (None: the server's default) without
        changing its elements or version; ``exists`` False when there was nothing to touch."""
        return self._send(_codec.touch(self._kind, self.name, ttl), timeout)


class Map(Handle):
    """A map (a Redis hash): str fields with bytes values, ``client.map("user:42")``.

    Field names that collide with the options (``ttl``, ``keep_ttl``, ``if_version``, ``timeout``)
    go in the mapping: ``m.set({"ttl": b"..."})``.
    """

    _kind = _maps.KIND

    def set(
        self,
        fields: Mapping[str, Value] | None = None,
        /,
        *,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
        **values: Value,
    ) -> Added:
        """Write fields, from a mapping and/or keywords, in one atomic step: ``m.set(name="Ada")``.
        ``added`` counts the fields that were new."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_maps.set_fields(self.name, fields, values, options), timeout)

    def get(self, field: str, *, timeout: float | None = None) -> bytes | None:
        """A field's value, or None when the map (or the field) does not exist."""
        return self._send(_maps.get(self.name, field), timeout)

    def get_many(self, fields: Iterable[str], *, timeout: float | None = None) -> dict[str, bytes]:
        """The values of ``fields`` that exist (missing ones are left out); [] sends nothing."""
        return self._send(_maps.get_many(self.name, fields), timeout)

    def get_all(self, *, page_size: int = 0, timeout: float | None = None) -> dict[str, bytes]:
        """Every field: one call for a small map, a page at a time for a big one (``page_size``:
        0 for the server's default). A read whose map changes between pages starts over (twice at
        most), so it returns one version's fields."""
        return self._collect(_maps.get_all(self.name, page_size), timeout)

    def remove(
        self,
        *fields: str,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Removed:
        """Delete fields; ``removed`` counts those that existed. The map goes with its last field."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_maps.remove(self.name, fields, options), timeout)

    @overload
    def increment(
        self,
        field: str,
        delta: int = 1,
        *,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Incremented[int]: ...
    @overload
    def increment(
        self,
        field: str,
        delta: float,
        *,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Incremented[float]: ...
    def increment(
        self,
        field: str,
        delta: float = 1,
        *,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Incremented[Any]:
        """Add ``delta`` to a field, creating it from 0: an int delta needs a field holding a 64-bit
        integer (FailedPrecondition VALUE_NOT_INTEGER otherwise; OutOfRange INTEGER_OVERFLOW past
        it), a float one a number (COLLECTION_VALUE_NOT_NUMBER). ``value`` is the new value."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_maps.increment(self.name, field, delta, options), timeout)


class List(Handle):
    """A list (a Redis list) of bytes values, ``client.list("jobs")``: recent items, a capped log,
    or a work queue (push to the back, ``pop(wait=...)`` from the front)."""

    _kind = _lists.KIND

    def push(
        self,
        *values: Value,
        front: bool = False,
        max_length: int | None = None,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Pushed:
        """Add values to the back (or the ``front``: each before the previous, so the last ends up
        first). ``max_length`` trims the other end in the same step (a capped list); ``trimmed``
        counts what it removed, ``length`` is the new length."""
        options = _codec.options(ttl, keep_ttl, if_version)
        call = _lists.push(self.name, values, front, max_length, options)
        return self._send(call, timeout)

    def pop(
        self,
        count: int = 1,
        *,
        wait: Seconds | None = None,
        front: bool = True,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Popped[bytes]:
        """Take up to ``count`` values from the front (or the back: ``front=False``).

        ``wait`` (seconds or a timedelta) makes a pop on an empty list wait on the server until a
        push arrives or the wait ends (``values`` then empty); waiting callers are served in the
        order they came. Without a ``timeout``, the call's deadline is the wait plus the client's
        timeout; a shorter ``timeout`` ends the wait before it. ``if_version`` cannot be combined
        with a wait. ``popped.value`` is the first value, or None.
        """
        seconds = _lists.wait_seconds(wait)
        options = _codec.options(ttl, keep_ttl, if_version)
        call = _lists.pop(self.name, count, front, seconds, options)
        return self._send(call, _lists.deadline(seconds, timeout, self._t.timeout))

    def range(self, start: int = 0, stop: int = -1, *, timeout: float | None = None) -> list[bytes]:
        """The values from position ``start`` to ``stop`` included (0 the front, -1 the back), front
        to back: ``range()`` is the whole list, read a page at a time when it is long (starting over
        if the list changes between pages, twice at most)."""
        return self._collect(_lists.range_of(self.name, start, stop), timeout)

    def remove(
        self,
        value: Value,
        count: int = 0,
        *,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Removed:
        """Delete occurrences of ``value``: all (``count`` 0), the first ``count`` from the front, or
        (``count`` < 0) the first ``-count`` from the back (Redis LREM)."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_lists.remove(self.name, value, count, options), timeout)

    def trim(
        self,
        start: int,
        stop: int,
        *,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Removed:
        """Keep only positions ``start`` to ``stop`` included (Redis LTRIM); ``removed`` counts the
        values that went."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_lists.trim(self.name, start, stop, options), timeout)


class Set(Handle):
    """A set (a Redis set) of distinct str members, ``client.set("tags")``."""

    _kind = _sets.KIND

    def add(
        self,
        *members: str,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Added:
        """Add members; ``added`` counts the new ones (those already there stay as they are)."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_sets.add(self.name, members, options), timeout)

    def remove(
        self,
        *members: str,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Removed:
        """Remove members; ``removed`` counts those that were there."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_sets.remove(self.name, members, options), timeout)

    def contains(self, member: str, *, timeout: float | None = None) -> bool:
        """Whether the set holds ``member``."""
        return self._send(_sets.contains(self.name, member), timeout)

    def contains_many(self, members: Iterable[str], *, timeout: float | None = None) -> dict[str, bool]:
        """For each of ``members``, whether the set holds it; [] sends nothing."""
        return self._send(_sets.contains_many(self.name, members), timeout)

    def members(self, *, page_size: int = 0, timeout: float | None = None) -> set[str]:
        """Every member: one call for a small set, a page at a time for a big one (starting over if
        the set changes between pages, twice at most)."""
        return self._collect(_sets.members(self.name, page_size), timeout)

    def pop(
        self,
        count: int = 1,
        *,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Popped[str]:
        """Take up to ``count`` random members; ``popped.value`` is one of them, or None."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_sets.pop(self.name, count, options), timeout)


class SortedSet(Handle):
    """A sorted set (a Redis sorted set) of str members with float scores, ``client.sorted_set(...)``;
    a leaderboard is one.

    Leaderboard reads (:meth:`rank`, :meth:`rank_many`, :meth:`top`, :meth:`around`) count ranks
    from the highest score by default (``descending=True``: rank 0 is the top); the range reads
    (:meth:`range_by_rank`, :meth:`range_by_score`) go from the lowest score up by default, as Redis
    does. Pass ``descending`` to choose. Members of equal score are ordered by their bytes.
    """

    _kind = _sorted_sets.KIND

    def put(
        self,
        scores: Mapping[str, float] | None = None,
        /,
        *,
        condition: PutCondition | str | None = None,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
        **more: float,
    ) -> Put:
        """Set members' scores, from a mapping and/or keywords: ``lb.put(alice=10)``.
        ``condition`` (a :class:`PutCondition` or its value, e.g. ``"if_higher"`` for a best-score
        board) limits which members change. ``added`` and ``updated`` count what did."""
        options = _codec.options(ttl, keep_ttl, if_version)
        call = _sorted_sets.put(self.name, scores, more, condition, options)
        return self._send(call, timeout)

    def increment(
        self,
        member: str,
        delta: float = 1.0,
        *,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Incremented[float]:
        """Add ``delta`` to a member's score, adding it from 0; ``value`` is the new score."""
        options = _codec.options(ttl, keep_ttl, if_version)
        call = _sorted_sets.increment(self.name, member, delta, options)
        return self._send(call, timeout)

    def remove(
        self,
        *members: str,
        ttl: TTL = None,
        keep_ttl: bool = False,
        if_version: int | None = None,
        timeout: float | None = None,
    ) -> Removed:
        """Remove members; ``removed`` counts those that were there."""
        options = _codec.options(ttl, keep_ttl, if_version)
        return self._send(_sorted_sets.remove(self.name, members, options), timeout)

    def score(self, member: str, *, timeout: float | None = None) -> float | None:
        """A member's score, or None when the sorted set does not hold it."""
        return self._send(_sorted_sets.score(self.name, member), timeout)

    def score_many(self, members: Iterable[str], *, timeout: float | None = None) -> dict[str, float]:
        """The scores of the ``members`` held (others are left out); [] sends nothing."""
        return self._send(_sorted_sets.score_many(self.name, members), timeout)

    def rank(self, member: str, *, descending: bool = True, timeout: float | None = None) -> Ranked | None:
        """A member's rank (0 is the highest score, or the lowest with ``descending=False``) and
        score, or None when the sorted set does not hold it."""
        return self._send(_sorted_sets.rank(self.name, member, descending), timeout)

    def rank_many(
        self, members: Iterable[str], *, descending: bool = True, timeout: float | None = None
    ) -> dict[str, Ranked]:
        """The ranks and scores of the ``members`` held (others are left out)."""
        return self._send(_sorted_sets.rank_many(self.name, members, descending), timeout)

    def top(self, n: int = 10, *, descending: bool = True, timeout: float | None = None) -> list[Ranked]:
        """The ``n`` best members, best first: the highest scores (the lowest with
        ``descending=False``, for a board where less is better)."""
        count = _codec.integer(n, "n", low=1)
        return self._send(_sorted_sets.range_by_rank(self.name, 0, count - 1, descending), timeout)

    def around(
        self,
        member: str,
        n: int = 5,
        *,
        before: int | None = None,
        after: int | None = None,
        descending: bool = True,
        timeout: float | None = None,
    ) -> list[Ranked]:
        """``member`` and its neighbours in one call: ``n`` ranked before it (better, by default)
        and ``n`` after (``before`` and ``after`` set each side). Highest score first by default.
        Empty when the sorted set does not hold ``member``."""
        call = _sorted_sets.around(
            self.name, member, n if before is None else before, n if after is None else after, descending
        )
        return self._send(call, timeout)

    def range_by_rank(
        self, start: int = 0, stop: int = -1, *, descending: bool = False, timeout: float | None = None
    ) -> list[Ranked]:
        """Members of ranks ``start`` to ``stop`` included (negative ranks count from the end),
        lowest score first by default. A window wider than the server's batch limit is refused."""
        return self._send(_sorted_sets.range_by_rank(self.name, start, stop, descending), timeout)

    def range_by_score(
        self,
        min: float | None = None,
        max: float | None = None,
        *,
        min_exclusive: bool = False,
        max_exclusive: bool = False,
        descending: bool = False,
        offset: int = 0,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> list[tuple[str, float]]:
        """``(member, score)`` pairs with scores from ``min`` to ``max`` (None: unbounded; each
        inclusive unless ``*_exclusive``), lowest first by default, skipping ``offset`` and at most
        ``limit`` (None: all, a page at a time)."""
        paged = _sorted_sets.range_by_score(
            self.name,
            low=min,
            high=max,
            low_exclusive=min_exclusive,
            high_exclusive=max_exclusive,
            descending=descending,
            offset=offset,
            limit=limit,
        )
        return self._collect(paged, timeout)


class Collections:
    """Makes the handles of one client: one stub per service, shared by every handle."""

    def __init__(self, transport: Transport) -> None:
        channel = transport.channel
        self._t = transport
        self._map = map_pb2_grpc.MapServiceStub(channel)
        self._list = list_pb2_grpc.ListServiceStub(channel)
        self._set = set_pb2_grpc.SetServiceStub(channel)
        self._sorted_set = sorted_set_pb2_grpc.SortedSetServiceStub(channel)

    def map(self, name: str) -> Map:
        return Map(self._t, self._map, name)

    def list(self, name: str) -> List:
        return List(self._t, self._list, name)

    def set(self, name: str) -> Set:
        return Set(self._t, self._set, name)

    def sorted_set(self, name: str) -> SortedSet:
        return SortedSet(self._t, self._sorted_set, name)


__all__ = ["Collections", "Handle", "List", "Map", "Set", "SortedSet"]
