"""AdminService transport: proto -> limits -> StatsCollector -> proto. No Redis calls here."""

from __future__ import annotations

import time
from typing import Any

import grpc

from coord.admin.v1 import admin_pb2, admin_pb2_grpc

from .._grpc import rpc
from .._proto import duration_of_ms
from ..errors import invalid
from ..validation import duration_within
from .stats import (
    MODE_CLUSTER,
    MODE_EMBEDDED,
    MODE_SENTINEL,
    MODE_SINGLE,
    Stats,
    StatsCollector,
)

Ctx = grpc.aio.ServicerContext[Any, Any]

DEFAULT_SCAN_BUDGET_MS = 1000
MAX_SCAN_BUDGET_MS = 30_000
DEFAULT_SAMPLE = 200
MAX_SAMPLE = 1000

_MODES = {
    MODE_SINGLE: admin_pb2.REDIS_MODE_SINGLE,
    MODE_CLUSTER: admin_pb2.REDIS_MODE_CLUSTER,
    MODE_EMBEDDED: admin_pb2.REDIS_MODE_EMBEDDED,
    MODE_SENTINEL: admin_pb2.REDIS_MODE_SENTINEL,
}


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Server-wide, not per tenant: the answer covers every tenant's keys (hence its own permission)."""

    def __init__(
        self,
        collector: StatsCollector,
        version: str,
        settings: list[tuple[str, str]],
        started: tuple[float, float],
    ) -> None:
        self._collector = collector
        self._version = version
        self._settings = [admin_pb2.Setting(name=n, value=v) for n, v in settings]
        self._started_wall, self._started_mono = started  # (time.time(), time.monotonic()) at start

    @rpc
    async def GetStats(self, request: admin_pb2.GetStatsRequest, context: Ctx) -> admin_pb2.GetStatsResponse:
        budget_ms = duration_within(
            "scan_budget", request.scan_budget, 1, MAX_SCAN_BUDGET_MS, unset_ms=DEFAULT_SCAN_BUDGET_MS
        )
        sample = request.sample_size or DEFAULT_SAMPLE
        if sample > MAX_SAMPLE:
            raise invalid("sample_size", f"must be at most {MAX_SAMPLE}")
        # The call's deadline bounds the scan too: keep a fifth of what is left for the rest.
        left = context.time_remaining()
        budget = budget_ms / 1000
        if left is not None:
            budget = max(0.0, min(budget, left * 0.8))
        stats = await self._collector.collect(budget, sample)
        return admin_pb2.GetStatsResponse(
            redis=_redis_pb(stats),
            keys=[
                admin_pb2.ServiceKeys(
                    tenant=k.tenant,
                    service=k.service,
                    keys=k.keys,
                    sampled_keys=k.sampled_keys,
                    sampled_bytes=k.sampled_bytes,
                    estimated_bytes=k.estimated_bytes,
                )
                for k in stats.keys
            ],
            scan=admin_pb2.KeyScan(
                complete=stats.scan.complete, scanned_keys=stats.scan.scanned_keys, nodes=stats.scan.nodes
            ),
            server=self._server_pb(),
        )

    def _server_pb(self) -> admin_pb2.ServerStats:
        uptime_ms = round((time.monotonic() - self._started_mono) * 1000)
        server = admin_pb2.ServerStats(
            version=self._version, uptime=duration_of_ms(uptime_ms), settings=self._settings
        )
        server.start_time.FromMilliseconds(round(self._started_wall * 1000))
        return server


def _redis_pb(stats: Stats) -> admin_pb2.RedisStats:
    return admin_pb2.RedisStats(
        mode=_MODES[stats.mode],
        version=stats.version,
        eviction_policy=stats.policy,
        used_memory_bytes=stats.used_memory,
        max_memory_bytes=stats.maxmemory,
        nodes=[
            admin_pb2.RedisNode(
                address=n.address,
                version=n.version,
                used_memory_bytes=n.used_memory,
                used_memory_peak_bytes=n.used_memory_peak,
                used_memory_rss_bytes=n.used_memory_rss,
                max_memory_bytes=n.maxmemory,
                eviction_policy=n.policy,
                fragmentation_ratio=n.fragmentation,
            )
            for n in stats.nodes
        ],
    )
