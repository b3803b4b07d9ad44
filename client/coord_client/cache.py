# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The Cache service: :class:`CacheAPI` (sync) and :class:`AsyncCacheAPI` (asyncio).

Both share the request builders and response parsers below; only the sending differs. Values are
bytes (a ``str`` is stored as UTF-8). TTLs are seconds (``float``) or ``timedelta``; ``None`` means the
server's default TTL. Expected outcomes are results, not exceptions: a miss is ``Entry.found ==
False``, a condition that did not hold is ``SetResult.stored == False`` with its ``outcome``.

    with Client() as client:
        client.cache.set("greeting", "hello", ttl=60)
        client.cache.get("greeting").value            # b"hello"
        client.cache.get_or_set("report", build_report, ttl=300)

        @client.cache.cached(ttl=60, key="user:{user_id}")
        def load_user(user_id: int) -> dict: ...
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2, cache_pb2_grpc

from ._base import AsyncTransport, Transport, utc

SERVICE = "coord.cache.v1.CacheService"
_M = f"/{SERVICE}/"

Value = bytes | str
TTL = float | timedelta | None

P = ParamSpec("P")
R = TypeVar("R")


class Serializer(Protocol):
    """What ``cached`` needs to store results: the ``json`` module fits, as does ``pickle``."""

    def dumps(self, obj: Any, /) -> str | bytes: ...
    def loads(self, data: bytes, /) -> Any: ...


# ---------------------------------------------------------------- results


class SetOutcome(enum.StrEnum):
    """What a Set did; anything but STORED means the condition did not hold and nothing changed."""

    STORED = "stored"
    ALREADY_EXISTS = "already_exists"
    NOT_FOUND = "not_found"
    VERSION_MISMATCH = "version_mismatch"
    FENCED = "fenced"  # a newer holder of the fence's lock already wrote this key


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
class SetItem:
    """One write of a :meth:`CacheAPI.batch_set`, with the same arguments as ``set``."""

    key: str
    value: Value
    ttl: TTL = None
    if_absent: bool = False
    if_present: bool = False
    if_version: int | None = None
    fence: FenceLike | None = None


class _HasFence(Protocol):
    name: str
    fencing_token: int


# A fenced write names the lock and the grant's fencing token: ("jobs", 1795...) or a held lease.
FenceLike = tuple[str, int] | _HasFence


def _fence(fence: FenceLike) -> cache_pb2.Fence:
    if isinstance(fence, tuple):
        name, token = fence
    else:
        name, token = fence.name, fence.fencing_token
    if not isinstance(name, str) or isinstance(token, bool) or not isinstance(token, int) or token < 1:
        raise ValueError("fence must be (lock name, fencing token >= 1) or a held lock lease")
    return cache_pb2.Fence(lock_name=name, fencing_token=token)


# ---------------------------------------------------------------- request builders


def _bytes(value: Value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"value must be bytes or str, not {type(value).__name__}")


def _key(key: str, name: str = "key") -> str:
    if not isinstance(key, str):
        raise TypeError(f"{name} must be a str, not {type(key).__name__}")
    return key


def _keys(keys: Iterable[str]) -> list[str]:
    if isinstance(keys, str | bytes):
        raise TypeError("keys must be a list of keys, not a single str")
    return [_key(k, f"keys[{i}]") for i, k in enumerate(keys)]


def _duration(ttl: TTL, name: str = "ttl") -> duration_pb2.Duration | None:
    """A TTL as a Duration; None stays None (the server's default)."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise TypeError(f"{name} must be seconds (float) or a timedelta, not {type(ttl).__name__}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a positive number of seconds (None means the server default)")
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


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
    request = cache_pb2.SetRequest(key=_key(item.key), value=_bytes(item.value), ttl=_duration(item.ttl))
    if item.if_absent:
        request.if_absent.SetInParent()
    elif item.if_present:
        request.if_present.SetInParent()
    elif item.if_version is not None:
        if isinstance(item.if_version, bool) or not isinstance(item.if_version, int) or item.if_version < 1:
            raise ValueError("if_version must be a version (an integer >= 1) read from an earlier call")
        request.if_version = item.if_version
    if item.fence is not None:
        request.fence.CopyFrom(_fence(item.fence))
    return request


def _set_items(items: Mapping[str, Value] | Iterable[SetItem], ttl: TTL) -> list[SetItem]:
    if isinstance(items, Mapping):
        return [SetItem(k, v, ttl) for k, v in items.items()]
    out: list[SetItem] = []
    for item in items:
        if not isinstance(item, SetItem):
            raise TypeError(f"batch_set takes a mapping or SetItem objects, not {type(item).__name__}")
        out.append(item if item.ttl is not None or ttl is None else replace(item, ttl=ttl))
    return out


def _delete_request(keys: tuple[str, ...], if_version: int | None) -> cache_pb2.DeleteRequest:
    if not keys:
        raise ValueError("delete needs at least one key")
    request = cache_pb2.DeleteRequest(keys=_keys(keys))
    if if_version is not None:
        if len(keys) != 1:
            raise ValueError(f"if_version needs exactly one key (got {len(keys)})")
        if isinstance(if_version, bool) or not isinstance(if_version, int) or if_version < 1:
            raise ValueError("if_version must be a version (an integer >= 1) read from an earlier call")
        request.if_version = if_version
    return request


def _increment_request(key: str, delta: int, ttl: TTL) -> cache_pb2.IncrementRequest:
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"delta must be an int, not {type(delta).__name__}")
    if not -(1 << 63) <= delta < (1 << 63):
        raise ValueError("delta must fit in a signed 64-bit integer")
    return cache_pb2.IncrementRequest(key=_key(key), delta=delta, ttl=_duration(ttl))


# ---------------------------------------------------------------- response parsers

_SET_OUTCOMES = {
    cache_pb2.WRITE_OUTCOME_STORED: SetOutcome.STORED,
    cache_pb2.WRITE_OUTCOME_ALREADY_EXISTS: SetOutcome.ALREADY_EXISTS,
    cache_pb2.WRITE_OUTCOME_NOT_FOUND: SetOutcome.NOT_FOUND,
    cache_pb2.WRITE_OUTCOME_VERSION_MISMATCH: SetOutcome.VERSION_MISMATCH,
    cache_pb2.WRITE_OUTCOME_FENCED: SetOutcome.FENCED,
}
_DELETE_OUTCOMES = {
    cache_pb2.DELETE_OUTCOME_DELETED: DeleteOutcome.DELETED,
    cache_pb2.DELETE_OUTCOME_NOT_FOUND: DeleteOutcome.NOT_FOUND,
    cache_pb2.DELETE_OUTCOME_VERSION_MISMATCH: DeleteOutcome.VERSION_MISMATCH,
}


def _time(message: Any) -> datetime | None:
    if not message.HasField("expire_time"):
        return None
    return utc(message.expire_time)


def _entry(pb: cache_pb2.Entry) -> Entry:
    if not pb.found:
        return Entry(key=pb.key, found=False)
    return Entry(key=pb.key, found=True, value=pb.value, version=pb.version, expire_time=_time(pb))


def _set_result(key: str, pb: cache_pb2.SetResponse) -> SetResult:
    return SetResult(
        key=key,
        outcome=_SET_OUTCOMES[pb.outcome],
        version=pb.version,
        expire_time=_time(pb),
        fencing_token=pb.fencing_token,
    )


def _delete_result(pb: cache_pb2.DeleteResponse) -> DeleteResult:
    return DeleteResult(
        deleted_count=pb.deleted_count,
        results=[KeyDeleteResult(r.key, _DELETE_OUTCOMES[r.outcome], r.version) for r in pb.results],
    )


def _increment_result(key: str, pb: cache_pb2.IncrementResponse) -> IncrementResult:
    return IncrementResult(key, pb.value, pb.version, pb.created, _time(pb))


def _touch_result(key: str, pb: cache_pb2.TouchResponse) -> TouchResult:
    return TouchResult(key, pb.found, _time(pb))


# ---------------------------------------------------------------- the cached decorator's keys


def _key_builder(fn: Callable[..., Any], key: str | Callable[..., str] | None) -> Callable[..., str]:
    """How ``cached`` names the entry for one call of ``fn``.

    ``key`` may be a callable taking fn's arguments, a ``str.format`` template over fn's parameters
    (``"user:{user_id}"``), or None: the function's qualified name plus a digest of the arguments'
    ``repr`` (so arguments need a stable repr; pass ``key`` when they do not).
    """
    if callable(key):
        return key
    signature = inspect.signature(fn)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound

    if isinstance(key, str):
        template = key

        def from_template(*args: Any, **kwargs: Any) -> str:
            bound = bind(args, kwargs)
            return template.format(*bound.args, **bound.arguments)

        return from_template

    prefix = f"cached:{fn.__module__}.{fn.__qualname__}"

    def from_arguments(*args: Any, **kwargs: Any) -> str:
        digest = hashlib.sha256(repr(tuple(bind(args, kwargs).arguments.items())).encode()).hexdigest()
        return f"{prefix}:{digest[:32]}"

    return from_arguments


class CachedFunction(Generic[P, R]):
    """A sync function whose results live in Coord's cache (see :meth:`CacheAPI.cached`)."""

    def __init__(
        self,
        api: CacheAPI,
        fn: Callable[P, R],
        ttl: TTL,
        key: str | Callable[..., str] | None,
        serializer: Serializer,
    ) -> None:
        self._api, self._fn, self._ttl, self._serializer = api, fn, ttl, serializer
        self._key = _key_builder(fn, key)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        stored = self._api.get_or_set(
            self.key_for(*args, **kwargs),
            lambda: self._serializer.dumps(self._fn(*args, **kwargs)),
            self._ttl,
        )
        result: R = self._serializer.loads(stored)
        return result

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key a call with these arguments uses."""
        return self._key(*args, **kwargs)

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result for these arguments; True if there was one."""
        return self._api.delete(self.key_for(*args, **kwargs)).deleted_count == 1


class AsyncCachedFunction(Generic[P, R]):
    """An async function whose results live in Coord's cache (see :meth:`AsyncCacheAPI.cached`)."""

    def __init__(
        self,
        api: AsyncCacheAPI,
        fn: Callable[P, Awaitable[R]],
        ttl: TTL,
        key: str | Callable[..., str] | None,
        serializer: Serializer,
    ) -> None:
        self._api, self._fn, self._ttl, self._serializer = api, fn, ttl, serializer
        self._key = _key_builder(fn, key)
        functools.update_wrapper(self, fn)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        async def fill() -> str | bytes:
            return self._serializer.dumps(await self._fn(*args, **kwargs))

        stored = await self._api.get_or_set(self.key_for(*args, **kwargs), fill, self._ttl)
        result: R = self._serializer.loads(stored)
        return result

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key a call with these arguments uses."""
        return self._key(*args, **kwargs)

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result for these arguments; True if there was one."""
        return (await self._api.delete(self.key_for(*args, **kwargs))).deleted_count == 1


# ---------------------------------------------------------------- the APIs


class CacheAPI:
    """Sync access to ``coord.cache.v1.CacheService``; reached as ``Client(...).cache``.

    Every method takes ``timeout`` (seconds for the whole call, retries included; default: the
    client's). Get, batch_get and touch are retried on UNAVAILABLE; writes are never retried.
    Failures raise :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError or
    TypeError before anything is sent.
    """

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = cache_pb2_grpc.CacheServiceStub(transport.channel)

    def get(self, key: str, *, timeout: float | None = None) -> Entry:
        """Read one entry; a miss is ``Entry(found=False)``."""
        response = self._t.call(self._stub.Get, _M + "Get", cache_pb2.GetRequest(key=_key(key)), timeout)
        return _entry(response.entry)

    def batch_get(self, keys: Iterable[str], *, timeout: float | None = None) -> list[Entry]:
        """Read many entries, in the order of ``keys`` (an empty list sends nothing)."""
        request = cache_pb2.BatchGetRequest(keys=_keys(keys))
        if not request.keys:
            return []
        response = self._t.call(self._stub.BatchGet, _M + "BatchGet", request, timeout)
        return [_entry(e) for e in response.entries]

    get_many = batch_get

    def set(
        self,
        key: str,
        value: Value,
        ttl: TTL = None,
        *,
        if_absent: bool = False,
        if_present: bool = False,
        if_version: int | None = None,
        fence: FenceLike | None = None,
        timeout: float | None = None,
    ) -> SetResult:
        """Write one entry, under at most one condition; see :class:`SetResult` for the outcome.

        ``fence=("lock", fencing_token)`` (or a held lease) makes it a fenced write: refused with
        outcome FENCED once a newer grant of that lock has written the key.
        """
        request = _set_request(SetItem(key, value, ttl, if_absent, if_present, if_version, fence))
        return _set_result(key, self._t.call(self._stub.Set, _M + "Set", request, timeout))

    def batch_set(
        self,
        items: Mapping[str, Value] | Iterable[SetItem],
        *,
        ttl: TTL = None,
        timeout: float | None = None,
    ) -> list[SetResult]:
        """Apply many writes, each atomic on its own; ``ttl`` applies to items without their own."""
        todo = _set_items(items, ttl)
        if not todo:
            return []
        request = cache_pb2.BatchSetRequest(requests=[_set_request(i) for i in todo])
        response = self._t.call(self._stub.BatchSet, _M + "BatchSet", request, timeout)
        return [_set_result(i.key, r) for i, r in zip(todo, response.responses, strict=True)]

    set_many = batch_set

    def delete(self, *keys: str, if_version: int | None = None, timeout: float | None = None) -> DeleteResult:
        """Remove keys (missing ones are not an error); ``if_version`` needs exactly one key."""
        request = _delete_request(keys, if_version)
        return _delete_result(self._t.call(self._stub.Delete, _M + "Delete", request, timeout))

    def increment(
        self, key: str, delta: int = 1, ttl: TTL = None, *, timeout: float | None = None
    ) -> IncrementResult:
        """Add ``delta`` to an integer entry, creating it from 0 (with ``ttl``) if absent."""
        request = _increment_request(key, delta, ttl)
        return _increment_result(key, self._t.call(self._stub.Increment, _M + "Increment", request, timeout))

    def touch(self, key: str, ttl: TTL, *, timeout: float | None = None) -> TouchResult:
        """Give an existing entry a new TTL, counted from now."""
        request = cache_pb2.TouchRequest(key=_key(key), ttl=_duration(ttl))
        return _touch_result(key, self._t.call(self._stub.Touch, _M + "Touch", request, timeout))

    def get_or_set(
        self, key: str, fill: Callable[[], Value], ttl: TTL = None, *, timeout: float | None = None
    ) -> bytes:
        """The stored value of ``key``; on a miss, store ``fill()`` and return it.

        The fill is written with ``if_absent``, so when several callers miss at once every one of
        them returns the one value that was stored first (``fill`` may still run in each).
        """
        entry = self.get(key, timeout=timeout)
        if entry.found:
            return entry.value
        value = _bytes(fill())
        if self.set(key, value, ttl, if_absent=True, timeout=timeout).stored:
            return value
        winner = self.get(key, timeout=timeout)
        return winner.value if winner.found else value

    def cached(
        self,
        ttl: TTL = None,
        *,
        key: str | Callable[..., str] | None = None,
        serializer: Serializer = json,
    ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Decorate a sync function so its results are cached in Coord for ``ttl``.

        ``key`` names the entry per call: a ``str.format`` template over the parameters
        (``"user:{user_id}"``), a callable taking the same arguments, or None for the qualified name
        plus a digest of the arguments. Results go through ``serializer`` (JSON by default). The
        wrapper also has ``key_for(...)`` and ``invalidate(...)``.
        """

        def decorate(fn: Callable[P, R]) -> CachedFunction[P, R]:
            return CachedFunction(self, fn, ttl, key, serializer)

        return decorate


class AsyncCacheAPI:
    """Asyncio access to ``coord.cache.v1.CacheService``; reached as ``AsyncClient(...).cache``.

    The same methods, arguments and results as :class:`CacheAPI`, as coroutines.
    """

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub = cache_pb2_grpc.CacheServiceStub(transport.channel)

    async def get(self, key: str, *, timeout: float | None = None) -> Entry:
        """Read one entry; a miss is ``Entry(found=False)``."""
        request = cache_pb2.GetRequest(key=_key(key))
        return _entry((await self._t.call(self._stub.Get, _M + "Get", request, timeout)).entry)

    async def batch_get(self, keys: Iterable[str], *, timeout: float | None = None) -> list[Entry]:
        """Read many entries, in the order of ``keys`` (an empty list sends nothing)."""
        request = cache_pb2.BatchGetRequest(keys=_keys(keys))
        if not request.keys:
            return []
        response = await self._t.call(self._stub.BatchGet, _M + "BatchGet", request, timeout)
        return [_entry(e) for e in response.entries]

    get_many = batch_get

    async def set(
        self,
        key: str,
        value: Value,
        ttl: TTL = None,
        *,
        if_absent: bool = False,
        if_present: bool = False,
        if_version: int | None = None,
        fence: FenceLike | None = None,
        timeout: float | None = None,
    ) -> SetResult:
        """Write one entry, under at most one condition; see :class:`SetResult` for the outcome.

        ``fence=("lock", fencing_token)`` (or a held lease) makes it a fenced write: refused with
        outcome FENCED once a newer grant of that lock has written the key.
        """
        request = _set_request(SetItem(key, value, ttl, if_absent, if_present, if_version, fence))
        return _set_result(key, await self._t.call(self._stub.Set, _M + "Set", request, timeout))

    async def batch_set(
        self,
        items: Mapping[str, Value] | Iterable[SetItem],
        *,
        ttl: TTL = None,
        timeout: float | None = None,
    ) -> list[SetResult]:
        """Apply many writes, each atomic on its own; ``ttl`` applies to items without their own."""
        todo = _set_items(items, ttl)
        if not todo:
            return []
        request = cache_pb2.BatchSetRequest(requests=[_set_request(i) for i in todo])
        response = await self._t.call(self._stub.BatchSet, _M + "BatchSet", request, timeout)
        return [_set_result(i.key, r) for i, r in zip(todo, response.responses, strict=True)]

    set_many = batch_set

    async def delete(
        self, *keys: str, if_version: int | None = None, timeout: float | None = None
    ) -> DeleteResult:
        """Remove keys (missing ones are not an error); ``if_version`` needs exactly one key."""
        request = _delete_request(keys, if_version)
        return _delete_result(await self._t.call(self._stub.Delete, _M + "Delete", request, timeout))

    async def increment(
        self, key: str, delta: int = 1, ttl: TTL = None, *, timeout: float | None = None
    ) -> IncrementResult:
        """Add ``delta`` to an integer entry, creating it from 0 (with ``ttl``) if absent."""
        request = _increment_request(key, delta, ttl)
        response = await self._t.call(self._stub.Increment, _M + "Increment", request, timeout)
        return _increment_result(key, response)

    async def touch(self, key: str, ttl: TTL, *, timeout: float | None = None) -> TouchResult:
        """Give an existing entry a new TTL, counted from now."""
        request = cache_pb2.TouchRequest(key=_key(key), ttl=_duration(ttl))
        return _touch_result(key, await self._t.call(self._stub.Touch, _M + "Touch", request, timeout))

    async def get_or_set(
        self,
        key: str,
        fill: Callable[[], Value | Awaitable[Value]],
        ttl: TTL = None,
        *,
        timeout: float | None = None,
    ) -> bytes:
        """The stored value of ``key``; on a miss, store ``fill()`` (sync or async) and return it.

        As :meth:`CacheAPI.get_or_set`: concurrent fillers all return the one value stored first.
        """
        entry = await self.get(key, timeout=timeout)
        if entry.found:
            return entry.value
        produced = fill()
        value = _bytes(await produced if inspect.isawaitable(produced) else produced)
        if (await self.set(key, value, ttl, if_absent=True, timeout=timeout)).stored:
            return value
        winner = await self.get(key, timeout=timeout)
        return winner.value if winner.found else value

    def cached(
        self,
        ttl: TTL = None,
        *,
        key: str | Callable[..., str] | None = None,
        serializer: Serializer = json,
    ) -> Callable[[Callable[P, Awaitable[R]]], AsyncCachedFunction[P, R]]:
        """Decorate an async function so its results are cached in Coord (see :meth:`CacheAPI.cached`)."""

        def decorate(fn: Callable[P, Awaitable[R]]) -> AsyncCachedFunction[P, R]:
            return AsyncCachedFunction(self, fn, ttl, key, serializer)

        return decorate


__all__ = [
    "SERVICE",
    "TTL",
    "AsyncCacheAPI",
    "AsyncCachedFunction",
    "CacheAPI",
    "CachedFunction",
    "DeleteOutcome",
    "DeleteResult",
    "Entry",
    "IncrementResult",
    "KeyDeleteResult",
    "Serializer",
    "SetItem",
    "SetOutcome",
    "SetResult",
    "TouchResult",
    "Value",
]
