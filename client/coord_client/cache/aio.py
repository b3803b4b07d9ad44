# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The asyncio Cache client: :class:`AsyncCacheAPI`, reached as ``AsyncClient(...).cache``, and its
``cached`` decorator's :class:`AsyncCachedFunction`.

The methods that send one call are those of :class:`~.sync.CacheAPI`, taken over with
:func:`~coord_client._call.awaiting`: written once, they return a coroutine here (arguments are
checked when the method is called). Only ``get_or_set`` (which may await its fill) and ``cached``
are written again.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec, TypeVar

from coord.cache.v1 import cache_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, awaiting
from . import _codec
from ._cached import CachedBase, KeySpec
from .models import TTL, Serializer, Value
from .sync import CacheAPI

P = ParamSpec("P")
R = TypeVar("R")


class AsyncCacheAPI(AsyncService):
    """Asyncio access to ``coord.cache.v1.CacheService``; reached as ``AsyncClient(...).cache``.

    The methods of :class:`~coord_client.cache.CacheAPI` (same arguments, results and errors), as
    coroutines.
    """

    def __init__(self, transport: AsyncTransport) -> None:
        super().__init__(transport, cache_pb2_grpc.CacheServiceStub(transport.channel), _codec.SERVICE)

    get = awaiting(CacheAPI.get)
    batch_get = awaiting(CacheAPI.batch_get)
    get_many = batch_get
    set = awaiting(CacheAPI.set)
    batch_set = awaiting(CacheAPI.batch_set)
    set_many = batch_set
    delete = awaiting(CacheAPI.delete)
    increment = awaiting(CacheAPI.increment)
    touch = awaiting(CacheAPI.touch)

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
        value = _codec.value_bytes(await produced if inspect.isawaitable(produced) else produced)
        if (await self.set(key, value, ttl, if_absent=True, timeout=timeout)).stored:
            return value
        return _codec.fill_winner(await self.get(key, timeout=timeout), value)

    def cached(
        self, ttl: TTL = None, *, key: KeySpec = None, serializer: Serializer = json
    ) -> Callable[[Callable[P, Awaitable[R]]], AsyncCachedFunction[P, R]]:
        """Decorate an async function so its results are cached in Coord (see :meth:`CacheAPI.cached`)."""
        return lambda fn: AsyncCachedFunction(self, fn, ttl, key, serializer)


class AsyncCachedFunction(CachedBase[P], Generic[P, R]):
    """An async function whose results live in Coord's cache (see :meth:`AsyncCacheAPI.cached`)."""

    def __init__(
        self,
        api: AsyncCacheAPI,
        fn: Callable[P, Awaitable[R]],
        ttl: TTL,
        key: KeySpec,
        serializer: Serializer,
    ) -> None:
        super().__init__(fn, ttl, key, serializer)
        self._api, self._fn = api, fn

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        async def fill() -> str | bytes:
            return self._serializer.dumps(await self._fn(*args, **kwargs))

        stored = await self._api.get_or_set(self.key_for(*args, **kwargs), fill, self._ttl)
        result: R = self._serializer.loads(stored)
        return result

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result for these arguments; True if there was one."""
        return (await self._api.delete(self.key_for(*args, **kwargs))).deleted_count == 1


__all__ = ["AsyncCacheAPI", "AsyncCachedFunction"]
