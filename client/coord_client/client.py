"""``Client`` and ``AsyncClient``: one channel to Coord, one attribute per service.

    from coord_client import Client

    with Client("127.0.0.1:50051", timeout=2.0) as client:
        client.cache.set("k", b"v", ttl=30)

A service joins the client with one line in each ``__init__`` below (``self.lock = LockAPI(t)``),
next to ``cache``. Both clients share the channel options, deadlines and retry rules of ``_base``, and
what :class:`_ClientBase` holds; each only opens its kind of channel and closes it its own way.
"""

from __future__ import annotations

from types import TracebackType
from typing import Generic

import grpc

from ._base import (
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    AsyncTransport,
    BaseTransport,
    ChannelT,
    Metadata,
    Options,
    RetryPolicy,
    Transport,
    async_channel,
    sync_channel,
)
from .cache import AsyncCacheAPI, CacheAPI
from .events import AsyncEventsAPI, EventsAPI
from .lock import AsyncLockAPI, LockAPI
from .ratelimit import AsyncRateLimitAPI, RateLimitAPI
from .session import AsyncSessionAPI, SessionAPI


class _ClientBase(Generic[ChannelT]):
    """What both clients hold: the target and the one transport every service API sends through."""

    _transport: BaseTransport[ChannelT]

    def __init__(self, target: str, transport: BaseTransport[ChannelT]) -> None:
        self.target = target
        self._transport = transport

    @property
    def channel(self) -> ChannelT:
        """The underlying channel, for stubs of services this client does not wrap."""
        return self._transport.channel


class Client(_ClientBase[grpc.Channel]):
    """A sync Coord client. Thread-safe; reuse one per process rather than one per call.

    ``timeout`` is the default deadline of every call in seconds (retries included); each method
    also takes its own ``timeout=``. ``retry`` overrides the backoff of the idempotent methods the
    service config marks retryable (``NO_RETRY`` turns retries off); other methods are never retried.
    ``options`` are extra gRPC channel options, ``credentials`` make the channel use TLS, and
    ``metadata`` is sent with every call.
    """

    _transport: Transport

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        options: Options = (),
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Metadata = (),
    ) -> None:
        t = Transport(
            sync_channel(target, options, credentials), timeout=timeout, retry=retry, metadata=metadata
        )
        super().__init__(target, t)
        self.cache = CacheAPI(t)
        self.lock = LockAPI(t)
        self.ratelimit = RateLimitAPI(t)
        self.limit = self.ratelimit.limit  # client.limit("user:42", rate="100/m")
        self.session = SessionAPI(t)
        self.events = EventsAPI(t)

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_ClientBase[grpc.aio.Channel]):
    """The asyncio Coord client, with the same arguments and services as :class:`Client`.

    Create it inside the event loop that will use it; close it with ``await client.close()`` or
    ``async with``.
    """

    _transport: AsyncTransport

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        options: Options = (),
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Metadata = (),
        batch_checks: bool = True,
    ) -> None:
        t = AsyncTransport(
            async_channel(target, options, credentials), timeout=timeout, retry=retry, metadata=metadata
        )
        super().__init__(target, t)
        self.cache = AsyncCacheAPI(t)
        self.lock = AsyncLockAPI(t)
        # batch_checks: concurrent rate-limit checks share CheckBatch calls (see ratelimit/batching.py).
        self.ratelimit = AsyncRateLimitAPI(t, batch=batch_checks)
        self.limit = self.ratelimit.limit
        self.session = AsyncSessionAPI(t)
        self.events = AsyncEventsAPI(t)

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


__all__ = ["AsyncClient", "Client"]
