"""The Admin service's calls as data (see :mod:`coord_client._call`): arguments checked, request
built, response read. No I/O here."""

from __future__ import annotations

from coord.admin.v1 import admin_pb2

from .._call import Call
from .._convert import Seconds, duration_field, from_duration, utc_or_none
from .models import KeyScan, RedisNode, RedisStats, ServerStats, ServiceKeys, Stats

SERVICE = "coord.admin.v1.AdminService"

_MODES = {
    admin_pb2.REDIS_MODE_SINGLE: "single",
    admin_pb2.REDIS_MODE_CLUSTER: "cluster",
    admin_pb2.REDIS_MODE_EMBEDDED: "embedded",
    admin_pb2.REDIS_MODE_SENTINEL: "sentinel",
}


def get_stats(scan_budget: Seconds | None, sample_size: int) -> Call[Stats]:
    if isinstance(sample_size, bool) or not isinstance(sample_size, int):
        raise TypeError(f"sample_size must be an int, not {type(sample_size).__name__}")
    if not 0 <= sample_size <= 1000:
        raise ValueError(f"sample_size must be 0 (the server's default) to 1000 (got {sample_size})")
    request = admin_pb2.GetStatsRequest(
        scan_budget=duration_field(scan_budget, "scan_budget"), sample_size=sample_size
    )
    return Call("GetStats", request, _stats)


def _stats(response: admin_pb2.GetStatsResponse) -> Stats:
    redis = response.redis
    nodes = tuple(
        RedisNode(
            address=n.address,
            version=n.version,
            used_memory=n.used_memory_bytes,
            used_memory_peak=n.used_memory_peak_bytes,
            used_memory_rss=n.used_memory_rss_bytes,
            max_memory=n.max_memory_bytes,
            eviction_policy=n.eviction_policy,
            fragmentation_ratio=n.fragmentation_ratio,
        )
        for n in redis.nodes
    )
    server = response.server
    return Stats(
        redis=RedisStats(
            mode=_MODES.get(redis.mode, "unknown"),
            version=redis.version,
            eviction_policy=redis.eviction_policy,
            used_memory=redis.used_memory_bytes,
            max_memory=redis.max_memory_bytes,
            nodes=nodes,
        ),
        keys=tuple(
            ServiceKeys(k.tenant, k.service, k.keys, k.sampled_keys, k.sampled_bytes, k.estimated_bytes)
            for k in response.keys
        ),
        scan=KeyScan(response.scan.complete, response.scan.scanned_keys, response.scan.nodes),
        server=ServerStats(
            version=server.version,
            start_time=utc_or_none(server.start_time, server.HasField("start_time")),
            uptime=from_duration(server.uptime),
            settings=tuple((s.name, s.value) for s in server.settings),
        ),
    )
