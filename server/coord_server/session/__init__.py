"""The Session service: hashed bearer tokens, idle and absolute expiry, per-subject index, rotation."""

from __future__ import annotations

import grpc

from coord.session.v1 import session_pb2, session_pb2_grpc

from ..config import Settings
from ..redis import RedisBackend, ScriptSet
from ..validation import Limits
from .keys import SessionKeys
from .servicer import SessionLimits, SessionServicer
from .store import SessionConfig, SessionStore

SERVICE_NAME: str = session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register SessionService on ``server``; returns its full name (for health and reflection)."""
    config = SessionConfig(
        tombstone_ms=round(settings.session_tombstone_ttl * 1000),
        touch_interval_ms=round(settings.session_touch_interval * 1000),
        max_attributes_bytes=settings.session_max_attributes_bytes,
    )
    store = SessionStore(redis, ScriptSet(__name__), SessionKeys(settings.tenant), config)
    session_pb2_grpc.add_SessionServiceServicer_to_server(
        SessionServicer(store, Limits.from_settings(settings), SessionLimits.from_settings(settings)), server
    )
    return SERVICE_NAME
