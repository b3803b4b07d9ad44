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
from collections.abc import Awaitable, Callable, Mapping, Sequence

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
        own_redis: Mapping[str, RedisBackend] | None = None,
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
        # Services with a Redis of their own (the cache's, COORD_CACHE_REDIS_URL): each follows its
        # own Redis, and the whole server ("") is SERVING only while every Redis answers.
        self._own = dict(own_redis or {})
        self._own_healthy: dict[str, bool | None] = dict.fromkeys(self._own)

    async def _set_all(self, status: int) -> None:
        for name in self._names:
            await self.servicer.set(name, status)

    async def _set_each(self) -> None:
        """Each name's status from what its Redis (and for "", every Redis) last answered."""
        main = bool(self._healthy)
        for name in self._names:
            if name in self._own:
                healthy = bool(self._own_healthy[name])
            elif name == "":
                healthy = main and all(self._own_healthy.values())
            else:
                healthy = main
            await self.servicer.set(name, SERVING if healthy else NOT_SERVING)

    async def _probe_own(self) -> bool:
        """Probe the services' own Redis; True when any of them changed state."""
        changed = False
        for name, backend in self._own.items():
            try:
                async with asyncio.timeout(self._interval + 1.0):
                    await backend.ping()
                healthy, reason = True, ""
            except (CoordError, TimeoutError) as exc:
                healthy, reason = False, str(exc) or type(exc).__name__
            if healthy != self._own_healthy[name] and not self._stopping:
                if healthy:
                    log.info("the Redis of %s answers (%s): serving", name, backend.description)
                else:
                    log.warning(
                        "the Redis of %s is unreachable (%s): NOT_SERVING: %s",
                        name,
                        backend.description,
                        reason,
                    )
                self._own_healthy[name] = healthy
                changed = True
        return changed

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
        own_changed = await self._probe_own() if self._own else False
        if self._stopping:
            return healthy
        changed = healthy != self._healthy
        if changed:
            if healthy:
                log.info("Redis answers (%s): serving", self._redis.description)
            else:
                log.warning("%s (%s): NOT_SERVING: %s", problem, self._redis.description, reason)
            self._healthy = healthy
        if changed or own_changed:
            await self._set_each()
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
        # Until shutdown, even if the task's cancellation is lost: a frozen-then-resumed process
        # (SIGSTOP, SIGCONT) was seen with its cancellation swallowed inside a probe on Python 3.11,
        # probing on forever while shutting_down awaited it.
        while not self._stopping:
            await asyncio.sleep(self._interval)
            if not self._stopping:
                await self.probe_once()

    async def shutting_down(self) -> None:
        """Report NOT_SERVING for good (graceful shutdown) and stop probing."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            # Bounded: a probe that swallowed the cancellation ends the loop after its interval.
            await asyncio.wait({self._task}, timeout=self._interval + 2.0)
            if self._task.done() and not self._task.cancelled():
                with contextlib.suppress(Exception):
                    self._task.result()  # retrieved: no "exception never retrieved" at exit
        await self.servicer.enter_graceful_shutdown()
