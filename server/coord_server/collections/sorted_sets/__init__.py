"""SortedSetService: sorted sets (Redis sorted sets) of string members with scores, and leaderboards."""

from __future__ import annotations

import grpc

from coord.collections.v1 import sorted_set_pb2

from ..._grpc import add_service
from ...config import Settings
from ...redis import RedisBackend
from ...tenancy import PerTenant
from ...validation import Limits
from ..common import scripts
from ..keys import CollectionKeys
from .servicer import SortedSetServicer
from .store import SortedSetStore

SERVICE = sorted_set_pb2.DESCRIPTOR.services_by_name["SortedSetService"]


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register SortedSetService on ``server``; returns its full name (for health and reflection)."""
    max_elements = settings.collection_max_elements
    stores = PerTenant(
        lambda tenant: SortedSetStore(redis, scripts(), CollectionKeys(tenant), max_elements),
        settings.tenant,
    )
    add_service(server, SortedSetServicer(stores, Limits.from_settings(settings)), SERVICE)
    return SERVICE.full_name
