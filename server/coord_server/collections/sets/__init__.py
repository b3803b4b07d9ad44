"""SetService: sets (Redis sets) of distinct string members."""

from __future__ import annotations

import grpc

from coord.collections.v1 import set_pb2

from ..._grpc import add_service
from ...config import Settings
from ...redis import RedisBackend
from ...tenancy import PerTenant
from ...validation import Limits
from ..common import scripts
from ..keys import CollectionKeys
from .servicer import SetServicer
from .store import SetStore

SERVICE = set_pb2.DESCRIPTOR.services_by_name["SetService"]


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register SetService on ``server``; returns its full name (for health and reflection)."""
    max_elements = settings.collection_max_elements
    stores = PerTenant(
        lambda tenant: SetStore(redis, scripts(), CollectionKeys(tenant), max_elements), settings.tenant
    )
    add_service(server, SetServicer(stores, Limits.from_settings(settings)), SERVICE)
    return SERVICE.full_name
