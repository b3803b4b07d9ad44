"""Standard ``grpc.health.v1`` health, driven by whether Redis answers.

The whole server ("") and every registered service are SERVING while Redis answers PING and
NOT_SERVING while it does not; a background probe flips them both ways and logs each change. They
start NOT_SERVING (the reference servicer would say SERVING for "" and NOT_FOUND for the services)
and stay so until the first probe succeeds: a server whose Redis accepts connections but never
answers is never reported ready.

A ``gate`` (the eviction check Redis could not be asked at start-up, eviction.py) runs on every probe
that reaches Redis until it passes; while it refuses, the server stays NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from .errors import CoordError
from .redis import RedisBackend

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    """Owns the health servicer and the Redis probe task."""

    def __init__(
        self,
        redis: RedisBackend,
        services: Sequence[str],
        interval: float,
        gate: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.servicer = HealthServicer()
        self.gate = gate  # True once passed; None: nothing to check
        # Told whether each probe reached Redis (coord_redis_up, when metrics are on).
        self.on_probe: Callable[[bool], None] | None = None
        self._redis = redis
        self._names = ["", *services]
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._healthy: bool | None = None
        self._stopping = False

    async def _set_all(self, status: int) -> None:
        for name in self._names:
            await self.servicer.set(name, status)

    async def probe_once(self) -> bool:
        try:
            async with asyncio.timeout(self._interval + 1.0):  # never swallows a cancellation
                await self._redis.ping()
                if self.on_probe is not None:
                    self.on_probe(True)
                healthy = True
                if self.gate is not None:
                    healthy = await self.gate()  # logs its own refusal
                    if healthy:
                        self.gate = None
                    problem = "Redis may evict Coord's keys"
                    reason = "maxmemory-policy refused (logged above)"
        except (CoordError, TimeoutError) as exc:
            if self.on_probe is not None:
                self.on_probe(False)
            healthy = False
            problem = "Redis is unreachable"
            reason = str(exc) or type(exc).__name__
        if self._stopping:
            return healthy
        if healthy != self._healthy:
            if healthy:
                log.info("Redis answers (%s): serving", self._redis.description)
            else:
                log.warning("%s (%s): NOT_SERVING: %s", problem, self._redis.description, reason)
            self._healthy = healthy
            await self._set_all(SERVING if healthy else NOT_SERVING)
        return healthy

    async def start(self) -> None:
        """Report NOT_SERVING for every name, then probe once and keep probing in the background.

        Called right after the server starts, with no await in between (as ``app.running`` does), so
        no health check is answered before the statuses are set.
        """
        await self._set_all(NOT_SERVING)
        await self.probe_once()
        self._task = asyncio.create_task(self._run(), name="coord-health")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe_once()

    async def shutting_down(self) -> None:
        """Report NOT_SERVING for good (graceful shutdown) and stop probing."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.servicer.enter_graceful_shutdown()
