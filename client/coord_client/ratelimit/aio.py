# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The asyncio RateLimit client: :class:`AsyncRateLimitAPI`, reached as ``AsyncClient(...).ratelimit``,
and :class:`AsyncLimited`. Concurrent checks travel in batches (:mod:`.batching`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from coord.ratelimit.v1 import ratelimit_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, awaiting
from . import _codec
from ._codec import METHOD_PREFIX, check_request, decision
from ._limited import LimitedBase, allowed, key_for
from .batching import _CheckBatcher
from .models import Decision, Limit
from .sync import RateLimitAPI

P = ParamSpec("P")
R = TypeVar("R")

_CHECK = METHOD_PREFIX + "Check"


class AsyncRateLimitAPI(AsyncService):
    """Asyncio access to ``coord.ratelimit.v1.RateLimitService``; reached as ``AsyncClient(...).ratelimit``.

    The methods of :class:`~coord_client.ratelimit.RateLimitAPI` (same arguments, results and
    errors), as coroutines: ``reset`` is the sync one (see :func:`~coord_client._call.awaiting`);
    ``check`` and ``limit`` are written here, for they send through the batcher.
    """

    def __init__(self, transport: AsyncTransport, *, batch: bool = True) -> None:
        stub = ratelimit_pb2_grpc.RateLimitServiceStub(transport.channel)
        super().__init__(transport, stub, _codec.SERVICE)
        self._batcher = _CheckBatcher(transport, self._stub) if batch else None

    async def check(
        self,
        *limits: Limit,
        cost: int = 1,
        dry_run: bool = False,
        independent: bool = False,
        scope: str = "",
        timeout: float | None = None,
    ) -> Decision:
        """Decide ``limits`` in one atomic step (see :meth:`RateLimitAPI.check`).

        Checks that other coroutines make in the same event-loop iteration travel together as one
        batch on a CheckBatchStream (each still decided on its own; see :class:`_CheckBatcher`).
        """
        # The hot path: the request and the decision straight from _codec, no Call in between.
        request = check_request(limits, cost, dry_run, independent, scope)
        if self._batcher is not None:
            return decision(await self._batcher.check(request, timeout))
        return decision(await self._t.call(self._stub.Check, _CHECK, request, timeout))

    async def limit(
        self,
        key: str,
        rate: str | None = None,
        *,
        burst: int = 0,
        algorithm: str = "token_bucket",
        policy: str | None = None,
        on_backend_error: str = "closed",
        cost: int = 1,
        dry_run: bool = False,
        scope: str = "",
        timeout: float | None = None,
    ) -> Decision:
        """Check one key: ``await client.limit("user:42", rate="100/m", burst=20)``."""
        one = Limit(key, rate, burst, algorithm, policy, on_backend_error)
        return await self.check(one, cost=cost, dry_run=dry_run, scope=scope, timeout=timeout)

    reset = awaiting(RateLimitAPI.reset)

    def limited(self, key: str, rate: str | None = None, **options: Any) -> AsyncLimited:
        """``async with`` it, or decorate a coroutine function; raises :class:`RateLimited` when denied."""
        return AsyncLimited(self, key, rate, options)


class AsyncLimited(LimitedBase[AsyncRateLimitAPI]):
    """What :meth:`AsyncRateLimitAPI.limited` returns."""

    async def _enforce(self, key: str) -> Decision:
        return allowed(await self._api.limit(key, self._rate, **self._options))

    async def __aenter__(self) -> Decision:
        self.decision = await self._enforce(self._key)
        return self.decision

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            await self._enforce(key_for(self._key, signature, args, kwargs))
            return await fn(*args, **kwargs)

        return wrapper


__all__ = ["AsyncLimited", "AsyncRateLimitAPI"]
