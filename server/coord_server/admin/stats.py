"""What Coord keeps in Redis, and how this server is set up: the domain of AdminService.GetStats.

Keys are counted with SCAN ``MATCH coord:*`` on every master (never KEYS, which blocks Redis for as
long as it walks the whole keyspace), within a time budget: when it runs out, the counts are what was
seen so far and ``complete`` is False. Every key is ``coord:<tenant>:<service>:...`` (keys.py), and
tenants never hold a colon, so one pass sorts every key to its tenant and service. The memory of each
(tenant, service) is estimated from the first ``sample_size`` keys SCAN returned for it, measured
with MEMORY USAGE: their mean times the count. SCAN's order is the hash table's, so that first part
is as good as any sample for keys of one kind.

Settings are shown as the environment would spell them, without secrets: a URL loses its password
(redact.py); a setting naming a file shows the path, never what is in it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings, specs
from ..redact import redact_url
from ..redis import RedisBackend, introspect
from ..sentinel_url import is_sentinel_url

MODE_SINGLE, MODE_CLUSTER, MODE_EMBEDDED, MODE_SENTINEL = "single", "cluster", "embedded", "sentinel"

_MATCH = "coord:*"
_SCAN_COUNT = 1000  # keys SCAN looks at per call: large enough to be quick, small enough not to block
_HIDDEN = "***"


@dataclass(frozen=True)
class NodeStats:
    """One node's INFO figures."""

    address: str
    version: str
    used_memory: int
    used_memory_peak: int
    used_memory_rss: int
    maxmemory: int
    policy: str
    fragmentation: float


@dataclass
class ServiceKeys:
    """The keys of one tenant's service: counted, and a sample of them measured."""

    tenant: str
    service: str
    keys: int = 0
    sample: list[bytes] = field(default_factory=list)
    sampled_keys: int = 0
    sampled_bytes: int = 0

    @property
    def estimated_bytes(self) -> int:
        if not self.sampled_keys:
            return 0
        return round(self.sampled_bytes / self.sampled_keys * self.keys)


@dataclass(frozen=True)
class KeyScan:
    """How the counting went."""

    complete: bool
    scanned_keys: int
    nodes: int


@dataclass(frozen=True)
class Stats:
    """GetStats' answer, without the server's own part (the servicer adds version and uptime)."""

    mode: str
    nodes: list[NodeStats]
    keys: list[ServiceKeys]
    scan: KeyScan

    @property
    def version(self) -> str:
        return self.nodes[0].version if self.nodes else ""

    @property
    def policy(self) -> str:
        """The first evicting policy of any master, else the first one's (never hides an evicting one)."""
        evicting = [node.policy for node in self.nodes if node.policy != "noeviction"]
        return evicting[0] if evicting else (self.nodes[0].policy if self.nodes else "")

    @property
    def used_memory(self) -> int:
        return sum(node.used_memory for node in self.nodes)

    @property
    def maxmemory(self) -> int:
        """The masters' maxmemory summed; 0 (no limit) when any of them has none."""
        if any(node.maxmemory == 0 for node in self.nodes):
            return 0
        return sum(node.maxmemory for node in self.nodes)


def mode_of(settings: Settings, redis: RedisBackend) -> str:
    if settings.embedded:
        return MODE_EMBEDDED
    if redis.is_cluster:
        return MODE_CLUSTER
    if is_sentinel_url(settings.redis_url):
        return MODE_SENTINEL
    return MODE_SINGLE


class StatsCollector:
    """Gathers Stats from one backend."""

    def __init__(self, redis: RedisBackend, mode: str) -> None:
        self._redis = redis
        self._mode = mode

    async def collect(self, budget: float, sample_size: int) -> Stats:
        """INFO of every node, then SCAN for at most ``budget`` seconds, then MEMORY USAGE of the
        samples (not counted in the budget: at most ``sample_size`` keys per tenant and service,
        pipelined)."""
        await introspect.refresh(self._redis)
        nodes = introspect.nodes(self._redis)
        infos = [await self._node(node) for node in nodes]
        found, scan = await self._scan(nodes, budget, sample_size)
        for entry in found.values():
            sizes = await introspect.memory_usage(self._redis, entry.sample)
            measured = [size for size in sizes if size is not None]
            entry.sampled_keys = len(measured)
            entry.sampled_bytes = sum(measured)
            entry.sample = []
        ordered = [found[k] for k in sorted(found)]
        return Stats(self._mode, infos, ordered, scan)

    async def _node(self, node: introspect.Node) -> NodeStats:
        server = await introspect.info(self._redis, node, "server")
        memory = await introspect.info(self._redis, node, "memory")
        return NodeStats(
            address=node.address,
            version=str(server.get("redis_version", "")),
            used_memory=_int(memory, "used_memory"),
            used_memory_peak=_int(memory, "used_memory_peak"),
            used_memory_rss=_int(memory, "used_memory_rss"),
            maxmemory=_int(memory, "maxmemory"),
            policy=str(memory.get("maxmemory_policy", "")),
            fragmentation=float(memory.get("mem_fragmentation_ratio", 0.0) or 0.0),
        )

    async def _scan(
        self, nodes: list[introspect.Node], budget: float, sample_size: int
    ) -> tuple[dict[tuple[str, str], ServiceKeys], KeyScan]:
        found: dict[tuple[str, str], ServiceKeys] = {}
        scanned = 0
        complete = True
        stop_at = time.monotonic() + budget
        for node in nodes:
            cursor = 0
            while True:
                if time.monotonic() >= stop_at:
                    complete = False
                    break
                page = await introspect.scan(self._redis, node, cursor, _MATCH, _SCAN_COUNT)
                for key in page.keys:
                    place = _place(key)
                    if place is None:
                        continue
                    scanned += 1
                    entry = found.get(place)
                    if entry is None:
                        entry = found[place] = ServiceKeys(*place)
                    entry.keys += 1
                    if len(entry.sample) < sample_size:
                        entry.sample.append(key)
                cursor = page.cursor
                if cursor == 0:
                    break
            if not complete:
                break
        return found, KeyScan(complete, scanned, len(nodes))


def _place(key: bytes) -> tuple[str, str] | None:
    """``(tenant, service)`` of a Coord key, or None for a key that does not follow the schema."""
    parts = key.split(b":", 3)
    if len(parts) < 4 or parts[0] != b"coord":
        return None
    return parts[1].decode(errors="replace"), parts[2].decode(errors="replace")


def _int(info: Mapping[str, Any], name: str) -> int:
    try:
        return int(info.get(name, 0))
    except (TypeError, ValueError):
        return 0


def effective_settings(settings: Settings) -> list[tuple[str, str]]:
    """``(variable, value)`` of every setting, as the environment would spell it, secrets removed."""
    shown = []
    for name, spec in specs():
        value = spec.show(getattr(settings, name))
        shown.append((spec.env, _without_secrets(spec.env, value)))
    return shown


def _without_secrets(env: str, value: str) -> str:
    """``value`` safe to show. Every setting that may carry a secret is a URL (its password goes) or
    names a file (the path is shown, never the contents); a variable named like a secret that is
    neither is hidden whole, so a setting added later cannot leak by default."""
    if "://" in value:
        return redact_url(value)
    secretive = any(word in env for word in ("PASSWORD", "SECRET", "TOKEN"))
    if secretive and value and not env.endswith("_FILE"):
        return _HIDDEN
    return value
