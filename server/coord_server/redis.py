"""The one way Coord talks to Redis: single node or Redis Cluster, every call bounded in time.

The RPC boundary records the caller's deadline in a context variable; every call here waits at most
``min(time left of that deadline, settings.redis_timeout)``. A call that runs out of time, or a Redis
that cannot be reached, becomes a domain error (DeadlineExceeded / BackendUnavailable) at once: no
retry loop hides an outage from the caller.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import BackendUnavailable, DeadlineExceeded
from .scripts import Script

log = logging.getLogger(__name__)

T = TypeVar("T")
ScriptArg = str | bytes | int | float

# Absolute deadline (time.monotonic()) of the RPC being served, or None when it has none.
rpc_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("rpc_deadline", default=None)

# Errors that mean "Redis is not there or not answering", as opposed to a bad command.
_UNAVAILABLE = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.BusyLoadingError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.MasterDownError,
    rex.ReadOnlyError,
    rex.ClusterError,
    rex.MaxConnectionsError,
    ConnectionError,
    OSError,
)


@dataclass(frozen=True)
class ScriptCall:
    """One script invocation, for pipelined batches."""

    script: Script
    keys: Sequence[str]
    args: Sequence[ScriptArg]


class RedisBackend:
    """Owns the redis-py client. Stores receive it; nothing else opens Redis connections."""

    def __init__(self, client: aioredis.Redis | RedisCluster, *, timeout: float, description: str) -> None:
        self.client = client
        self.timeout = timeout
        self.description = description
        self.is_cluster = isinstance(client, RedisCluster)
        self._detached: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_url(cls, url: str, *, cluster: bool, timeout: float) -> RedisBackend:
        # No socket_timeout: bounded() times every call already, and redis-py would wrap each send in
        # asyncio.wait_for (a Task per command), which cost ~20% of a cache Get's server CPU.
        common: dict[str, Any] = {
            "socket_connect_timeout": min(timeout, 1.0),
            "health_check_interval": 5,
        }
        client: aioredis.Redis | RedisCluster
        if cluster:
            client = RedisCluster.from_url(url, **common)
        else:
            # No hidden retries: our own bound decides how long a caller waits.
            client = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **common)
        return cls(client, timeout=timeout, description=_describe(url, cluster))

    def detach(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run cleanup ``work`` (a release after a cancelled RPC...) to its end, outside any RPC.

        The task does not inherit the caller's context, so no RPC deadline bounds it, and close()
        waits for it: a graceful shutdown never drops a release on the floor.
        """
        task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        self._detached.add(task)
        task.add_done_callback(self._detached_done)
        return task

    def _detached_done(self, task: asyncio.Task[Any]) -> None:
        self._detached.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background cleanup failed: %s", task.exception())

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Finish detached cleanups (bounded), then close every connection."""
        # RPC handlers cancelled by server.stop() run their cleanup (and detach releases) on the next
        # loop iterations: give them a moment before looking at what is pending.
        await asyncio.sleep(0.05)
        if self._detached:
            log.info("finishing %d background cleanups before closing Redis", len(self._detached))
            await asyncio.wait(set(self._detached), timeout=drain_timeout)
        await self.client.aclose()

    # -- bounded execution -------------------------------------------------------------------------

    async def bounded(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` within the RPC deadline and the Redis timeout, mapping failures."""
        budget = self.timeout
        deadline = rpc_deadline.get()
        deadline_binds = False
        if deadline is not None:
            left = deadline - time.monotonic()
            if left < budget:
                budget, deadline_binds = max(left, 0.0), True
        try:
            # asyncio.timeout, not wait_for: no extra Task per Redis call on the hot path.
            async with asyncio.timeout(budget):
                return await awaitable
        except TimeoutError:
            if deadline_binds:
                raise DeadlineExceeded("the RPC deadline expired before Redis answered") from None
            raise BackendUnavailable(f"Redis did not answer within {self.timeout:g}s") from None
        except _UNAVAILABLE as exc:
            raise BackendUnavailable(f"Redis is unavailable: {type(exc).__name__}") from exc

    async def ping(self) -> bool:
        await self.bounded(self.client.ping())
        return True

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """Run one script atomically and return its reply."""
        return await self.bounded(self._run(script, keys, args))

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except rex.NoScriptError:
            log.info("script %s was not cached in Redis; sending its source", script.name)
            return await self.client.eval(script.source, len(keys), *keys, *args)

    async def run_many(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run many independent scripts in one pipelined round trip (per node on a cluster).

        Each call is atomic on its own; together they are not. Replies come back in call order.
        """
        if not calls:
            return []
        return await self.bounded(self._run_many(calls))

    async def _run_many(self, calls: Sequence[ScriptCall]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for call in calls:
            # execute_command: redis-py blocks pipe.evalsha() on clusters, but routes EVALSHA by its keys.
            pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        replies: list[Any] = list(await pipe.execute(raise_on_error=False))
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, rex.NoScriptError)]
        if missing:
            log.info("%d pipelined scripts were not cached in Redis; sending their source", len(missing))
            retry = self.client.pipeline(transaction=False)
            for i in missing:
                c = calls[i]
                retry.execute_command("EVAL", c.script.source, len(c.keys), *c.keys, *c.args)
            for i, reply in zip(missing, await retry.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply  # mapped by bounded(): unavailable, or a fault in a script
        return replies


def _describe(url: str, cluster: bool) -> str:
    """The URL without its password, for logs."""
    safe = url
    if "@" in url:
        scheme, rest = url.split("://", 1)
        safe = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return f"{'cluster seed ' if cluster else ''}{safe}"
