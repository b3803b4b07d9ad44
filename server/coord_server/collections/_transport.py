"""Proto <-> domain conversions every collection servicer shares: names, write options, counts, pages
and the CollectionState of every reply."""

from __future__ import annotations

from google.protobuf import duration_pb2

from coord.collections.v1 import collection_pb2

from .._proto import timestamp_fields_ms
from ..errors import invalid
from ..validation import Limits
from .common import State, Write

#: Page size when a request gives none (GetAll, Members, RangeByScore); the most is COORD_MAX_BATCH.
DEFAULT_PAGE = 100

_KEEP = collection_pb2.TtlPolicy.TTL_POLICY_KEEP
_POLICIES = frozenset(collection_pb2.TtlPolicy.values())


def state_pb(state: State) -> collection_pb2.CollectionState:
    if not state.exists:
        return collection_pb2.CollectionState(length=state.length)
    return collection_pb2.CollectionState(
        exists=True,
        version=state.version,
        expire_time=timestamp_fields_ms(state.expire_ms),  # type: ignore[arg-type]
        length=state.length,
    )


def name_of(limits: Limits, name: str) -> str:
    """The collection name of a request (the ``name`` field): the cache's key rules."""
    return limits.key("name", name)


def write_of(limits: Limits, options: collection_pb2.WriteOptions) -> Write:
    """A request's WriteOptions (the ``options`` field), validated."""
    ttl = limits.ttl("options.ttl", options.ttl)
    if options.ttl_policy not in _POLICIES:
        raise invalid("options.ttl_policy", f"unknown TtlPolicy {options.ttl_policy}")
    return Write(ttl, options.ttl_policy == _KEEP, options.if_version)


def ttl_of(limits: Limits, field: str, ttl: duration_pb2.Duration) -> int:
    """A Touch's TTL in ms: unset or zero for the default."""
    return limits.ttl(field, ttl)


def count_of(limits: Limits, field: str, count: int) -> int:
    """How many elements a Pop takes: 0 means 1, at most COORD_MAX_BATCH."""
    if count < 0:
        raise invalid(field, f"must not be negative (got {count})")
    limits.batch(field, max(count, 1))
    return max(count, 1)


def page_of(limits: Limits, field: str, size: int) -> int:
    """A page size: 0 for the default, at most COORD_MAX_BATCH."""
    if size < 0:
        raise invalid(field, f"must not be negative (got {size})")
    if size > limits.max_batch:
        raise invalid(
            field,
            f"is {size}; the limit is {limits.max_batch}",
            reason="BATCH_TOO_LARGE",
            limit=str(limits.max_batch),
            actual=str(size),
        )
    return size or min(DEFAULT_PAGE, limits.max_batch)


def cursor_of(field: str, cursor: str) -> str:
    """A page cursor: empty for the first page, else the decimal a previous page returned."""
    if not cursor:
        return "0"
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 20:
        raise invalid(field, "is not a cursor this service returned (pass next_cursor back unchanged)")
    return cursor


def next_cursor(cursor: str) -> str:
    """The next_cursor of a page: empty when the scan is complete (Redis answered cursor 0)."""
    return "" if cursor == "0" else cursor
