"""Redis's metrics: script call latency and calls in flight (told by the backend), reachability (told
by the health probe), and the server's own figures read from INFO on an interval by a background
task, never per scrape or per RPC."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from ..errors import CoordError
from ..redis import RedisBackend, introspect
from ..redis.backend import ScriptCall
from .core import Family, Observed
from .families import Metrics

log = logging.getLogger(__name__)

# How often INFO is read. Memory and eviction move slowly; one INFO per node every 10 s costs Redis
# nothing, however often Prometheus scrapes.
INFO_INTERVAL = 10.0


class ScriptTimer:
    """The backend's script_timer: one histogram series per script, bound the first time it runs."""

    def __init__(self, metrics: Metrics) -> None:
        self._family = metrics.redis_script_seconds
        self._by_script: dict[str, Observed] = {}
        self._waiting = metrics.redis_pipeline_waiting.value()

    def sent(self, calls: int) -> None:
        self._waiting.value += calls

    def done(self, calls: Sequence[ScriptCall], seconds: float) -> None:
        self._waiting.value -= len(calls)
        by_script = self._by_script
        for call in calls:
            name = call.script.name
            child = by_script.get(name)
            if child is None:
                child = by_script[name] = self._family.observed(name)
            child.observe(seconds)


class RedisUp:
    """The health probe's outcome as coord_redis_up (HealthMonitor.on_probe)."""

    def __init__(self, metrics: Metrics) -> None:
        self._up = metrics.redis_up.value()

    def __call__(self, healthy: bool) -> None:
        self._up.value = 1.0 if healthy else 0.0


def _number(fields: dict[str, Any], name: str) -> float | None:
    """An INFO field as a number (redis-py parses most already); None when missing or not one."""
    value = fields.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


class InfoSampler:
    """Reads INFO of every node every ``interval`` seconds into the coord_redis_* gauges."""

    def __init__(self, metrics: Metrics, redis: RedisBackend, interval: float = INFO_INTERVAL) -> None:
        self._metrics = metrics
        self._redis = redis
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._nodes: set[str] = set()
        self._policies: dict[str, str] = {}
        m = metrics
        self._gauges: tuple[tuple[Family, str], ...] = (
            (m.redis_memory_used, "used_memory"),
            (m.redis_memory_peak, "used_memory_peak"),
            (m.redis_fragmentation, "mem_fragmentation_ratio"),
            (m.redis_maxmemory, "maxmemory"),
            (m.redis_evicted, "evicted_keys"),
            (m.redis_expired, "expired_keys"),
            (m.redis_clients, "connected_clients"),
            (m.redis_ops, "instantaneous_ops_per_sec"),
        )
        self._errors = m.redis_info_errors.value()

    async def sample(self) -> bool:
        """Read INFO once; False (and the error counted) when it could not be read."""
        try:
            nodes = {
                node.address: await introspect.info(self._redis, node, "default")
                for node in introspect.nodes(self._redis)
            }
        except (CoordError, TimeoutError, OSError) as exc:
            self._errors.value += 1
            log.debug("INFO for the metrics failed: %s", exc)
            return False
        except Exception as exc:  # an error reply: INFO not allowed by the ACL, say
            self._errors.value += 1
            log.warning("INFO for the metrics failed (is +info in Coord's ACL rules?): %s", exc)
            return False
        for gone in self._nodes - nodes.keys():
            self._forget(gone)
        self._nodes = set(nodes)
        for node, fields in nodes.items():
            for family, field in self._gauges:
                value = _number(fields, field)
                if value is not None:
                    family.value(node).value = value
            policy = fields.get("maxmemory_policy")
            if isinstance(policy, str):
                previous = self._policies.get(node)
                if previous is not None and previous != policy:
                    self._metrics.redis_maxmemory_policy.forget(node, previous)
                self._policies[node] = policy
                self._metrics.redis_maxmemory_policy.value(node, policy).value = 1.0
        return True

    def _forget(self, node: str) -> None:
        for family, _ in self._gauges:
            family.forget(node)
        policy = self._policies.pop(node, None)
        if policy is not None:
            self._metrics.redis_maxmemory_policy.forget(node, policy)

    def start(self) -> None:
        """Sample now (without holding up the caller) and then every interval."""
        self._task = asyncio.create_task(self._run(), name="coord-metrics-redis-info")

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
