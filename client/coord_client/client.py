"""``Client`` and ``AsyncClient``: one channel to Coord, one attribute per service.

    from coord_client import Client

    with Client("127.0.0.1:50051", timeout=2.0) as client:
        client.cache.set("k", b"v", ttl=30)
        client.map("user:42").set(name="Ada")

A service joins the client with one line in each ``__init__`` below (``self.lock = LockAPI(t)``),
next to ``cache``. Collections are reached through handles on one name instead: ``client.map(name)``,
``client.list(name)``, ``client.set(name)`` and ``client.sorted_set(name)``. Both clients share the
channel options, deadlines and retry rules of ``_base``, and what :class:`_ClientBase` holds; each
only opens its kind of channel and closes it its own way.
"""

from __future__ import annotations

from types import TracebackType
from typing import Generic

import grpc

from ._base import (
    DEFAULT_MAX_IN_FLIGHT,
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
    security,
    sync_channel,
)
from ._tls import TLSConfig, TokenSource
from .admin import AdminAPI, AsyncAdminAPI
from .cache import AsyncCacheAPI, CacheAPI
from .collections import (
    AsyncCollections,
    AsyncList,
    AsyncMap,
    AsyncSet,
    AsyncSortedSet,
    Collections,
    List,
    Map,
    Set,
    SortedSet,
)
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
    ``options`` are extra gRPC channel options, and ``metadata`` is sent with every call.

    ``tls`` turns on TLS: ``True`` checks the server against the system's roots, a
    :class:`TLSConfig` gives the CA and a client certificate (paths or PEM bytes). ``credentials``
    are ready-made gRPC channel credentials instead. ``token`` (an API key or a JWT; a str, or a
    callable returning one, asked on every call so that rotation needs no new client) is sent as
    ``authorization: Bearer <token>`` with every call, streams included; without TLS it may only go
    to a loopback address or a unix socket (ValueError otherwise).

    ``max_in_flight`` (default 512) bounds the unary calls on the channel at once, across all
    threads; further calls wait in the client for a slot, within their own deadline (a call still
    waiting when its deadline passes raises DeadlineExceeded and was not sent). Streams take no slot.
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
        tls: TLSConfig | bool | None = None,
        token: TokenSource | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        sec = security(target, tls=tls, credentials=credentials, token=token)
        t = Transport(
            sync_channel(target, [*sec.options, *options], sec.credentials),
            timeout=timeout,
            retry=retry,
            metadata=metadata,
            token=sec.token,
            max_in_flight=max_in_flight,
        )
        super().__init__(target, t)
        self.cache = CacheAPI(t)
        self.lock = LockAPI(t)
        self.ratelimit = RateLimitAPI(t)
        self.limit = self.ratelimit.limit  # client.limit("user:42", rate="100/m")
        self.session = SessionAPI(t)
        self.events = EventsAPI(t)
        self.admin = AdminAPI(t)
        self._collections = Collections(t)

    def map(self, name: str) -> Map:
        """The map (a Redis hash) called ``name``: ``client.map("user:42").set(name="Ada")``."""
        return self._collections.map(name)

    def list(self, name: str) -> List:
        """The list called ``name``: ``client.list("jobs").pop(wait=30)``."""
        return self._collections.list(name)

    def set(self, name: str) -> Set:
        """The set called ``name``: ``client.set("tags").add("red")``."""
        return self._collections.set(name)

    def sorted_set(self, name: str) -> SortedSet:
        """The sorted set (a leaderboard) called ``name``: ``client.sorted_set("board").top(10)``."""
        return self._collections.sorted_set(name)

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
    ``async with``. Fire as many concurrent calls as you like (``asyncio.gather`` of 10,000): at
    most ``max_in_flight`` are on the channel at once, the rest wait their turn within their deadline.
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
        tls: TLSConfig | bool | None = None,
        token: TokenSource | None = None,
        batch_checks: bool = True,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        sec = security(target, tls=tls, credentials=credentials, token=token)
        t = AsyncTransport(
            async_channel(target, [*sec.options, *options], sec.credentials),
            timeout=timeout,
            retry=retry,
            metadata=metadata,
            token=sec.token,
            max_in_flight=max_in_flight,
        )
        super().__init__(target, t)
        self.cache = AsyncCacheAPI(t)
        self.lock = AsyncLockAPI(t)
        # batch_checks: concurrent rate-limit checks share CheckBatch calls (see ratelimit/batching.py).
        self.ratelimit = AsyncRateLimitAPI(t, batch=batch_checks)
        self.limit = self.ratelimit.limit
        self.session = AsyncSessionAPI(t)
        self.events = AsyncEventsAPI(t)
        self.admin = AsyncAdminAPI(t)
        self._collections = AsyncCollections(t)

    def map(self, name: str) -> AsyncMap:
        """The map called ``name``: ``await client.map("user:42").get("name")``."""
        return self._collections.map(name)

    def list(self, name: str) -> AsyncList:
        """The list called ``name``: ``await client.list("jobs").pop(wait=30)``."""
        return self._collections.list(name)

    def set(self, name: str) -> AsyncSet:
        """The set called ``name``: ``await client.set("tags").add("red")``."""
        return self._collections.set(name)

    def sorted_set(self, name: str) -> AsyncSortedSet:
        """The sorted set (a leaderboard) called ``name``: ``await client.sorted_set("b").top(10)``."""
        return self._collections.sorted_set(name)

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
