"""The Election service: leader election on the lock's fencing, FIFO queue and Hold stream.

A campaign is an exclusive lock Hold on the election's name, in the election's own key space
(``coord:<tenant>:election:``); the term of a leadership is that grant's fencing token. Every grant,
release and expiry is recorded, by the same Lua step, in the election's log of changes, which
Observe streams follow (docs/election.md).
"""

from __future__ import annotations

import grpc

from coord.election.v1 import election_pb2

from .._grpc import add_service
from ..config import ConfigError, Settings
from ..events.readers import StreamReaders
from ..redis import RedisBackend, ScriptSet
from ..tenancy import PerTenant
from ..validation import Limits
from .keys import ElectionKeys
from .observe import Feeds
from .servicer import ElectionLimits, ElectionServicer, Tenant
from .store import ElectionStore

SERVICE = election_pb2.DESCRIPTOR.services_by_name["ElectionService"]
SERVICE_NAME: str = SERVICE.full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register ElectionService on ``server``; returns its full name (for health and reflection).

    Each tenant gets its own store, made on its first call: its keys under ``coord:<tenant>:election:``,
    its own waiters (as the lock's: wake-up channel and heartbeat task, stopped by ``redis.close()``)
    and its own feeds. The live readers of the election logs are the process's (shared with the
    Events service), stopped when the backend closes. The lock's settings apply: the default lease
    (``COORD_LOCK_DEFAULT_TTL``), the history window, the waiter TTL and heartbeat, the fallback.
    """
    if settings.lock_waiter_heartbeat >= settings.lock_waiter_ttl:
        raise ConfigError("lock waiter heartbeat: must be shorter than the lock waiter TTL")
    scripts = ScriptSet(__name__)
    # As the Events service's readers: a read blocks for at most half the Redis timeout.
    block_ms = max(10, min(5000, round(settings.redis_timeout * 1000 / 2)))
    readers = StreamReaders.for_backend(
        redis,
        max_readers=settings.events_readers,
        streams_per_read=settings.events_read_streams,
        block_ms=block_ms,
    )

    def tenant_of(tenant: str) -> Tenant:
        store = ElectionStore(
            redis,
            scripts,
            ElectionKeys(tenant),
            history_ms=round(settings.lock_history * 1000),
            waiter_ttl_ms=round(settings.lock_waiter_ttl * 1000),
            heartbeat_interval=settings.lock_waiter_heartbeat,
            fallback_max=settings.lock_fallback,
        )
        return Tenant(store, Feeds(store, readers, look_every=settings.lock_fallback))

    limits = ElectionLimits(Limits.from_settings(settings), max(1, round(settings.lock_default_ttl * 1000)))
    add_service(server, ElectionServicer(PerTenant(tenant_of, settings.tenant), limits), SERVICE)
    return SERVICE_NAME
