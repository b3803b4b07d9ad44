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
from .invalidations import InvalidationHub
from .keys import CacheKeys
from .leases import LeaseWaiting
from .prefixes import PrefixRules
from .servicer import CacheServicer
from .store import CacheStore
from .tags import TTL_MARGIN_MS

SERVICE = cache_pb2.DESCRIPTOR.services_by_name["CacheService"]
SERVICE_NAME: str = SERVICE.full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register CacheService on ``server``; returns its full name (for health and reflection).

    Each tenant gets its own store (its keys under ``coord:<tenant>:cache:``), made on its first call,
    and its own invalidation subscription, made by its first WatchInvalidations.
    """
    scripts = ScriptSet(__name__)
    tombstone_ms = round(settings.tombstone_ttl * 1000)
    # Waiting GetOrLease calls behave as waiting lock Acquires: the lock's waiter settings.
    lease_waiting = LeaseWaiting(
        waiter_ttl_ms=round(settings.lock_waiter_ttl * 1000),
        heartbeat_interval=settings.lock_waiter_heartbeat,
        fallback=settings.lock_fallback,
    )
    prefix_rules = PrefixRules(
        settings.cache_prefix_delimiter, settings.cache_min_prefix, settings.cache_prefix_depth
    )
    stores = PerTenant(
        lambda tenant: CacheStore(
            redis,
            scripts,
            CacheKeys(tenant),
            tombstone_ms,
            invalidations=settings.cache_invalidations,
            leases=lease_waiting,
            # A tag key outlives every entry stored with its generation (tags.py).
            tag_ttl_ms=round(settings.max_ttl * 1000) + TTL_MARGIN_MS,
            prefix_rules=prefix_rules,  # a prefix key lives as long as a tag key (prefixes.py)
            push_value_max=settings.cache_push_value_max,
        ),
        settings.tenant,
    )
    servicer = CacheServicer(stores, Limits.from_settings(settings), settings.max_message_bytes)
    servicer.max_lease_ms = round(settings.cache_max_lease * 1000)
    servicer.max_tags = settings.cache_max_tags
    servicer.prefix_rules = prefix_rules
    if settings.cache_invalidations:
        # WatchInvalidations: one subscription per tenant, made by its first watcher (invalidations.py).
        servicer.invalidations = PerTenant(
            lambda tenant: InvalidationHub(redis, CacheKeys(tenant)), settings.tenant
        )
    counted = metrics.of(server)
    if counted is not None:
        servicer.lookups = CacheLookups(counted)
    add_service(server, servicer, SERVICE)
    return SERVICE_NAME
