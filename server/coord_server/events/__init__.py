"""The Events service: durable topics on Redis Streams, resumable subscriptions, consumer groups."""

from __future__ import annotations

import grpc

from coord.events.v1 import events_pb2

from .. import metrics
from .._grpc import add_service
from ..config import Settings
from ..metrics.event_groups import GroupSampler
from ..metrics.services import EventsCounts
from ..redis import RedisBackend, ScriptSet
from ..tenancy import PerTenant
from ..validation import Limits
from .keys import EventsKeys
from .readers import StreamReaders
from .servicer import EventsServicer
from .store import EventsStore, Retention
from .tenant import TenantEvents

SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventsService"]
SERVICE_NAME: str = SERVICE.full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register EventsService on ``server``; returns its full name (for health and reflection).

    Each tenant gets its own store, hub and volatile listener (tenant.py), made on its first call.
    Their background tasks belong to the streams using them and stop as those streams end, as the
    server's shutdown ends every stream. The live readers (readers.py) are the process's, shared by
    every tenant, and stop when the backend closes.
    """
    retention = Retention(settings.events_max_length, round(settings.events_max_age * 1000))
    scripts = ScriptSet(__name__)
    dedup_ms = round(settings.events_dedup_window * 1000)
    # How long one live read waits for events before it is sent again. A read is bounded by this plus
    # the Redis timeout, so it is also about how long a Redis that stops answering goes unnoticed.
    block_ms = max(10, min(5000, round(settings.redis_timeout * 1000 / 2)))
    readers = StreamReaders.for_backend(
        redis,
        max_readers=settings.events_readers,
        streams_per_read=settings.events_read_streams,
        block_ms=block_ms,
    )

    def tenant_of(tenant: str) -> TenantEvents:
        return TenantEvents.build(
            EventsStore(redis, scripts, EventsKeys(tenant), retention, dedup_ms),
            readers,
            block_ms=block_ms,
            buffer_events=settings.events_subscriber_buffer,
            pattern_refresh=settings.events_pattern_refresh,
        )

    servicer = EventsServicer(
        PerTenant(tenant_of, settings.tenant),
        Limits.from_settings(settings),
        heartbeat_ms=round(settings.events_heartbeat * 1000),
        ack_timeout_ms=round(settings.events_ack_timeout * 1000),
        max_deliveries=settings.events_max_deliveries,
    )
    counted = metrics.of(server)
    if counted is not None:
        servicer.counts = EventsCounts(counted)
        servicer.groups = GroupSampler(counted, redis)
    # Subscribe may yield a batch of events already encoded (shared by every subscriber of the batch).
    add_service(server, servicer, SERVICE, preencoded={"Subscribe"})
    return SERVICE_NAME
