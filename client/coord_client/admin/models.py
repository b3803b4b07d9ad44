"""What ``admin.get_stats`` returns: plain frozen dataclasses, no protobuf types."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RedisNode:
    """One Redis node's figures (one per master on a cluster). Sizes in bytes; 0 max_memory: no limit."""

    address: str
    version: str
    used_memory: int
    used_memory_peak: int
    used_memory_rss: int
    max_memory: int
    eviction_policy: str
    fragmentation_ratio: float


@dataclass(frozen=True)
class RedisStats:
    """The Redis Coord uses: ``mode`` is "single", "cluster", "embedded" or "sentinel"."""

    mode: str
    version: str
    eviction_policy: str
    used_memory: int
    max_memory: int
    nodes: tuple[RedisNode, ...]


@dataclass(frozen=True)
class ServiceKeys:
    """One tenant's keys of one service: counted, and their memory estimated from a sample."""

    tenant: str
    service: str
    keys: int
    sampled_keys: int
    sampled_bytes: int
    estimated_bytes: int


@dataclass(frozen=True)
class KeyScan:
    """Whether the counts are complete (SCAN finished within its budget) and how many keys it saw."""

    complete: bool
    scanned_keys: int
    nodes: int


@dataclass(frozen=True)
class ServerStats:
    """The Coord server that answered: version, start, uptime (seconds), settings without secrets."""

    version: str
    start_time: datetime | None
    uptime: float
    settings: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Stats:
    """Everything ``get_stats`` reports."""

    redis: RedisStats
    keys: tuple[ServiceKeys, ...]
    scan: KeyScan
    server: ServerStats

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601, settings as an object)."""
        data = asdict(self)
        start = self.server.start_time
        data["server"]["start_time"] = start.isoformat() if start else None
        data["server"]["settings"] = dict(self.server.settings)
        return data
