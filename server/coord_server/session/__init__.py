"""The Session service: hashed bearer tokens, idle and absolute expiry, per-subject index, rotation."""

from __future__ import annotations

import grpc

from coord.session.v1 import session_pb2

from .. import metrics
from .._grpc import add_service
from ..config import Settings
from ..metrics.services import SessionCounts
from ..redis import RedisBackend, ScriptSet
from ..tenancy import PerTenant
from ..validation import Limits
from .keys import SessionKeys
from .servicer import SessionLimits, SessionServicer
from .store import SessionConfig, SessionStore

SERVICE = session_pb2.DESCRIPTOR.services_by_name["SessionService"]
SERVICE_NAME: str = SERVICE.full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register SessionService on ``server``; returns its full name (for health and reflection).

    Each tenant gets its own store (its keys under ``coord:<tenant>:session:``), made on its first
    call: a token issued to one tenant is unknown to every other.
    """
    config = SessionConfig(
        tombstone_ms=round(settings.session_tombstone_ttl * 1000),
        touch_interval_ms=round(settings.session_touch_interval * 1000),
        max_attributes_bytes=settings.session_max_attributes_bytes,
    )
    scripts = ScriptSet(__name__)
    stores = PerTenant(
        lambda tenant: SessionStore(redis, scripts, SessionKeys(tenant), config), settings.tenant
    )
    servicer = SessionServicer(stores, Limits.from_settings(settings), SessionLimits.from_settings(settings))
    counted = metrics.of(server)
    if counted is not None:
        servicer.counts = SessionCounts(counted)
    add_service(server, servicer, SERVICE)
    return SERVICE_NAME
