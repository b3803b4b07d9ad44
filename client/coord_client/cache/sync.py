"""The sync Cache client: :class:`CacheAPI`, reached as ``Client(...).cache``, and its ``cached``
decorator's :class:`CachedFunction`. Every call is built and read by :mod:`._codec`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, ParamSpec, TypeVar

from coord.cache.v1 import cache_pb2_grpc

from .._base import Transport
from .._call import SyncService
from . import _codec
from ._cached import CachedBase, KeySpec
from .models import (
    TTL,
    DeleteResult,
    Entry,
    FenceLike,
    IncrementResult,
    Serializer,
    SetItem,
    SetResult,
    TouchResult,
    Value,
)

P = ParamSpec("P")
R = TypeVar("R")


class CacheAPI(SyncService):
    """Sync access to ``coord.cache.v1.CacheService``; reached as ``Client(...).cache``.

    Every method takes ``timeout`` (seconds for the whole call, retries included; default: the
    client's). Get, batch_get and touch are retried on UNAVAILABLE; writes are never retried.
    Failures raise :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError or
    TypeError before anything is sent.
    """

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport, cache_pb2_grpc.CacheServiceStub(transport.channel), _codec.SERVICE)

    def get(self, key: str, *, timeout: float | None = None) -> Entry:
        """Read one entry; a miss is ``Entry(found=False)``."""
        return self._send(_codec.get(key), timeout)

    def batch_get(self, keys: Iterable[str], *, timeout: float | None = None) -> list[Entry]:
        """Read many entries, in the order of ``keys`` (an empty list sends nothing)."""
        return self._send(_codec.batch_get(keys), timeout)

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
        item = SetItem(key, value, ttl, if_absent, if_present, if_version, fence)
        return self._send(_codec.set(item), timeout)

    def batch_set(
        self, items: Mapping[str, Value] | Iterable[SetItem], *, ttl: TTL = None, timeout: float | None = None
    ) -> list[SetResult]:
        """Apply many writes, each atomic on its own; ``ttl`` applies to items without their own."""
        return self._send(_codec.batch_set(items, ttl), timeout)

    set_many = batch_set

    def delete(self, *keys: str, if_version: int | None = None, timeout: float | None = None) -> DeleteResult:
        """Remove keys (missing ones are not an error); ``if_version`` needs exactly one key."""
        return self._send(_codec.delete(keys, if_version), timeout)

    def increment(
        self, key: str, delta: int = 1, ttl: TTL = None, *, timeout: float | None = None
    ) -> IncrementResult:
        """Add ``delta`` to an integer entry, creating it from 0 (with ``ttl``) if absent."""
        return self._send(_codec.increment(key, delta, ttl), timeout)

    def touch(self, key: str, ttl: TTL, *, timeout: float | None = None) -> TouchResult:
        """Give an existing entry a new TTL, counted from now."""
        return self._send(_codec.touch(key, ttl), timeout)

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
        value = _codec.value_bytes(fill())
        if self.set(key, value, ttl, if_absent=True, timeout=timeout).stored:
            return value
        return _codec.fill_winner(self.get(key, timeout=timeout), value)

    def cached(
        self, ttl: TTL = None, *, key: KeySpec = None, serializer: Serializer = json
    ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Decorate a sync function so its results are cached in Coord for ``ttl``.

        ``key`` names the entry per call: a ``str.format`` template over the parameters
        (``"user:{user_id}"``), a callable taking the same arguments, or None for the qualified name
        plus a digest of the arguments. Results go through ``serializer`` (JSON by default). The
        wrapper also has ``key_for(...)`` and ``invalidate(...)``.
        """
        return lambda fn: CachedFunction(self, fn, ttl, key, serializer)


class CachedFunction(CachedBase[P], Generic[P, R]):
    """A sync function whose results live in Coord's cache (see :meth:`CacheAPI.cached`)."""

    def __init__(
        self, api: CacheAPI, fn: Callable[P, R], ttl: TTL, key: KeySpec, serializer: Serializer
    ) -> None:
        super().__init__(fn, ttl, key, serializer)
        self._api, self._fn = api, fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        stored = self._api.get_or_set(
            self.key_for(*args, **kwargs),
            lambda: self._serializer.dumps(self._fn(*args, **kwargs)),
            self._ttl,
        )
        result: R = self._serializer.loads(stored)
        return result

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result for these arguments; True if there was one."""
        return self._api.delete(self.key_for(*args, **kwargs)).deleted_count == 1


__all__ = ["CacheAPI", "CachedFunction"]
