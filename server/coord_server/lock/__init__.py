"""The Lock service: fenced, fair, leased locks (mutex, semaphore, read/write) with waits and holds."""

from __future__ import annotations

import grpc

from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from ..config import ConfigError, Settings
from ..redis import RedisBackend, ScriptSet
from ..validation import Limits
from .keys import LockKeys
from .servicer import LockLimits, LockServicer
from .store import LockStore

SERVICE_NAME: str = lock_pb2.DESCRIPTOR.services_by_name["LockService"].full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register LockService on ``server``; returns its full name (for health and reflection)."""
    if settings.lock_waiter_heartbeat >= settings.lock_waiter_ttl:
        raise ConfigError("lock waiter heartbeat: must be shorter than the lock waiter TTL")
    store = LockStore(
        redis,
        ScriptSet(__name__),
        LockKeys(settings.tenant),
        history_ms=round(settings.lock_history * 1000),
        waiter_ttl_ms=round(settings.lock_waiter_ttl * 1000),
        heartbeat_interval=settings.lock_waiter_heartbeat,
        fallback_max=settings.lock_fallback,
    )
    limits = LockLimits(Limits.from_settings(settings), max(1, round(settings.lock_default_ttl * 1000)))
    lock_pb2_grpc.add_LockServiceServicer_to_server(LockServicer(store, limits), server)
    return SERVICE_NAME
