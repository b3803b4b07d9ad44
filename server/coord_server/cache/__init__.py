"""The Cache service: get/set with TTL, batches, versions and compare-and-set, counters."""

from __future__ import annotations

import grpc

from coord.cache.v1 import cache_pb2

from .. import metrics
from .._grpc import add_service
from ..config import Settings
from ..metrics.services import CacheLookups
from ..redis import RedisBackend, ScriptSet
from ..tenancy import PerTenant
from ..validation import Limits
from .keys import CacheKeys
from .servicer import CacheServicer
from .store import CacheStore

SERVICE = cache_pb2.DESCRIPTOR.services_by_name["CacheService"]
SERVICE_NAME: str = SERVICE.full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register CacheService on ``server``; returns its full name (for health and reflection).

    Each tenant gets its own store (its keys under ``coord:<tenant>:cache:``), made on its first call.
    """
    scripts = ScriptSet(__name__)
    tombstone_ms = round(settings.tombstone_ttl * 1000)
    stores = PerTenant(
        lambda tenant: CacheStore(redis, scripts, CacheKeys(tenant), tombstone_ms), settings.tenant
    )
    servicer = CacheServicer(stores, Limits.from_settings(settings), settings.max_message_bytes)
    counted = metrics.of(server)
    if counted is not None:
        servicer.lookups = CacheLookups(counted)
    add_service(server, servicer, SERVICE)
    return SERVICE_NAME
