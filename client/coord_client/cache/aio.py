# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The asyncio Cache client: :class:`AsyncCacheAPI`, reached as ``AsyncClient(...).cache``, and its
``cached`` decorator's :class:`AsyncCachedFunction`.

The methods that send one call are those of :class:`~.sync.CacheAPI`, taken over with
:func:`~coord_client._call.awaiting`: written once, they return a coroutine here (arguments are
checked when the method is called). Only ``get_or_set`` (which may await its fill) and ``cached``
are written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, ParamSpec, TypeVar

from coord.cache.v1 import cache_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, Call, awaiting
from .._convert import Seconds
from . import _codec
from ._cached import DEFAULT_LEASE_TTL, CachedBase, EarlyExpiryLike, Filling, KeySpec
from ._near import AsyncRunner, Flight, NearCache, merged, settle_many
from .models import TTL, Entry, FillLease, Serializer, Value
from .sync import CacheAPI

# Near-cache hits in a row after which a read yields to the event loop once (see _read).
YIELD_EVERY = 32

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class AsyncCacheAPI(AsyncService):
    """Asyncio access to ``coord.cache.v1.CacheService``; reached as ``AsyncClient(...).cache``.

    The methods of :class:`~coord_client.cache.CacheAPI` (same arguments, results and errors), as
    coroutines.
    """

    def __init__(self, transport: AsyncTransport, near_cache: NearCache | None = None) -> None:
        super().__init__(transport, cache_pb2_grpc.CacheServiceStub(transport.channel), _codec.SERVICE)
        self._near = near_cache
        self._runner: AsyncRunner | None = None
        self._hits_since_yield = 0
        if near_cache is not None:
            self._runner = AsyncRunner(near_cache, self._stub.WatchInvalidations, transport)
            with contextlib.suppress(RuntimeError):  # no running loop: started by the first read
                self._runner.start()

    near_cache = CacheAPI.near_cache
    get = awaiting(CacheAPI.get)
    batch_get = awaiting(CacheAPI.batch_get)
    get_many = batch_get
    set = awaiting(CacheAPI.set)
    batch_set = awaiting(CacheAPI.batch_set)
    set_many = batch_set
    delete = awaiting(CacheAPI.delete)
    invalidate_tags = awaiting(CacheAPI.invalidate_tags)
    invalidate_prefix = awaiting(CacheAPI.invalidate_prefix)
    increment = awaiting(CacheAPI.increment)
    touch = awaiting(CacheAPI.touch)
    get_or_lease = awaiting(CacheAPI.get_or_lease)

    # -- the near cache's hooks (as CacheAPI's, awaiting) -----------------------------------------

    async def _read(self, key: str, timeout: float | None) -> Entry:
        near = self._near
        if near is None:
            return await self._send(_codec.get(key), timeout)
        if self._runner is not None and not self._runner.started:
            self._runner.start()
        ticket = near.read(key)
        if ticket.__class__ is Entry:
            self._hits_since_yield += 1
            if self._hits_since_yield >= YIELD_EVERY:
                # A hit awaits nothing: callers reading in a loop would never let the loop run the
                # task that applies invalidations. Now and then a hit lets it (and the rest) run.
                self._hits_since_yield = 0
                await asyncio.sleep(0)
            return ticket
        if ticket.__class__ is Flight:  # the same read is on its way: its answer, if kept
            joined = await ticket.wait_async()
            return joined if joined is not None else await self._send(_codec.get(key), timeout)
        try:
            entry = await self._send(_codec.get(key), timeout)
        except BaseException:
            near.settle(ticket, None)
            raise
        near.settle(ticket, entry)
        return entry

    async def _read_many(self, call: Call[list[Entry]], timeout: float | None) -> list[Entry]:
        near = self._near
        if near is None or call.request is None:
            return await self._send(call, timeout)
        if self._runner is not None and not self._runner.started:
            self._runner.start()
        keys = list(call.request.keys)
        local = [near.read(k, join=False) for k in keys]
        missing = [k for k, t in zip(keys, local, strict=True) if t.__class__ is not Entry]
        if not missing:
            return local  # type: ignore[return-value]
        try:
            fetched = await self._send(_codec.batch_get(missing), timeout)
        except BaseException:
            settle_many(near, local, None)
            raise
        settle_many(near, local, fetched)
        return merged(local, fetched)

    async def _write(self, keys: Sequence[str], call: Call[T], timeout: float | None) -> T:
        near = self._near
        if near is None:
            return await self._send(call, timeout)
        near.wrote(keys)  # from now on no read in flight keeps its (older) answer
        try:
            return await self._send(call, timeout)
        finally:
            near.wrote(keys)  # the next read goes to the server and sees this write

    async def _write_all(self, call: Call[T], timeout: float | None) -> T:
        near = self._near
        if near is None:
            return await self._send(call, timeout)
        near.clear()  # from now on no read in flight keeps its (older) answer
        try:
            return await self._send(call, timeout)
        finally:
            near.clear()  # reads go to the server and see the invalidation

    async def _close_near(self) -> None:
        """Stop the near cache's stream (the client closes)."""
        if self._runner is not None:
            await self._runner.close()

    async def get_or_set(
        self,
        key: str,
        fill: Callable[[], Value | Awaitable[Value]],
        ttl: TTL = None,
        *,
        lease: bool = True,
        lease_ttl: Seconds = DEFAULT_LEASE_TTL,
        wait: Seconds | None = None,
        stale_grace: TTL = None,
        early_expiry: EarlyExpiryLike = None,
        timeout: float | None = None,
    ) -> bytes:
        """The stored value of ``key``; on a miss, store ``fill()`` (sync or async) and return it.

        As :meth:`CacheAPI.get_or_set`: with ``lease`` (the default) ``fill`` runs in one caller at a
        time and the others wait for its value; with ``lease=False`` concurrent fillers all return
        the one value stored first. ``stale_grace`` serves a stale value while one caller refreshes
        it; ``early_expiry`` refreshes a hit before it expires (XFetch).
        """
        filling = Filling(lease, lease_ttl, wait, stale_grace, early_expiry)
        if filling.lease:
            waiting = filling.wait_seconds()
            serve = filling.serve_stale
            got = await self.get_or_lease(key, lease_ttl, wait=waiting, serve_stale=serve, timeout=timeout)
        else:
            got = FillLease(await self.get(key, timeout=timeout))
        step = filling.step(got)
        if step.value is not None:
            return step.value
        started = time.perf_counter()
        value = await _filled(fill)
        if step.store:
            # A lost lease (LEASE_LOST), or a key written since it was read, stores nothing; the
            # value is returned all the same.
            written = await self.set(
                key,
                value,
                ttl,
                if_absent=step.if_absent,
                if_version=step.if_version,
                lease_token=step.lease_token,
                stale_grace=stale_grace,
                compute_time=filling.compute_time(started),
                timeout=timeout,
            )
            if step.if_absent and not written.stored:
                return _codec.fill_winner(await self.get(key, timeout=timeout), value)
        return value

    def cached(
        self,
        ttl: TTL = None,
        *,
        key: KeySpec = None,
        serializer: Serializer = json,
        lease: bool = True,
        lease_ttl: Seconds = DEFAULT_LEASE_TTL,
        wait: Seconds | None = None,
        stale_grace: TTL = None,
        early_expiry: EarlyExpiryLike = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], AsyncCachedFunction[P, R]]:
        """Decorate an async function so its results are cached in Coord (see :meth:`CacheAPI.cached`)."""
        filling = Filling(lease, lease_ttl, wait, stale_grace, early_expiry)
        return lambda fn: AsyncCachedFunction(self, fn, ttl, key, serializer, filling=filling)


async def _filled(fill: Callable[[], Value | Awaitable[Value]]) -> bytes:
    """What ``fill()`` (sync or async) produced, as stored."""
    produced = fill()
    return _codec.value_bytes(await produced if inspect.isawaitable(produced) else produced)


class AsyncCachedFunction(CachedBase[P], Generic[P, R]):
    """An async function whose results live in Coord's cache (see :meth:`AsyncCacheAPI.cached`)."""

    def __init__(
        self,
        api: AsyncCacheAPI,
        fn: Callable[P, Awaitable[R]],
        ttl: TTL,
        key: KeySpec,
        serializer: Serializer,
        *,
        filling: Filling | None = None,
    ) -> None:
        super().__init__(fn, ttl, key, serializer, filling or Filling())
        self._api, self._fn = api, fn

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        async def fill() -> str | bytes:
            return self._serializer.dumps(await self._fn(*args, **kwargs))

        filling = self._filling
        stored = await self._api.get_or_set(
            self.key_for(*args, **kwargs),
            fill,
            self._ttl,
            lease=filling.lease,
            lease_ttl=filling.lease_ttl,
            wait=filling.wait,
            stale_grace=filling.stale_grace,
            early_expiry=filling.early_expiry,
        )
        result: R = self._serializer.loads(stored)
        return result

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result for these arguments; True if there was one."""
        return (await self._api.delete(self.key_for(*args, **kwargs))).deleted_count == 1


__all__ = ["AsyncCacheAPI", "AsyncCachedFunction"]
