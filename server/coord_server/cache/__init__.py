"""The Cache service: get/set with TTL, batches, versions and compare-and-set, counters."""

from __future__ import annotations

import grpc

from coord.cache.v1 import cache_pb2, cache_pb2_grpc

from ..config import Settings
from ..redis import RedisBackend, ScriptSet
from ..validation import Limits
from .keys import CacheKeys
from .servicer import CacheServicer
from .store import CacheStore

SERVICE_NAME: str = cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register CacheService on ``server``; returns its full name (for health and reflection)."""
    store = CacheStore(
        redis, ScriptSet(__name__), CacheKeys(settings.tenant), round(settings.tombstone_ttl * 1000)
    )
    cache_pb2_grpc.add_CacheServiceServicer_to_server(
        CacheServicer(store, Limits.from_settings(settings)), server
    )
    return SERVICE_NAME
