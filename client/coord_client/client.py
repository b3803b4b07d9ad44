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
from .cache._near import KEEPALIVE_OPTIONS, NearCache
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
from .election import AsyncElection, AsyncElectionAPI, Election, ElectionAPI
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

    ``near_cache`` keeps cache entries in this process, dropped by invalidations the server pushes: a
    :class:`~coord_client.cache.NearCache` (which keys, how many entries and bytes), or ``True`` for
    every key with the defaults. Reads of kept keys are then answered from memory, with no network;
    ``coord_client.cache._near`` tells how it stays correct. Its counters:
    ``client.cache.near_cache.stats``.
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
        near_cache: NearCache | bool | None = None,
    ) -> None:
        near = _near_cache(near_cache)
        sec = security(target, tls=tls, credentials=credentials, token=token)
        t = Transport(
            sync_channel(target, [*_near_options(near), *sec.options, *options], sec.credentials),
            timeout=timeout,
            retry=retry,
            metadata=metadata,
            token=sec.token,
            max_in_flight=max_in_flight,
        )
        super().__init__(target, t)
        self.cache = CacheAPI(t, near)
        self.lock = LockAPI(t)
        self.ratelimit = RateLimitAPI(t)
        self.limit = self.ratelimit.limit  # client.limit("user:42", rate="100/m")
        self.session = SessionAPI(t)
        self.events = EventsAPI(t)
        self.admin = AdminAPI(t)
        self._collections = Collections(t)
        self._elections = ElectionAPI(t)

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

    def election(self, name: str) -> Election:
        """The election called ``name``: ``with client.election("scheduler").campaign(value=b"a"):``."""
        return self._elections.election(name)

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self.cache._close_near()
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
    With ``near_cache``, its stream runs as a task of this loop (started by the first
    read if the client is made outside it).
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
        near_cache: NearCache | bool | None = None,
    ) -> None:
        near = _near_cache(near_cache)
        sec = security(target, tls=tls, credentials=credentials, token=token)
        t = AsyncTransport(
            async_channel(target, [*_near_options(near), *sec.options, *options], sec.credentials),
            timeout=timeout,
            retry=retry,
            metadata=metadata,
            token=sec.token,
            max_in_flight=max_in_flight,
        )
        super().__init__(target, t)
        self.cache = AsyncCacheAPI(t, near)
        self.lock = AsyncLockAPI(t)
        # batch_checks: concurrent rate-limit checks share CheckBatch calls (see ratelimit/batching.py).
        self.ratelimit = AsyncRateLimitAPI(t, batch=batch_checks)
        self.limit = self.ratelimit.limit
        self.session = AsyncSessionAPI(t)
        self.events = AsyncEventsAPI(t)
        self.admin = AsyncAdminAPI(t)
        self._collections = AsyncCollections(t)
        self._elections = AsyncElectionAPI(t)

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

    def election(self, name: str) -> AsyncElection:
        """The election called ``name``: ``async with client.election("s").campaign(value=b"a"):``."""
        return self._elections.election(name)

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self.cache._close_near()
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _near_cache(near_cache: NearCache | bool | None) -> NearCache | None:
    if near_cache is None or near_cache is False:
        return None
    if near_cache is True:
        return NearCache()
    if not isinstance(near_cache, NearCache):
        raise TypeError(f"near_cache must be a NearCache or True, not {type(near_cache).__name__}")
    if near_cache.runner is not None:
        raise ValueError("this NearCache already serves another client; make one per client")
    return near_cache


def _near_options(near: NearCache | None) -> tuple[tuple[str, int], ...]:
    """A near cache serves reads from memory: a server that stops answering must be noticed."""
    return KEEPALIVE_OPTIONS if near is not None else ()


__all__ = ["AsyncClient", "Client"]
