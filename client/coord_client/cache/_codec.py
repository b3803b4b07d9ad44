"""The Cache service's calls as data: each function checks its arguments, builds the request and
says how the response reads (a :class:`~coord_client._call.Call`). No I/O here: :mod:`.sync` and
:mod:`.aio` send the same calls, so both clients check, build and parse alike.

Bad arguments raise ValueError or TypeError here, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2

from .._call import Call
from .._convert import Seconds, duration_field, from_duration, seconds, utc_or_none
from .models import (
    TTL,
    DeleteOutcome,
    DeleteResult,
    Entry,
    FenceLike,
    FillLease,
    IncrementResult,
    KeyDeleteResult,
    SetItem,
    SetOutcome,
    SetResult,
    TouchResult,
    Value,
)

SERVICE = "coord.cache.v1.CacheService"

# ---------------------------------------------------------------- the calls


def get(key: str) -> Call[Entry]:
    return Call("Get", cache_pb2.GetRequest(key=_key(key)), lambda r: entry_of(r.entry))


def batch_get(keys: Iterable[str]) -> Call[list[Entry]]:
    request = cache_pb2.BatchGetRequest(keys=_keys(keys))
    if not request.keys:
        return Call.answered([])
    return Call("BatchGet", request, lambda r: [entry_of(e) for e in r.entries])


# Named after its RPC, as the others are: this module never needs the builtin set.
def set(item: SetItem) -> Call[SetResult]:
    return Call("Set", _set_request(item), lambda r: _set_result(item.key, r))


def batch_set(items: Mapping[str, Value] | Iterable[SetItem], ttl: TTL) -> Call[list[SetResult]]:
    todo = _set_items(items, ttl)
    if not todo:
        return Call.answered([])
    request = cache_pb2.BatchSetRequest(requests=[_set_request(i) for i in todo])
    return Call(
        "BatchSet",
        request,
        lambda r: [_set_result(i.key, x) for i, x in zip(todo, r.responses, strict=True)],
    )


def invalidate_tags(tags: tuple[str, ...]) -> Call[int]:
    if not tags:
        raise ValueError("invalidate_tags needs at least one tag")
    request = cache_pb2.InvalidateTagsRequest(tags=tag_list(tags))
    return Call("InvalidateTags", request, lambda r: r.tag_count)


def invalidate_prefix(prefix: str) -> Call[None]:
    # Its form (ends with the delimiter, long enough) is the server's to check: the rules are settings.
    request = cache_pb2.InvalidatePrefixRequest(prefix=_key(prefix, "prefix"))
    return Call("InvalidatePrefix", request, lambda _: None)


def delete(keys: tuple[str, ...], if_version: int | None) -> Call[DeleteResult]:
    if not keys:
        raise ValueError("delete needs at least one key")
    request = cache_pb2.DeleteRequest(keys=_keys(keys))
    if if_version is not None:
        if len(keys) != 1:
            raise ValueError(f"if_version needs exactly one key (got {len(keys)})")
        request.if_version = _version(if_version)
    return Call("Delete", request, _delete_result)


def increment(key: str, delta: int, ttl: TTL) -> Call[IncrementResult]:
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"delta must be an int, not {type(delta).__name__}")
    if not -(1 << 63) <= delta < (1 << 63):
        raise ValueError("delta must fit in a signed 64-bit integer")
    request = cache_pb2.IncrementRequest(key=_key(key), delta=delta, ttl=_ttl(ttl))
    return Call(
        "Increment", request, lambda r: IncrementResult(key, r.value, r.version, r.created, _expiry(r))
    )


def touch(key: str, ttl: TTL) -> Call[TouchResult]:
    request = cache_pb2.TouchRequest(key=_key(key), ttl=_ttl(ttl))
    return Call("Touch", request, lambda r: TouchResult(key, r.found, _expiry(r)))


def get_or_lease(key: str, lease_ttl: Seconds, wait: float, serve_stale: bool = False) -> Call[FillLease]:
    if not isinstance(serve_stale, bool):
        raise TypeError(f"serve_stale must be a bool, not {type(serve_stale).__name__}")
    request = cache_pb2.GetOrLeaseRequest(
        key=_key(key),
        lease_ttl=duration_field(lease_ttl, "lease_ttl", allow_zero=False),
        wait=duration_field(wait, "wait"),
        serve_stale=serve_stale,
    )
    return Call("GetOrLease", request, _lease)


def wait_seconds(wait: Seconds | None, default: float) -> float:
    """How long a GetOrLease waits for another caller's fill: ``wait`` (seconds or a timedelta,
    zero for no wait), or ``default`` when None."""
    chosen = seconds(wait, "wait")
    return default if chosen is None else chosen


def lease_deadline(wait: float, timeout: float | None, default: float) -> float:
    """A GetOrLease's deadline: the caller's ``timeout``; without one, the wait plus the client's
    default timeout, so that a default meant for quick calls does not cut a long wait short."""
    return timeout if timeout is not None else wait + default


def value_bytes(value: Value) -> bytes:
    """A value as stored: bytes as they are, a str as UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"value must be bytes or str, not {type(value).__name__}")


def fill_winner(winner: Entry, filled: bytes) -> bytes:
    """What ``get_or_set`` returns when its if-absent write lost: the value stored first, or (if that
    one has gone since) the caller's own."""
    return winner.value if winner.found else filled


# ---------------------------------------------------------------- argument checks


def _key(key: str, name: str = "key") -> str:
    if not isinstance(key, str):
        raise TypeError(f"{name} must be a str, not {type(key).__name__}")
    return key


def _keys(keys: Iterable[str]) -> list[str]:
    if isinstance(keys, str | bytes):
        raise TypeError("keys must be a list of keys, not a single str")
    return [_key(k, f"keys[{i}]") for i, k in enumerate(keys)]


def tag_list(tags: Iterable[str]) -> list[str]:
    """Tags as sent: a list of str (a single str is refused, not taken as its characters)."""
    if isinstance(tags, str | bytes):
        raise TypeError("tags must be a list of tags, not a single str")
    return [_key(t, f"tags[{i}]") for i, t in enumerate(tags)]


def _ttl(ttl: TTL) -> duration_pb2.Duration | None:
    """A TTL on the wire: more than zero, or None (unset: the server's default)."""
    return duration_field(ttl, "ttl", allow_zero=False)


def _version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError("if_version must be a version (an integer >= 1) read from an earlier call")
    return version


def _fence(fence: FenceLike) -> cache_pb2.Fence:
    if isinstance(fence, tuple):
        name, token = fence
    else:
        name, token = fence.name, fence.fencing_token
    if not isinstance(name, str) or isinstance(token, bool) or not isinstance(token, int) or token < 1:
        raise ValueError("fence must be (lock name, fencing token >= 1) or a held lock lease")
    return cache_pb2.Fence(lock_name=name, fencing_token=token)


def _set_request(item: SetItem) -> cache_pb2.SetRequest:
    chosen = [
        name
        for name, on in (
            ("if_absent", item.if_absent),
            ("if_present", item.if_present),
            ("if_version", item.if_version is not None),
        )
        if on
    ]
    if len(chosen) > 1:
        raise ValueError(f"set: choose at most one condition, not {' and '.join(chosen)}")
    request = cache_pb2.SetRequest(key=_key(item.key), value=value_bytes(item.value), ttl=_ttl(item.ttl))
    if item.if_absent:
        request.if_absent.SetInParent()
    elif item.if_present:
        request.if_present.SetInParent()
    elif item.if_version is not None:
        request.if_version = _version(item.if_version)
    if item.fence is not None:
        request.fence.CopyFrom(_fence(item.fence))
    if item.lease_token is not None:
        request.lease_token = _lease_token(item.lease_token)
    if item.tags:
        request.tags.extend(tag_list(item.tags))
    grace = duration_field(item.stale_grace, "stale_grace")
    if grace is not None:
        request.stale_grace.CopyFrom(grace)
    compute = duration_field(item.compute_time, "compute_time")
    if compute is not None:
        request.compute_time.CopyFrom(compute)
    return request


def _lease_token(token: str) -> str:
    if not isinstance(token, str) or not token:
        raise ValueError("lease_token must be the non-empty token of a lease from get_or_lease")
    return token


def _set_items(items: Mapping[str, Value] | Iterable[SetItem], ttl: TTL) -> list[SetItem]:
    if isinstance(items, Mapping):
        return [SetItem(k, v, ttl) for k, v in items.items()]
    out: list[SetItem] = []
    for item in items:
        if not isinstance(item, SetItem):
            raise TypeError(f"batch_set takes a mapping or SetItem objects, not {type(item).__name__}")
        out.append(item if item.ttl is not None or ttl is None else replace(item, ttl=ttl))
    return out


# ---------------------------------------------------------------- response parsers

_SET_OUTCOMES = {
    cache_pb2.WRITE_OUTCOME_STORED: SetOutcome.STORED,
    cache_pb2.WRITE_OUTCOME_ALREADY_EXISTS: SetOutcome.ALREADY_EXISTS,
    cache_pb2.WRITE_OUTCOME_NOT_FOUND: SetOutcome.NOT_FOUND,
    cache_pb2.WRITE_OUTCOME_VERSION_MISMATCH: SetOutcome.VERSION_MISMATCH,
    cache_pb2.WRITE_OUTCOME_FENCED: SetOutcome.FENCED,
    cache_pb2.WRITE_OUTCOME_LEASE_LOST: SetOutcome.LEASE_LOST,
}
_DELETE_OUTCOMES = {
    cache_pb2.DELETE_OUTCOME_DELETED: DeleteOutcome.DELETED,
    cache_pb2.DELETE_OUTCOME_NOT_FOUND: DeleteOutcome.NOT_FOUND,
    cache_pb2.DELETE_OUTCOME_VERSION_MISMATCH: DeleteOutcome.VERSION_MISMATCH,
}


def _expiry(message: Any) -> datetime | None:
    return utc_or_none(message.expire_time, message.HasField("expire_time"))


def entry_of(pb: cache_pb2.Entry) -> Entry:
    if not pb.found:
        return Entry(key=pb.key, found=False)
    compute = from_duration(pb.compute_time) if pb.HasField("compute_time") else None
    return Entry(pb.key, True, pb.value, pb.version, _expiry(pb), compute)


def _set_result(key: str, pb: cache_pb2.SetResponse) -> SetResult:
    return SetResult(
        key=key,
        outcome=_SET_OUTCOMES[pb.outcome],
        version=pb.version,
        expire_time=_expiry(pb),
        fencing_token=pb.fencing_token,
    )


def _lease(pb: cache_pb2.GetOrLeaseResponse) -> FillLease:
    expire = utc_or_none(pb.lease_expire_time, pb.HasField("lease_expire_time"))
    return FillLease(entry_of(pb.entry), pb.lease_token, expire, pb.waited, pb.stale)


def _delete_result(pb: cache_pb2.DeleteResponse) -> DeleteResult:
    return DeleteResult(
        deleted_count=pb.deleted_count,
        results=[KeyDeleteResult(r.key, _DELETE_OUTCOMES[r.outcome], r.version) for r in pb.results],
    )
