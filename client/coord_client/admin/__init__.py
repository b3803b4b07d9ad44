"""The Admin service: :class:`AdminAPI` (sync) and :class:`AsyncAdminAPI` (asyncio).

    with Client() as client:
        stats = client.admin.get_stats()
        stats.redis.eviction_policy        # "noeviction"
        [(k.tenant, k.service, k.keys) for k in stats.keys]

``coordctl stats`` prints the same as a table (``--json`` as JSON).
"""

from ._codec import SERVICE
from .aio import AsyncAdminAPI
from .models import KeyScan, RedisNode, RedisStats, ServerStats, ServiceKeys, Stats
from .sync import AdminAPI

__all__ = [
    "SERVICE",
    "AdminAPI",
    "AsyncAdminAPI",
    "KeyScan",
    "RedisNode",
    "RedisStats",
    "ServerStats",
    "ServiceKeys",
    "Stats",
]
