"""The one way Coord talks to Redis: single node or Redis Cluster, every call bounded in time.

The RPC boundary records the caller's deadline (``deadline.py``); every call here waits at most
``min(time left of that deadline, settings.redis_timeout)``. A call that runs out of time, or a Redis
that cannot be reached, becomes a domain error (DeadlineExceeded / BackendUnavailable) at once: no
retry loop hides an outage from the caller.

Scripts go through one :class:`~.executor.Executor`, chosen once per backend (the shared pipe on a
single node, the coalescer on a cluster or over TLS, plain redis-py when coalescing is off), and one
path: :meth:`RedisBackend.run_each` sends EVALSHA, and EVAL with the source for any call Redis
answered NOSCRIPT. The few other commands (streams, Pub/Sub...) are typed methods (``commands.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
import redis.exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import ConfigError
from ..errors import BackendUnavailable, DeadlineExceeded
from ..redact import redact_url
from ..sentinel_url import is_sentinel_url, parse_sentinel_url
from . import deadline, pipe
from .coalesce import Coalescer
from .commands import Commands
from .executor import UNAVAILABLE, Arg, Client, Command, Direct, Executor
from .pipe import RespPipe
from .scripts import Script
from .security import RedisSecurity
from .states import backend_state

log = logging.getLogger(__name__)

T = TypeVar("T")
ScriptArg = Arg

# Whatever an executor raises for a whole batch: out of time, or Redis not reachable.
_FAILURES: tuple[type[Exception], ...] = (TimeoutError, *UNAVAILABLE)


@dataclass(frozen=True)
class ScriptCall:
    """One script invocation, for pipelined batches."""

    script: Script
    keys: Sequence[str]
    args: Sequence[ScriptArg]


class ScriptTimer(Protocol):
    """What measures script calls (metrics/redis_metrics.py), when metrics are on."""

    def sent(self, calls: int) -> None: ...

    def done(self, calls: Sequence[ScriptCall], seconds: float) -> None: ...


class ScriptSpans(Protocol):
    """What traces script calls (tracing/spans.py), when tracing is on."""

    def start(self, calls: Sequence[ScriptCall]) -> Any: ...

    def end(self, span: Any, error: BaseException | None) -> None: ...


class RedisBackend(Commands):
    """Owns the Redis connections. Stores receive it; nothing else opens Redis connections."""

    def __init__(self, client: Client, *, timeout: float, description: str, coalesce: bool = True) -> None:
        self._client = client
        self.timeout = timeout
        self.description = description
        self.is_cluster = isinstance(client, RedisCluster)
        self._detached: set[asyncio.Task[Any]] = set()
        # Called (and awaited) first thing in close(): services stop their own background tasks.
        self._closing: list[Callable[[], Awaitable[None]]] = []
        self._executor: Executor = _executor_for(client, timeout, coalesce)
        # Told of every script batch's round trip when metrics are on (metrics/redis_metrics.py).
        self.script_timer: ScriptTimer | None = None
        # A span around every script batch when tracing is on (tracing/spans.py).
        self.script_spans: ScriptSpans | None = None

    @property
    def address(self) -> tuple[str, int | None] | None:
        """Where the single node is (host and port, or a unix socket's path and None), for traces;
        None on a cluster or behind Sentinel, where it is not one place."""
        pool = None if self.is_cluster else getattr(self._client, "connection_pool", None)
        if pool is None or isinstance(pool, SentinelConnectionPool):
            return None
        kwargs = pool.connection_kwargs
        if "path" in kwargs:
            return str(kwargs["path"]), None
        return str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool,
        timeout: float,
        coalesce: bool = True,
        security: RedisSecurity | None = None,
    ) -> RedisBackend:
        """A backend for ``url`` (``redis://[user[:password]@]host:port/db``, ``rediss://...``,
        ``unix://path``, ``redis+sentinel://host:port,.../service``), with the password file and TLS
        files of ``security``.

        Raises ConfigError when the URL or a file cannot be used; its message never holds a password.
        """
        # No socket_timeout: every call is bounded already, and redis-py would wrap each send in
        # asyncio.wait_for (a Task per command), which cost ~20% of a cache Get's server CPU.
        security = security or RedisSecurity()
        common: dict[str, Any] = {
            "socket_connect_timeout": min(timeout, 1.0),
            "health_check_interval": 5,
            # No CLIENT SETINFO on connecting: Coord's ACL user is not granted it (docs/security.md),
            # and Redis 7.2+ would log each refusal in its ACL LOG.
            "driver_info": None,
            **security.connection_options(url),
        }
        sentinel_options = security.sentinel_options(url)
        client: Client
        try:
            if cluster:
                # No hidden retries here either: redis-py's default would retry a node's LOADING or
                # lost connection with backoff (closing every connection of the client in between)
                # until the caller's budget ran out, instead of answering with the state at once.
                client = RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **common)
            elif is_sentinel_url(url):
                client = _sentinel_master(url, timeout, common, sentinel_options)
            else:
                # No hidden retries: our own bound decides how long a caller waits.
                client = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **common)
        except ValueError:
            # redis-py's own message may quote a piece of the URL, password included.
            raise ConfigError(f"redis url: {_describe(url, cluster)!r} is not a usable Redis URL") from None
        return cls(client, timeout=timeout, description=_describe(url, cluster), coalesce=coalesce)

    # -- lifecycle ---------------------------------------------------------------------------------

    def detach(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run cleanup ``work`` (a release after a cancelled RPC...) to its end, outside any RPC.

        The task does not inherit the caller's deadline, and close() waits for it: a graceful
        shutdown never drops a release on the floor.
        """
        task = asyncio.get_running_loop().create_task(work, context=deadline.detached_context())
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
        await self._executor.aclose(drain_timeout)
        # Bounded: a cluster client busy re-reading its slot map after a fault (connections reset,
        # nodes refusing) must not hold the shutdown; what is left open dies with the process.
        try:
            async with asyncio.timeout(drain_timeout):
                await self._client.aclose()
                await _close_sentinels(self._client)
        except TimeoutError:
            log.warning("Redis connections did not close within %.1f s; leaving them", drain_timeout)

    # -- bounded execution -------------------------------------------------------------------------

    def _budget(self, limit: float | None = None, waiting: float = 0.0) -> tuple[float, bool]:
        """Seconds a Redis call may take now, and whether the RPC deadline (not a timeout) binds.

        ``limit``, when given, is the caller's own shorter bound (a rate limit's fail-open/closed
        budget); running out of it is BackendUnavailable, like running out of the Redis timeout.
        ``waiting`` is how long the command itself may legitimately wait for something to happen (a
        Pub/Sub read with a timeout): it is added, but never past the RPC deadline.
        """
        budget = (self.timeout if limit is None else min(limit, self.timeout)) + waiting
        at = deadline.current()
        if at is not None:
            left = at - time.monotonic()
            if left < budget:
                return max(left, 0.0), True
        return budget, False

    def _failure(self, exc: Exception, budget: float, deadline_binds: bool) -> Exception:
        """The domain error for a Redis call that timed out or could not reach Redis."""
        if isinstance(exc, TimeoutError):
            if deadline_binds:
                return DeadlineExceeded("the RPC deadline expired before Redis answered")
            return BackendUnavailable(f"Redis did not answer within {budget:g}s")
        state = backend_state(exc)  # it knows every class of _FAILURES but TimeoutError
        if state is not None:
            return state
        return BackendUnavailable(f"Redis is unavailable: {type(exc).__name__}")

    async def bounded(
        self, awaitable: Awaitable[T], limit: float | None = None, *, waiting: float = 0.0
    ) -> T:
        """Await ``awaitable`` within the RPC deadline and the Redis timeout, mapping failures.

        ``limit`` and ``waiting`` are as for the budget (see :meth:`_budget`).
        """
        budget, deadline_binds = self._budget(limit, waiting)
        try:
            # asyncio.timeout, not wait_for: no extra Task per Redis call.
            async with asyncio.timeout(budget):
                return await awaitable
        except _FAILURES as exc:
            cause = None if isinstance(exc, TimeoutError) else exc
            raise self._failure(exc, budget, deadline_binds) from cause
        except rex.ResponseError as exc:  # an error reply: a state of Redis (BUSY, OOM...) or the caller's
            state = backend_state(exc)
            if state is None:
                raise
            raise state from exc

    # -- scripts -----------------------------------------------------------------------------------

    async def run(
        self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg], *, limit: float | None = None
    ) -> Any:
        """Run one script atomically and return its reply; its error reply is raised.

        Bounded as by :meth:`bounded`. Calls made while others are on their way to Redis share a
        pipeline with them (see the executors).
        """
        reply = (await self.run_each([ScriptCall(script, keys, args)], limit=limit))[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def run_many(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run many independent scripts in one pipelined round trip (per node on a cluster).

        Each call is atomic on its own; together they are not. Replies come back in call order; the
        first script that failed raises its error.
        """
        replies = await self.run_each(calls)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def run_each(self, calls: Sequence[ScriptCall], *, limit: float | None = None) -> list[Any]:
        """Like :meth:`run_many`, but a script that failed puts its error in its reply's place.

        An error reply that means Redis cannot serve now (LOADING, BUSY, READONLY, OOM...: see
        ``states.py``) is a BackendUnavailable in its place. Failing to reach Redis (or running out
        of time) raises, for every call at once.
        """
        if not calls:
            return []
        budget, deadline_binds = self._budget(limit)
        timer = self.script_timer
        if timer is not None:
            timer.sent(len(calls))
        started = time.perf_counter() if timer is not None else 0.0
        spans = self.script_spans
        # Started here, in the caller's task, around the await: a child of the RPC's span, whichever
        # of the executor's tasks sends the batch.
        span = spans.start(calls) if spans is not None else None
        try:
            try:
                replies = await self._evalsha_each(calls, budget)
            except _FAILURES as exc:
                cause = None if isinstance(exc, TimeoutError) else exc
                raise self._failure(exc, budget, deadline_binds) from cause
            except rex.ResponseError as exc:  # raised for the whole batch: redis-py connecting (its PING)
                state = backend_state(exc)
                if state is None:
                    raise
                raise state from exc
            finally:
                if timer is not None:
                    timer.done(calls, time.perf_counter() - started)
        except BaseException as error:
            if spans is not None:
                spans.end(span, error)
            raise
        if spans is not None:
            spans.end(span, None)
        return replies

    async def _evalsha_each(self, calls: Sequence[ScriptCall], budget: float) -> list[Any]:
        """The one NOSCRIPT path: EVALSHA every call; EVAL (with the source) those Redis lacked."""
        started = time.monotonic()
        replies = await self._executor.execute(
            [("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args) for c in calls], budget
        )
        for reply in replies:
            if isinstance(reply, Exception):
                return await self._recover(calls, replies, budget - (time.monotonic() - started))
        return replies

    async def _recover(self, calls: Sequence[ScriptCall], replies: list[Any], left: float) -> list[Any]:
        """Resend the calls answered NOSCRIPT as EVAL; unavailability in a reply's place is mapped."""
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, rex.NoScriptError)]
        if missing:
            log.info("%d scripts were not cached in Redis; sending their source", len(missing))
            again: list[Command] = [
                ("EVAL", calls[i].script.source, len(calls[i].keys), *calls[i].keys, *calls[i].args)
                for i in missing
            ]
            for i, reply in zip(missing, await self._executor.execute(again, max(left, 0.0)), strict=True):
                replies[i] = reply
        for i, reply in enumerate(replies):
            if isinstance(reply, Exception):
                state = backend_state(reply)
                if state is not None:
                    replies[i] = state
        return replies


def _executor_for(client: Client, timeout: float, coalesce: bool) -> Executor:
    """The shared pipe for a plain single node; the coalescer where redis-py must route or encrypt;
    plain redis-py when coalescing is off."""
    if not coalesce:
        return Direct(client)
    shared = _pipe_for(client, timeout)
    return shared if shared is not None else Coalescer(client, timeout)


def _sentinel_master(
    url: str, timeout: float, common: dict[str, Any], sentinel_options: dict[str, Any]
) -> aioredis.Redis:
    """A client of the master the sentinels of ``url`` name, asked again on each new connection.

    Built once per backend (redis-py's ``master_for`` makes a new pool per call). No retries, as for a
    single node: while the sentinels elect a new master, calls fail fast as BackendUnavailable
    (MasterNotFoundError, a refused connect to the dead master, READONLY turned into a ConnectionError
    by the pool) and the caller's own retry policy decides.
    """
    try:
        target = parse_sentinel_url(url)
    except ValueError:
        raise ConfigError(f"redis url: {redact_url(url)!r} is not a usable Sentinel URL") from None
    # The sentinels get their own credentials (never the master's) and a socket timeout of their own:
    # the master lookup runs inside a connect, which every call's bound already covers.
    connect = common["socket_connect_timeout"]
    sentinel_kwargs = {
        "socket_connect_timeout": connect,
        "socket_timeout": timeout,
        "driver_info": None,
        # No retries of one sentinel (redis-py's default retries each, with backoff, for seconds):
        # the lookup goes on to the next sentinel, and a refusal (a wrong password) is seen at once.
        "retry": Retry(NoBackoff(), 0),
        **sentinel_options,
    }
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    credentials: dict[str, Any] = {"db": target.db}
    if target.tls:
        credentials["ssl"] = True  # the pool then makes SentinelManagedSSLConnections
    if target.username is not None:
        credentials["username"] = target.username
    if target.password is not None:
        credentials["password"] = target.password
    master: aioredis.Redis = sentinel.master_for(
        target.service, retry=Retry(NoBackoff(), 0), **credentials, **common
    )
    return master


async def _close_sentinels(client: Client) -> None:
    """Close the connections to the sentinels, which closing the master's client leaves open."""
    pool = client.connection_pool if isinstance(client, aioredis.Redis) else None
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def _pipe_for(client: Client, timeout: float) -> RespPipe | None:
    """The shared pipelined connection for a plain single-node client; None where redis-py must route."""
    if isinstance(client, RedisCluster) or not pipe.AVAILABLE:
        return None
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        # The master moves: only the Sentinel pool knows where it is now (asked on each connect).
        return None
    if not issubclass(pool.connection_class, (aioredis.Connection, aioredis.UnixDomainSocketConnection)):
        return None
    if issubclass(pool.connection_class, aioredis.SSLConnection):
        return None
    kwargs = dict(pool.connection_kwargs)
    if kwargs.get("credential_provider") is not None:
        return None
    return RespPipe.for_client_kwargs(kwargs, connect_timeout=min(timeout, 1.0), stale_after=timeout)


def _describe(url: str, cluster: bool) -> str:
    """The URL without any password (userinfo or ``password=`` option), for logs and messages."""
    if is_sentinel_url(url):
        return f"sentinels {redact_url(url)}"
    return f"{'cluster seed ' if cluster else ''}{redact_url(url)}"
