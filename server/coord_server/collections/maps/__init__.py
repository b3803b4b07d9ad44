"""MapService: maps (Redis hashes) of string fields to byte values."""

from __future__ import annotations

import grpc

from coord.collections.v1 import map_pb2

from ..._grpc import add_service
from ...config import Settings
from ...redis import RedisBackend
from ...tenancy import PerTenant
from ...validation import Limits
from ..common import scripts
from ..keys import CollectionKeys
from .servicer import MapServicer
from .store import MapStore

SERVICE = map_pb2.DESCRIPTOR.services_by_name["MapService"]


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register MapService on ``server``; returns its full name (for health and reflection)."""
    max_elements = settings.collection_max_elements
    stores = PerTenant(
        lambda tenant: MapStore(redis, scripts(), CollectionKeys(tenant), max_elements), settings.tenant
    )
    add_service(
        server, MapServicer(stores, Limits.from_settings(settings), settings.max_message_bytes), SERVICE
    )
    return SERVICE.full_name
