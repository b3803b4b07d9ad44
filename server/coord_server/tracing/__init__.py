"""OpenTelemetry tracing (``COORD_TRACING``), off by default.

On, every RPC is a SERVER span named ``coord.cache.v1.CacheService/Get`` (``rpc.system``,
``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``), a child of the caller's span when its
metadata carries a W3C ``traceparent``, and every batch of Redis scripts the RPC runs is a CLIENT
span ``redis <script>`` under it. The JSON log lines written meanwhile carry the ``trace_id``.

``COORD_TRACING=auto`` (the default) turns tracing on when the standard ``OTEL_TRACES_EXPORTER`` is
set to an exporter (anything but ``none``); ``on`` and ``off`` decide regardless. Everything else is
the OpenTelemetry SDK's own environment configuration (``OTEL_SERVICE_NAME``, default ``coord``;
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``...): see spans.py.

Off, nothing is wrapped and nothing of OpenTelemetry is imported: _grpc.add_service asks :func:`of`
for the server's tracing at registration and gets None, the Redis layer's hook stays None.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING

from ..config import Settings

if TYPE_CHECKING:
    from .spans import Tracing

_BY_SERVER: weakref.WeakKeyDictionary[object, Tracing] = weakref.WeakKeyDictionary()

# OTEL_TRACES_EXPORTER values that export nothing: with COORD_TRACING=auto, tracing stays off.
_NO_EXPORTER = frozenset({"", "none"})


def wanted(settings: Settings) -> bool:
    """Whether ``settings`` (and, for ``auto``, the environment) turn tracing on."""
    if settings.tracing == "on":
        return True
    if settings.tracing == "off":
        return False
    return os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() not in _NO_EXPORTER


def enable(server: object, settings: Settings) -> Tracing | None:
    """The tracing of ``server`` when it is on (None otherwise): every service registered on it
    afterwards is traced. The process's tracer provider is set up on the first call (spans.py)."""
    if not wanted(settings):
        return None
    from . import spans  # only now: a server without tracing never imports OpenTelemetry

    tracing = spans.Tracing.for_process()
    _BY_SERVER[server] = tracing
    return tracing


def of(server: object) -> Tracing | None:
    return _BY_SERVER.get(server)


async def flush(server: object) -> None:
    """Export the spans of ``server`` still buffered (at its shutdown); nothing when it traces none."""
    tracing = _BY_SERVER.get(server)
    if tracing is not None:
        await tracing.flush()


__all__ = ["enable", "flush", "of", "wanted"]
