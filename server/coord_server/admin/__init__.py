"""The Admin service: what Coord keeps in Redis and how this server is set up (GetStats).

Unlike the other services it is not per tenant: GetStats counts every tenant's keys, so it needs the
``admin`` permission, which ``"*"`` does not grant (auth/identity.py). Without authentication anyone
who reaches the port may call it, as every other method.
"""

from __future__ import annotations

import importlib.metadata
import time

import grpc

from coord.admin.v1 import admin_pb2

from .._grpc import add_service
from ..config import Settings
from ..redis import RedisBackend
from .servicer import AdminServicer
from .stats import StatsCollector, effective_settings, mode_of

SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
SERVICE_NAME: str = SERVICE.full_name


def coord_version() -> str:
    """The installed package's version, or "unknown" when run from a tree that was never installed."""
    try:
        return importlib.metadata.version("coord")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register AdminService on ``server``; returns its full name (for health and reflection)."""
    collector = StatsCollector(redis, mode_of(settings, redis))
    started = (time.time(), time.monotonic())
    servicer = AdminServicer(collector, coord_version(), effective_settings(settings), started)
    add_service(server, servicer, SERVICE)
    return SERVICE_NAME
