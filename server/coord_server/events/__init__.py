"""The Events service: durable topics on Redis Streams, resumable subscriptions, consumer groups."""

from __future__ import annotations

import grpc

from coord.events.v1 import events_pb2

from .._grpc import add_service
from ..config import Settings
from ..redis import RedisBackend, ScriptSet
from ..validation import Limits
from .hub import Hub
from .keys import EventsKeys
from .servicer import EventsServicer
from .store import EventsStore, Retention

SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventsService"]
SERVICE_NAME: str = SERVICE.full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register EventsService on ``server``; returns its full name (for health and reflection)."""
    retention = Retention(settings.events_max_length, round(settings.events_max_age * 1000))
    store = EventsStore(
        redis,
        ScriptSet(__name__),
        EventsKeys(settings.tenant),
        retention,
        round(settings.events_dedup_window * 1000),
    )
    # XREAD BLOCK must return well within the Redis socket timeout, or the read would time out.
    block_ms = max(10, min(5000, round(settings.redis_timeout * 1000 / 2)))
    hub = Hub(
        store,
        block_ms=block_ms,
        buffer_events=settings.events_subscriber_buffer,
        pattern_refresh=settings.events_pattern_refresh,
    )
    servicer = EventsServicer(
        store,
        hub,
        Limits.from_settings(settings),
        heartbeat_ms=round(settings.events_heartbeat * 1000),
        ack_timeout_ms=round(settings.events_ack_timeout * 1000),
        max_deliveries=settings.events_max_deliveries,
    )
    # Subscribe may yield a batch of events already encoded (shared by every subscriber of the batch).
    add_service(server, servicer, SERVICE, preencoded={"Subscribe"})
    return SERVICE_NAME
