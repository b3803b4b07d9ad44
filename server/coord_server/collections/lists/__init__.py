"""ListService: lists (Redis lists) of byte values, with blocking Pops woken by Pushes (first come,
first served among the waiters of every Coord server on the same Redis)."""

from __future__ import annotations

import grpc

from coord.collections.v1 import list_pb2

from ..._grpc import add_service
from ...config import Settings
from ...redis import RedisBackend
from ...tenancy import PerTenant
from ...validation import Limits
from ..common import REPLY_MARGIN, scripts
from ..keys import CollectionKeys
from .servicer import ListServicer
from .store import ListStore, Waiting

SERVICE = list_pb2.DESCRIPTOR.services_by_name["ListService"]


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register ListService on ``server``; returns its full name (for health and reflection).

    Each tenant gets its own store, made on its first call, with its own waiters (wake-up channel
    ``coord:<tenant>:coll:wake:<server id>`` and heartbeat task, stopped by ``redis.close()``). A
    waiting Pop also looks again after ``lock_fallback`` without a wake-up: a safety net only, as the
    heartbeat already repairs lost wake-ups.
    """
    max_elements = settings.collection_max_elements
    max_reply = settings.max_message_bytes - REPLY_MARGIN
    waiting = Waiting(
        waiter_ttl_ms=round(settings.list_waiter_ttl * 1000),
        heartbeat_interval=settings.list_waiter_heartbeat,
        fallback=settings.lock_fallback,
    )
    stores = PerTenant(
        lambda tenant: ListStore(
            redis, scripts(), CollectionKeys(tenant), max_elements, waiting, max_reply_bytes=max_reply
        ),
        settings.tenant,
    )
    add_service(server, ListServicer(stores, Limits.from_settings(settings)), SERVICE)
    return SERVICE.full_name
