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
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import resp
from .errors import BackendUnavailable, DeadlineExceeded
from .resp import RespPipe
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

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        timeout: float,
        description: str,
        coalesce: bool = True,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.description = description
        self.is_cluster = isinstance(client, RedisCluster)
        self._detached: set[asyncio.Task[Any]] = set()
        # Called (and awaited) first thing in close(): services stop their own background tasks.
        self._closing: list[Callable[[], Awaitable[None]]] = []
        # Single node over TCP or a unix socket: one self-pipelining connection (resp.py). Cluster and
        # TLS: redis-py, with concurrent calls coalesced into pipelines.
        self._pipe: RespPipe | None = None
        self._coalescer: Coalescer | None = None
        if coalesce:
            self._pipe = _pipe_for(client, timeout)
            if self._pipe is None:
                self._coalescer = Coalescer(client, timeout)

    @classmethod
    def from_url(cls, url: str, *, cluster: bool, timeout: float, coalesce: bool = True) -> RedisBackend:
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
        return cls(client, timeout=timeout, description=_describe(url, cluster), coalesce=coalesce)

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

    def on_close(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Have close() await ``hook`` before anything else (a service's background task stopping)."""
        self._closing.append(hook)

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Finish detached cleanups (bounded), then close every connection."""
        for hook in self._closing:
            try:
                await hook()
            except Exception:
                log.exception("a shutdown hook failed")
        # RPC handlers cancelled by server.stop() run their cleanup (and detach releases) on the next
        # loop iterations: give them a moment before looking at what is pending.
        await asyncio.sleep(0.05)
        if self._detached:
            log.info("finishing %d background cleanups before closing Redis", len(self._detached))
            await asyncio.wait(set(self._detached), timeout=drain_timeout)
        if self._coalescer is not None:
            await self._coalescer.drain(drain_timeout)
        if self._pipe is not None:
            await self._pipe.aclose()
        await self.client.aclose()

    # -- bounded execution -------------------------------------------------------------------------

    def _budget(self, limit: float | None = None) -> tuple[float, bool]:
        """Seconds a Redis call may take now, and whether the RPC deadline (not a timeout) binds.

        ``limit``, when given, is the caller's own shorter bound (a rate limit's fail-open/closed
        budget); running out of it is BackendUnavailable, like running out of the Redis timeout.
        """
        budget = self.timeout if limit is None else min(limit, self.timeout)
        deadline = rpc_deadline.get()
        if deadline is not None:
            left = deadline - time.monotonic()
            if left < budget:
                return max(left, 0.0), True
        return budget, False

    def _failure(self, exc: Exception, budget: float, deadline_binds: bool) -> Exception:
        """The domain error for a Redis call that timed out or could not reach Redis."""
        if isinstance(exc, TimeoutError):
            if deadline_binds:
                return DeadlineExceeded("the RPC deadline expired before Redis answered")
            return BackendUnavailable(f"Redis did not answer within {budget:g}s")
        return BackendUnavailable(f"Redis is unavailable: {type(exc).__name__}")

    async def bounded(self, awaitable: Awaitable[T], limit: float | None = None) -> T:
        """Await ``awaitable`` within the RPC deadline and the Redis timeout, mapping failures."""
        budget, deadline_binds = self._budget(limit)
        try:
            # asyncio.timeout, not wait_for: no extra Task per Redis call on the hot path.
            async with asyncio.timeout(budget):
                return await awaitable
        except (TimeoutError, *_UNAVAILABLE) as exc:
            cause = None if isinstance(exc, TimeoutError) else exc
            raise self._failure(exc, budget, deadline_binds) from cause

    async def ping(self) -> bool:
        await self.bounded(self.client.ping())
        return True

    async def run(
        self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg], *, limit: float | None = None
    ) -> Any:
        """Run one script atomically and return its reply (bounded as by :meth:`bounded`).

        On a single node the call shares the pipelined connection (resp.py); on a cluster, a call
        made while another is waiting for Redis joins the next pipeline (see :class:`Coalescer`).
        """
        if self._pipe is not None:
            return _raise_first(await self.run_each([ScriptCall(script, keys, args)], limit=limit))[0]
        if self._coalescer is not None:
            return await self.bounded(self._coalescer.run(ScriptCall(script, keys, args)), limit)
        return await self.bounded(self._run(script, keys, args), limit)

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except rex.NoScriptError:
            log.info("script %s was not cached in Redis; sending its source", script.name)
            return await self.client.eval(script.source, len(keys), *keys, *args)

    async def run_many(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run many independent scripts in one pipelined round trip (per node on a cluster).

        Each call is atomic on its own; together they are not. Replies come back in call order; the
        first script that failed raises its error.
        """
        return _raise_first(await self.run_each(calls))

    async def run_each(self, calls: Sequence[ScriptCall], *, limit: float | None = None) -> list[Any]:
        """Like :meth:`run_many`, but a script that failed puts its error in its reply's place.

        Failing to reach Redis (or running out of time) still raises, for every call at once.
        """
        if not calls:
            return []
        if self._pipe is not None:
            # The pipe times the replies itself: one timer on their future, no asyncio.timeout.
            budget, deadline_binds = self._budget(limit)
            try:
                return await _pipe_evalsha_many(self._pipe, calls, budget)
            except (TimeoutError, *_UNAVAILABLE) as exc:
                cause = None if isinstance(exc, TimeoutError) else exc
                raise self._failure(exc, budget, deadline_binds) from cause
        if len(calls) == 1:
            call = calls[0]
            try:
                return [await self.run(call.script, call.keys, call.args, limit=limit)]
            except rex.ResponseError as exc:  # a fault in the script (unavailability was mapped)
                return [exc]
        return await self.bounded(_pipeline(calls, self.client), limit)


class Coalescer:
    """Sends the script calls of concurrent requests to Redis together, one pipeline at a time.

    A call that finds nothing in flight is sent at once on its own, so a lone caller pays nothing.
    Calls that arrive while Redis is busy with earlier ones wait in a queue; when the call in flight
    returns, the whole queue goes out as the next pipeline (one write, one connection, one read of
    all replies) and so on until the queue is empty. Under load this replaces N concurrent round
    trips, each on its own connection, by a few pipelines: less work per call for redis-py, for the
    event loop and for Redis.

    What stays as it was per call: each script is still atomic on its own (a pipeline is not a
    transaction); each call gets its own reply or its own error (a script error fails only its call,
    a lost connection fails the calls of that pipeline); NOSCRIPT is answered by EVAL of the calls
    that got it; and each caller's deadline still applies, since callers await their own future
    under :meth:`RedisBackend.bounded` (a caller that gives up leaves its call in the pipeline, as a
    cancelled single call may already have reached Redis too). On Redis Cluster, redis-py's cluster
    pipeline splits each batch per node and sends to the nodes concurrently.
    """

    def __init__(self, client: aioredis.Redis | RedisCluster, timeout: float) -> None:
        self._client = client
        # The flusher serves no single caller, so no caller's deadline cancels its round trip: it is
        # bounded here instead, or one dead connection (no RST) would stall every later call.
        self._timeout = timeout
        self._queue: list[tuple[ScriptCall, asyncio.Future[Any]]] = []
        self._busy = False
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, call: ScriptCall) -> Any:
        if self._busy:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queue.append((call, future))
            return await future
        self._busy = True
        try:
            return await _evalsha(self._client, call)
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        """The call in flight has returned: send what queued meanwhile, or become idle."""
        if not self._queue:
            self._busy = False
            return
        # A fresh context: the flusher serves many callers, so no one caller's deadline is its own.
        self._flusher = asyncio.get_running_loop().create_task(self._flush(), context=contextvars.Context())

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                live = [(c, f) for c, f in batch if not f.done()]  # callers that gave up are skipped
                if live:
                    await self._send(live)
        finally:
            self._busy = False
            if self._queue:  # only if _send was cancelled (shutdown): fail the rest, do not hang them
                for _, future in self._queue:
                    if not future.done():
                        future.set_exception(rex.ConnectionError("the Redis connection is closing"))
                self._queue = []

    async def _send(self, batch: list[tuple[ScriptCall, asyncio.Future[Any]]]) -> None:
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    if len(batch) == 1:
                        replies: list[Any] = [await _evalsha(self._client, batch[0][0])]
                    else:
                        replies = await _pipeline([c for c, _ in batch], self._client)
            except TimeoutError:
                raise rex.TimeoutError(f"Redis did not answer within {self._timeout:g}s") from None
        except BaseException as exc:  # the whole round trip failed: every caller of it gets the error
            error = exc if isinstance(exc, Exception) else rex.ConnectionError("Redis call cancelled")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def drain(self, limit: float) -> None:
        """Wait (at most ``limit`` seconds) for the pipeline in flight, on shutdown."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher}, timeout=limit)


async def _evalsha(client: aioredis.Redis | RedisCluster, call: ScriptCall) -> Any:
    try:
        return await client.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    except rex.NoScriptError:
        log.info("script %s was not cached in Redis; sending its source", call.script.name)
        return await client.eval(call.script.source, len(call.keys), *call.keys, *call.args)


async def _pipeline(calls: Sequence[ScriptCall], client: aioredis.Redis | RedisCluster) -> list[Any]:
    """Send ``calls`` in one pipeline; replies in order, a failed call's error in its place.

    Scripts Redis did not have cached (NOSCRIPT) are sent again as EVAL with their source.
    """
    pipe = client.pipeline(transaction=False)
    for call in calls:
        # execute_command: redis-py blocks pipe.evalsha() on clusters, but routes EVALSHA by its keys.
        pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
    replies: list[Any] = list(await pipe.execute(raise_on_error=False))
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, rex.NoScriptError)]
    if missing:
        log.info("%d pipelined scripts were not cached in Redis; sending their source", len(missing))
        retry = client.pipeline(transaction=False)
        for i in missing:
            c = calls[i]
            retry.execute_command("EVAL", c.script.source, len(c.keys), *c.keys, *c.args)
        for i, reply in zip(missing, await retry.execute(raise_on_error=False), strict=True):
            replies[i] = reply
    return replies


def _pipe_for(client: aioredis.Redis | RedisCluster, timeout: float) -> RespPipe | None:
    """The shared pipelined connection for a plain single-node client; None where redis-py must route."""
    if isinstance(client, RedisCluster) or not resp.AVAILABLE:
        return None
    pool = client.connection_pool
    if not issubclass(pool.connection_class, (aioredis.Connection, aioredis.UnixDomainSocketConnection)):
        return None
    if issubclass(pool.connection_class, aioredis.SSLConnection):
        return None
    kwargs = dict(pool.connection_kwargs)
    if kwargs.get("credential_provider") is not None:
        return None
    return RespPipe.for_client_kwargs(kwargs, connect_timeout=min(timeout, 1.0), stale_after=timeout)


def text(value: Any) -> str:
    """A Redis reply (bytes, or a number) as text; keys Coord wrote as UTF-8 come back as they went in."""
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else str(value)


def _raise_first(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply  # a fault in a script (failures to reach Redis were raised already)
    return replies


async def _pipe_evalsha_many(pipe: RespPipe, calls: Sequence[ScriptCall], budget: float) -> list[Any]:
    """Like :func:`_pipeline`, over the shared connection: replies in order, errors in place."""
    started = time.monotonic()
    replies = await pipe.call_many(
        [("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args) for c in calls], budget
    )
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, rex.NoScriptError)]
    if missing:
        log.info("%d pipelined scripts were not cached in Redis; sending their source", len(missing))
        left = max(budget - (time.monotonic() - started), 0.0)
        again = await pipe.call_many(
            [
                ("EVAL", calls[i].script.source, len(calls[i].keys), *calls[i].keys, *calls[i].args)
                for i in missing
            ],
            left,
        )
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    return replies


def _describe(url: str, cluster: bool) -> str:
    """The URL without its password, for logs."""
    safe = url
    if "@" in url:
        scheme, rest = url.split("://", 1)
        safe = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return f"{'cluster seed ' if cluster else ''}{safe}"
