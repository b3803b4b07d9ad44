"""Prometheus metrics (COORD_METRICS_LISTEN): per-RPC figures with go-grpc-prometheus's names, Redis's
and the services' own (families.py), served at ``/metrics``.

Off (the setting empty) nothing is counted anywhere: no wrapper on the RPC path, no hook in the Redis
layer. On, the app calls :func:`enable` on the gRPC server before registering the services (so each
method binds its series once, _grpc.add_service) and :func:`start` before serving.

With several workers (``--workers N``) each worker serves its own figures on a unix socket in a
directory its supervisor made, and the supervisor serves COORD_METRICS_LISTEN with the figures of all
of them merged (merge.py): counters and histograms summed, gauges as each one says.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ..config import Settings
from ..health import HealthMonitor
from ..redis import RedisBackend
from . import grpc_server
from .families import Metrics
from .http import Endpoint
from .merge import WorkersMetrics, worker_socket
from .redis_metrics import InfoSampler, RedisUp, ScriptTimer

log = logging.getLogger(__name__)

# Set by a supervisor in its workers' environment: the directory of their metrics sockets.
WORKER_SOCKETS_ENV = "_COORD_METRICS_SOCKETS"


def enable(server: object, settings: Settings) -> Metrics | None:
    """The metrics of ``server`` when COORD_METRICS_LISTEN is set (None otherwise); every service
    registered on it afterwards is counted."""
    if not settings.metrics_listen:
        return None
    metrics = Metrics(settings.tenant)
    grpc_server.attach(server, metrics)
    return metrics


def of(server: object) -> Metrics | None:
    """The metrics of ``server``, for a service to bind its own series at registration."""
    return grpc_server.of(server)


@dataclass
class Exporter:
    """The running part of one server's metrics: the endpoint and the INFO sampler."""

    endpoint: Endpoint
    sampler: InfoSampler
    port: int | None  # the TCP port it serves (None: a worker's unix socket)

    async def close(self) -> None:
        await self.endpoint.close()
        await self.sampler.stop()


async def start(
    settings: Settings, server: object, redis: RedisBackend, health: HealthMonitor
) -> Exporter | None:
    """Hook the Redis layer and the health probe, start sampling INFO and serve /metrics (on
    COORD_METRICS_LISTEN, or on a worker's socket for its supervisor). None when metrics are off."""
    metrics = grpc_server.of(server)
    if metrics is None:
        return None
    redis.script_timer = ScriptTimer(metrics)
    health.on_probe = RedisUp(metrics)
    sampler = InfoSampler(metrics, redis)

    async def render() -> bytes:
        return metrics.registry.exposition()

    endpoint = Endpoint(render)
    sockets = os.environ.get(WORKER_SOCKETS_ENV)
    port: int | None = None
    if sockets:
        await endpoint.listen_unix(worker_socket(sockets))
    else:
        port = await endpoint.listen_tcp(settings.metrics_listen)
        log.info("serving Prometheus metrics on http://%s/metrics", _shown(settings.metrics_listen, port))
    sampler.start()
    exporter = Exporter(endpoint, sampler, port)
    redis.on_close(exporter.close)  # the first thing the app's shutdown closes with Redis
    return exporter


def _shown(listen: str, port: int) -> str:
    return f"{listen.rpartition(':')[0]}:{port}"


__all__ = ["WORKER_SOCKETS_ENV", "Exporter", "Metrics", "WorkersMetrics", "enable", "of", "start"]
