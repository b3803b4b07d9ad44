"""The Lock service: fenced, fair, leased locks (mutex, semaphore, read/write) with waits and holds."""

from __future__ import annotations

import grpc

from coord.lock.v1 import lock_pb2

from .. import metrics
from .._grpc import add_service
from ..config import ConfigError, Settings
from ..metrics.services import LockMetrics
from ..redis import RedisBackend, ScriptSet
from ..tenancy import PerTenant
from ..validation import Limits
from .keys import LockKeys
from .servicer import LockLimits, LockServicer
from .store import LockStore, Mode

SERVICE = lock_pb2.DESCRIPTOR.services_by_name["LockService"]
SERVICE_NAME: str = SERVICE.full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register LockService on ``server``; returns its full name (for health and reflection).

    Each tenant gets its own store, made on its first call: its keys under ``coord:<tenant>:lock:``,
    and its own waiters (wake-up channel and heartbeat task, stopped by ``redis.close()``).
    """
    if settings.lock_waiter_heartbeat >= settings.lock_waiter_ttl:
        raise ConfigError("lock waiter heartbeat: must be shorter than the lock waiter TTL")
    scripts = ScriptSet(__name__)
    counted = metrics.of(server)
    # Bound once, shared by every tenant's store: mode labels "exclusive" and "shared".
    lock_metrics = LockMetrics(counted, [m.name.lower() for m in Mode]) if counted is not None else None

    def store_of(tenant: str) -> LockStore:
        return LockStore(
            redis,
            scripts,
            LockKeys(tenant),
            history_ms=round(settings.lock_history * 1000),
            waiter_ttl_ms=round(settings.lock_waiter_ttl * 1000),
            heartbeat_interval=settings.lock_waiter_heartbeat,
            fallback_max=settings.lock_fallback,
            metrics=lock_metrics,
        )

    limits = LockLimits(Limits.from_settings(settings), max(1, round(settings.lock_default_ttl * 1000)))
    add_service(server, LockServicer(PerTenant(store_of, settings.tenant), limits), SERVICE)
    return SERVICE_NAME
