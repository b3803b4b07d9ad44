"""The Cache service: :class:`CacheAPI` (sync) and :class:`AsyncCacheAPI` (asyncio).

Both send the calls that ``_codec`` builds and parses; only the sending differs. Values are bytes (a
``str`` is stored as UTF-8). TTLs are seconds (``float``) or ``timedelta``; ``None`` means the
server's default TTL. Expected outcomes are results, not exceptions: a miss is ``Entry.found ==
False``, a condition that did not hold is ``SetResult.stored == False`` with its ``outcome``.

    with Client() as client:
        client.cache.set("greeting", "hello", ttl=60)
        client.cache.get("greeting").value            # b"hello"
        client.cache.get_or_set("report", build_report, ttl=300)

        @client.cache.cached(ttl=60, key="user:{user_id}")
        def load_user(user_id: int) -> dict: ...

The package: ``models`` (what calls take and return), ``_codec`` (request building and response
parsing, shared), ``sync`` and ``aio`` (the two APIs), ``_cached`` (what both ``cached`` share),
``_near`` (the near cache: ``Client(near_cache=NearCache(...))``).
"""

from ._cached import EarlyExpiry
from ._codec import SERVICE
from ._near import NearCache, NearCacheStats
from .aio import AsyncCacheAPI, AsyncCachedFunction
from .models import (
    TTL,
    DeleteOutcome,
    DeleteResult,
    Entry,
    FillLease,
    IncrementResult,
    KeyDeleteResult,
    Serializer,
    SetItem,
    SetOutcome,
    SetResult,
    TouchResult,
    Value,
)
from .sync import CacheAPI, CachedFunction

__all__ = [
    "SERVICE",
    "TTL",
    "AsyncCacheAPI",
    "AsyncCachedFunction",
    "CacheAPI",
    "CachedFunction",
    "DeleteOutcome",
    "DeleteResult",
    "EarlyExpiry",
    "Entry",
    "FillLease",
    "IncrementResult",
    "KeyDeleteResult",
    "NearCache",
    "NearCacheStats",
    "Serializer",
    "SetItem",
    "SetOutcome",
    "SetResult",
    "TouchResult",
    "Value",
]
