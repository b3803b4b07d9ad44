# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The RateLimit service: :class:`RateLimitAPI` (sync) and :class:`AsyncRateLimitAPI` (asyncio).

Both share the request builders and response parsers below; only the sending differs. A denial is a
:class:`Decision` with ``allowed`` False (it is falsy), not an exception; the ``limited`` form raises
:class:`RateLimited` instead. Times are seconds (``float``).

    with Client() as client:
        decision = client.limit("user:42", rate="100/m", burst=20)
        if not decision:
            print("retry in", decision.retry_after, "s")

        with client.ratelimit.limited("login:alice", rate="5/15m", algorithm="fixed_window"):
            ...                                   # raises RateLimited(retry_after=...) when denied

        @client.ratelimit.limited("user:{user_id}", rate="10/s")
        def handle(user_id: int) -> None: ...

        client.ratelimit.check(                   # several limits, decided atomically
            Limit("user:42", rate="10/s"), Limit("org:7", rate="1000/m"), scope="org:7"
        )
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import grpc
from google.protobuf import duration_pb2

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

from ._base import AsyncTransport, Transport, utc
from .errors import (
    Cancelled,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    Unavailable,
    Unimplemented,
    from_grpc_error,
    from_status,
)

SERVICE = "coord.ratelimit.v1.RateLimitService"
_M = f"/{SERVICE}/"

P = ParamSpec("P")
R = TypeVar("R")

ALGORITHMS = {
    "token_bucket": ratelimit_pb2.ALGORITHM_TOKEN_BUCKET,
    "sliding_window": ratelimit_pb2.ALGORITHM_SLIDING_WINDOW,
    "sliding_log": ratelimit_pb2.ALGORITHM_SLIDING_LOG,
    "fixed_window": ratelimit_pb2.ALGORITHM_FIXED_WINDOW,
}
_ALGORITHM_NAMES = {v: k for k, v in ALGORITHMS.items()}
_FAILURE_MODES = {"closed": ratelimit_pb2.FAILURE_MODE_CLOSED, "open": ratelimit_pb2.FAILURE_MODE_OPEN}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_rate(rate: str) -> tuple[int, float]:
    """``"100/m"`` -> (100, 60.0); also ``"10/s"``, ``"5/15m"``, ``"3/2.5s"``, ``"1000/d"``."""
    match = _RATE.match(rate)
    if not match:
        raise ValueError(f"rate {rate!r} is not LIMIT/PERIOD (examples: 10/s, 100/m, 5/15m, 1000/d)")
    seconds = float(match.group(2) or 1) * _UNIT_SECONDS[match.group(3)]
    return int(match.group(1)), seconds


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Limit:
    """One descriptor of a check: ``key`` under an inline rule (``rate``) or a named ``policy``.

    ``rate`` is ``"LIMIT/PERIOD"`` (see :func:`parse_rate`); ``burst`` applies to the token bucket
    only; ``algorithm`` is one of :data:`ALGORITHMS`; ``on_backend_error`` is ``"closed"`` (deny when
    Redis is unavailable, the default) or ``"open"``; ``cost`` overrides the check's cost.
    """

    key: str
    rate: str | None = None
    burst: int = 0
    algorithm: str = "token_bucket"
    policy: str | None = None
    on_backend_error: str = "closed"
    name: str = ""
    cost: int = 0


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _descriptor(limit: Limit) -> ratelimit_pb2.Descriptor:
    if not isinstance(limit.key, str):
        raise TypeError(f"key must be a str, not {type(limit.key).__name__}")
    if (limit.rate is None) == (limit.policy is None):
        raise ValueError(f"limit {limit.key!r}: give exactly one of rate= or policy=")
    if limit.policy is not None:
        return ratelimit_pb2.Descriptor(key=limit.key, policy=limit.policy, cost=limit.cost)
    assert limit.rate is not None
    rule = _rule(limit.rate, limit.burst, limit.algorithm, limit.on_backend_error, limit.name)
    return ratelimit_pb2.Descriptor(key=limit.key, rule=rule, cost=limit.cost)


@functools.lru_cache(maxsize=1024)
def _rule(rate: str, burst: int, algorithm: str, on_backend_error: str, name: str) -> ratelimit_pb2.Rule:
    """The validated Rule of a Limit's fields. A service checks the same few rules for every request:
    parsing and building one is most of what a check costs the client, so each is made once (the
    Descriptor copies it; this one is never changed)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)} (got {algorithm!r})")
    if on_backend_error not in _FAILURE_MODES:
        raise ValueError(f"on_backend_error must be 'closed' or 'open' (got {on_backend_error!r})")
    count, seconds = parse_rate(rate)
    return ratelimit_pb2.Rule(
        algorithm=ALGORITHMS[algorithm],
        limit=count,
        period=_duration(seconds),
        burst=burst,
        on_backend_error=_FAILURE_MODES[on_backend_error],
        name=name,
    )


def _check_request(
    limits: tuple[Limit, ...], cost: int, dry_run: bool, independent: bool, scope: str
) -> ratelimit_pb2.CheckRequest:
    if not limits:
        raise ValueError("check needs at least one Limit")
    return ratelimit_pb2.CheckRequest(
        descriptors=[_descriptor(x) for x in limits],
        cost=cost,
        dry_run=dry_run,
        mode=ratelimit_pb2.MODE_INDEPENDENT if independent else ratelimit_pb2.MODE_ALL_OR_NOTHING,
        scope=scope,
    )


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class LimitStatus:
    """The decision for one :class:`Limit`; durations in seconds (millisecond precision)."""

    key: str
    name: str
    algorithm: str
    allowed: bool
    consumed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    period: float


@dataclass(frozen=True)
class Decision:
    """The decision for a check; truthy when allowed. ``headers`` holds ready-made IETF
    ``RateLimit`` and ``RateLimit-Policy`` HTTP header values."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    statuses: list[LimitStatus]
    headers: dict[str, str]
    backend_unavailable: bool
    decide_time: datetime | None

    def __bool__(self) -> bool:
        return self.allowed


class RateLimited(Exception):
    """Raised by the ``limited`` forms when a check denies; ``retry_after`` is in seconds."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.retry_after = decision.retry_after
        denied = ", ".join(s.key for s in decision.statuses if not s.allowed)
        super().__init__(f"rate limited ({denied}); retry after {decision.retry_after:g}s")


def _seconds(duration: duration_pb2.Duration) -> float:
    # Whole milliseconds, as ToMilliseconds gives them (int() rounds toward zero as it does), without
    # its pure-Python helpers: a decision reads 3 + 3 per descriptor of these.
    return (duration.seconds * 1000 + int(duration.nanos / 1_000_000)) / 1000


def _decision(response: ratelimit_pb2.CheckResponse) -> Decision:
    headers = {}
    if response.ratelimit_header:
        headers["RateLimit"] = response.ratelimit_header
    if response.ratelimit_policy_header:
        headers["RateLimit-Policy"] = response.ratelimit_policy_header
    return Decision(
        allowed=response.allowed,
        limit=response.limit,
        remaining=response.remaining,
        reset_after=_seconds(response.reset_after),
        retry_after=_seconds(response.retry_after),
        statuses=[
            LimitStatus(
                key=s.key,
                name=s.name,
                algorithm=_ALGORITHM_NAMES.get(s.algorithm, "unknown"),
                allowed=s.allowed,
                consumed=s.consumed,
                limit=s.limit,
                remaining=s.remaining,
                reset_after=_seconds(s.reset_after),
                retry_after=_seconds(s.retry_after),
                period=_seconds(s.period),
            )
            for s in response.statuses
        ],
        headers=headers,
        backend_unavailable=response.backend_unavailable,
        decide_time=utc(response.decide_time) if response.HasField("decide_time") else None,
    )


def _key_for(template: str, signature: inspect.Signature, args: Any, kwargs: Any) -> str:
    """``template`` formatted with the bound arguments of a call (``"user:{user_id}"``).

    ``signature`` is the decorated function's, taken once at decoration: it costs more than a check.
    """
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return template.format(**bound.arguments)


# ---------------------------------------------------------------- sync


class RateLimitAPI:
    """Sync access to ``coord.ratelimit.v1.RateLimitService``; reached as ``Client(...).ratelimit``.

    Checks are never retried by the client (a retry could consume twice). Failures raise
    :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError or TypeError before
    anything is sent.
    """

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = ratelimit_pb2_grpc.RateLimitServiceStub(transport.channel)

    def check(
        self,
        *limits: Limit,
        cost: int = 1,
        dry_run: bool = False,
        independent: bool = False,
        scope: str = "",
        timeout: float | None = None,
    ) -> Decision:
        """Decide ``limits`` in one atomic step. All-or-nothing over several keys needs a ``scope``."""
        request = _check_request(limits, cost, dry_run, independent, scope)
        return _decision(self._t.call(self._stub.Check, _M + "Check", request, timeout))

    def limit(
        self,
        key: str,
        rate: str | None = None,
        *,
        burst: int = 0,
        algorithm: str = "token_bucket",
        policy: str | None = None,
        on_backend_error: str = "closed",
        cost: int = 1,
        dry_run: bool = False,
        scope: str = "",
        timeout: float | None = None,
    ) -> Decision:
        """Check one key: ``client.limit("user:42", rate="100/m", burst=20)``."""
        one = Limit(key, rate, burst, algorithm, policy, on_backend_error)
        return self.check(one, cost=cost, dry_run=dry_run, scope=scope, timeout=timeout)

    def reset(self, key: str, *, scope: str = "", timeout: float | None = None) -> bool:
        """Clear ``key``'s state; True when it had any."""
        request = ratelimit_pb2.ResetRequest(key=key, scope=scope)
        return self._t.call(self._stub.Reset, _M + "Reset", request, timeout).existed

    def limited(self, key: str, rate: str | None = None, **options: Any) -> Limited:
        """A context manager and decorator that raises :class:`RateLimited` when denied.

        As a decorator, ``key`` may be a ``str.format`` template over the function's parameters.
        ``options`` are those of :meth:`limit`.
        """
        return Limited(self, key, rate, options)


class Limited:
    """What :meth:`RateLimitAPI.limited` returns: ``with`` it, or decorate a function with it."""

    def __init__(self, api: RateLimitAPI, key: str, rate: str | None, options: dict[str, Any]) -> None:
        self._api, self._key, self._rate, self._options = api, key, rate, options
        self.decision: Decision | None = None

    def _enforce(self, key: str) -> Decision:
        decision = self._api.limit(key, self._rate, **self._options)
        if not decision:
            raise RateLimited(decision)
        return decision

    def __enter__(self) -> Decision:
        self.decision = self._enforce(self._key)
        return self.decision

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            self._enforce(_key_for(self._key, signature, args, kwargs))
            return fn(*args, **kwargs)

        return wrapper


# ---------------------------------------------------------------- async


class AsyncRateLimitAPI:
    """Asyncio access to ``coord.ratelimit.v1.RateLimitService``; reached as ``AsyncClient(...).ratelimit``.

    The same methods, arguments and results as :class:`RateLimitAPI`, as coroutines.
    """

    def __init__(self, transport: AsyncTransport, *, batch: bool = True) -> None:
        self._t = transport
        self._stub = ratelimit_pb2_grpc.RateLimitServiceStub(transport.channel)
        self._batcher = _CheckBatcher(transport, self._stub) if batch else None

    async def check(
        self,
        *limits: Limit,
        cost: int = 1,
        dry_run: bool = False,
        independent: bool = False,
        scope: str = "",
        timeout: float | None = None,
    ) -> Decision:
        """Decide ``limits`` in one atomic step (see :meth:`RateLimitAPI.check`).

        Checks that other coroutines make in the same event-loop iteration travel together as one
        batch on a CheckBatchStream (each still decided on its own; see :class:`_CheckBatcher`).
        """
        request = _check_request(limits, cost, dry_run, independent, scope)
        if self._batcher is not None:
            return _decision(await self._batcher.check(request, timeout))
        return _decision(await self._t.call(self._stub.Check, _M + "Check", request, timeout))

    async def limit(
        self,
        key: str,
        rate: str | None = None,
        *,
        burst: int = 0,
        algorithm: str = "token_bucket",
        policy: str | None = None,
        on_backend_error: str = "closed",
        cost: int = 1,
        dry_run: bool = False,
        scope: str = "",
        timeout: float | None = None,
    ) -> Decision:
        """Check one key: ``await client.limit("user:42", rate="100/m", burst=20)``."""
        one = Limit(key, rate, burst, algorithm, policy, on_backend_error)
        return await self.check(one, cost=cost, dry_run=dry_run, scope=scope, timeout=timeout)

    async def reset(self, key: str, *, scope: str = "", timeout: float | None = None) -> bool:
        """Clear ``key``'s state; True when it had any."""
        request = ratelimit_pb2.ResetRequest(key=key, scope=scope)
        return (await self._t.call(self._stub.Reset, _M + "Reset", request, timeout)).existed

    def limited(self, key: str, rate: str | None = None, **options: Any) -> AsyncLimited:
        """``async with`` it, or decorate a coroutine function; raises :class:`RateLimited` when denied."""
        return AsyncLimited(self, key, rate, options)


class _CheckBatcher:
    """Sends the checks concurrent coroutines make in one event-loop iteration as one batch.

    A gateway answering many requests at once checks a limit for each: one RPC per check costs the
    server far more than the check itself, while one batch of N checks costs little more than one
    Check, and the server sends their scripts to Redis as one pipeline. Batches travel on one
    CheckBatchStream (a stream message costs less than a call), opened on first use and again after
    it breaks. Nothing changes for each caller: every check is decided on its own, exactly as by
    Check, and each caller gets its own decision or its own error (when the stream breaks, the
    callers whose batches were on it get the error a call would have raised). A lone check goes out
    as a plain Check. Checks with different timeouts are not mixed (each batch carries its callers'
    timeout). A server without CheckBatchStream gets unary CheckBatch calls, one without CheckBatch
    (UNIMPLEMENTED) plain Checks; one with a lower batch limit gets smaller batches.
    """

    # Two batches in flight keep client and server busy at once: the server decides one while the
    # other travels or its callers run (one batch alone leaves each side waiting on the other; many
    # small ones cost more per check). At 64 callers, batches of 32 gave 0.95-1.11x redis-py's checks
    # per second where 16 (four batches) gave 0.85-0.91x and one batch of 64 gave 0.54x.
    MAX_BATCH = 32
    # A flush of this many checks or more, with no batch in flight, goes as two halves (the next
    # flushes keep the two going): at 16 and 32 callers, 0.66x and 0.79x against 0.48x and 0.53x.
    SPLIT_FROM = 16

    def __init__(self, transport: AsyncTransport, stub: ratelimit_pb2_grpc.RateLimitServiceAsyncStub) -> None:
        self._t = transport
        self._stub = stub
        self._max = self.MAX_BATCH
        self._batch_supported = True
        self._stream_supported = True
        self._stream: _BatchStream | None = None
        self._queue: dict[float | None, list[_Queued]] = {}
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._settling = 0  # batches answered whose callers have not run yet (see _counted)

    async def check(
        self, request: ratelimit_pb2.CheckRequest, timeout: float | None
    ) -> ratelimit_pb2.CheckResponse:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ratelimit_pb2.CheckResponse] = loop.create_future()
        self._queue.setdefault(timeout, []).append((request, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, {}
        for timeout, items in queue.items():
            self._send(items, timeout)

    def _send(self, items: list[_Queued], timeout: float | None) -> None:
        """Start the calls that decide ``items``: one task per batch (or per lone check)."""
        live = [item for item in items if not item[1].done()]  # callers that gave up are left out
        if len(live) == 1 or not self._batch_supported:
            for request, future in live:
                self._start(self._one(request, future, timeout))
            return
        count = -(-len(live) // self._max)
        if count == 1 and len(live) >= self.SPLIT_FROM and not self._in_flight and not self._settling:
            count = 2
        size = -(-len(live) // count)  # even batches: 40 checks go as 20 + 20, not 32 + 8
        for i in range(0, len(live), size):
            self._in_flight += 1  # counted now: the next flush, maybe before this task runs, sees it
            self._start(self._counted(live[i : i + size], timeout))

    def _start(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._sending.add(task)  # a strong reference until it is done
        task.add_done_callback(self._sending.discard)

    async def _counted(self, items: list[_Queued], timeout: float | None) -> None:
        try:
            await self._batch(items, timeout)
        finally:
            self._in_flight -= 1
            # Until the callers just answered have run (the next loop iteration), a flush made of
            # the callers of another batch answered a moment earlier is not split: it is half of a
            # pair coming back, and splitting it would leave three batches, then more, each smaller.
            self._settling += 1
            asyncio.get_running_loop().call_soon(self._settled)

    def _settled(self) -> None:
        self._settling -= 1

    async def _results(self, items: list[_Queued], timeout: float | None) -> Sequence[Any]:
        checks = [r for r, _ in items]
        if self._stream_supported:
            if self._stream is None or self._stream.closed:
                self._stream = _BatchStream(self._stub, self._t.metadata)
            try:
                return await self._stream.send(checks, self._t.timeout if timeout is None else timeout)
            except Unimplemented:
                self._stream_supported = False  # a server from before CheckBatchStream
        request = ratelimit_pb2.CheckBatchRequest(checks=checks)
        return (await self._t.call(self._stub.CheckBatch, _M + "CheckBatch", request, timeout)).results

    async def _batch(self, items: list[_Queued], timeout: float | None) -> None:
        try:
            results = await self._results(items, timeout)
        except Unimplemented:
            self._batch_supported = False  # a server from before CheckBatch
            self._send(items, timeout)
            return
        except InvalidArgument as exc:
            limit = exc.metadata.get("limit", "")
            if exc.reason == "BATCH_TOO_LARGE" and limit.isdigit() and 0 < int(limit) < len(items):
                self._max = int(limit)  # the server allows fewer checks per call than we sent
                self._send(items, timeout)
                return
            _fail(items, exc)
            return
        except Exception as exc:
            _fail(items, exc)  # each caller gets it; the task sending the batch ends quietly
            return
        except BaseException:
            _fail(items, Cancelled("the batch was cancelled"))
            raise
        if len(results) != len(items):
            _fail(items, Internal(f"the server answered {len(results)} of {len(items)} checks of a batch"))
            return
        for (_, future), result in zip(items, results, strict=True):
            if future.done():
                continue
            if result.HasField("check"):
                future.set_result(result.check)
            else:
                error = result.error
                future.set_exception(from_status(error.code, error.message, error.details))

    async def _one(
        self,
        request: ratelimit_pb2.CheckRequest,
        future: asyncio.Future[ratelimit_pb2.CheckResponse],
        timeout: float | None,
    ) -> None:
        try:
            response = await self._t.call(self._stub.Check, _M + "Check", request, timeout)
        except Exception as exc:
            _fail([(request, future)], exc)
            return
        if not future.done():
            future.set_result(response)


class _BatchStream:
    """One open CheckBatchStream: ``await send(checks, timeout)`` writes one batch and returns its
    results, matched by batch id.

    A batch fails with DeadlineExceeded at its timeout, as a call would (a late answer is dropped).
    At most BATCHES_IN_FLIGHT batches are written and unanswered at once (the number the server
    decides at once), so none waits unread on the server while its caller's time runs out; a batch
    whose caller gave up before it was written is never sent. When the stream ends, every batch still
    waiting fails with the error that ended it, and ``closed`` tells the owner to open another.
    """

    def __init__(self, stub: ratelimit_pb2_grpc.RateLimitServiceAsyncStub, metadata: Any) -> None:
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.Future[Sequence[Any]], asyncio.TimerHandle]] = {}
        self._outbox: asyncio.Queue[tuple[int, ratelimit_pb2.CheckBatchStreamRequest] | None] = (
            asyncio.Queue()
        )
        self._slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        self._written: set[int] = set()
        self._call = stub.CheckBatchStream(self._requests(), metadata=metadata)
        self._reader = self._loop.create_task(self._read())

    async def send(self, checks: list[ratelimit_pb2.CheckRequest], timeout: float) -> Sequence[Any]:
        if not timeout >= _MIN_TIMEOUT:
            raise DeadlineExceeded(f"a timeout of {timeout:g}s leaves no time to decide the checks")
        batch_id = next(self._ids)
        # The server bounds the batch by the same timeout (capped at what it accepts, 1 hour).
        request = ratelimit_pb2.CheckBatchStreamRequest(
            batch_id=batch_id, checks=checks, timeout=_duration(min(timeout, _MAX_TIMEOUT))
        )
        future: asyncio.Future[Sequence[Any]] = self._loop.create_future()
        self._waiting[batch_id] = (future, self._loop.call_later(timeout, self._expire, batch_id))
        self._outbox.put_nowait((batch_id, request))
        try:
            return await future
        finally:
            self._forget(batch_id)

    def _forget(self, batch_id: int) -> tuple[asyncio.Future[Sequence[Any]], asyncio.TimerHandle] | None:
        entry = self._waiting.pop(batch_id, None)
        if entry is not None:
            entry[1].cancel()
        if batch_id in self._written:
            self._written.discard(batch_id)
            self._slots.release()
        return entry

    def _expire(self, batch_id: int) -> None:
        entry = self._forget(batch_id)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(DeadlineExceeded("the batch of checks was not answered in time"))

    async def _requests(self) -> AsyncIterator[ratelimit_pb2.CheckBatchStreamRequest]:
        # The server accepts the stream with its initial metadata before any batch goes out. A server
        # without this method ends the call at once with UNIMPLEMENTED, and nothing was written that
        # could race with that answer (a write racing it turns it into INTERNAL).
        await self._call.initial_metadata()
        while (queued := await self._outbox.get()) is not None:
            batch_id, request = queued
            await self._slots.acquire()
            if batch_id not in self._waiting:  # its caller gave up (timeout, cancellation) meanwhile
                self._slots.release()
                continue
            self._written.add(batch_id)
            yield request

    async def _read(self) -> None:
        error: Exception = Unavailable("the check stream ended")
        try:
            async for reply in self._call:
                entry = self._forget(reply.batch_id)
                if entry is None or entry[0].done():
                    continue  # its caller stopped waiting
                future = entry[0]
                if reply.HasField("error"):
                    failure = reply.error
                    future.set_exception(from_status(failure.code, failure.message, failure.details))
                else:
                    future.set_result(reply.results)
        except grpc.aio.AioRpcError as exc:
            error = from_grpc_error(exc)
        except asyncio.CancelledError:
            error = Cancelled("the client was closed")
        finally:
            self.closed = True
            self._outbox.put_nowait(None)
            for batch_id in list(self._waiting):
                entry = self._forget(batch_id)
                if entry is not None and not entry[0].done():
                    entry[0].set_exception(error)


# What the server accepts as a batch's timeout, and how many batches it decides at once per stream.
_MIN_TIMEOUT, _MAX_TIMEOUT = 0.001, 3600.0
BATCHES_IN_FLIGHT = 32
_Queued = tuple[ratelimit_pb2.CheckRequest, "asyncio.Future[ratelimit_pb2.CheckResponse]"]


def _fail(items: list[_Queued], error: Exception) -> None:
    for _, future in items:
        if not future.done():
            future.set_exception(error)


class AsyncLimited:
    """What :meth:`AsyncRateLimitAPI.limited` returns."""

    def __init__(self, api: AsyncRateLimitAPI, key: str, rate: str | None, options: dict[str, Any]) -> None:
        self._api, self._key, self._rate, self._options = api, key, rate, options
        self.decision: Decision | None = None

    async def _enforce(self, key: str) -> Decision:
        decision = await self._api.limit(key, self._rate, **self._options)
        if not decision:
            raise RateLimited(decision)
        return decision

    async def __aenter__(self) -> Decision:
        self.decision = await self._enforce(self._key)
        return self.decision

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            await self._enforce(_key_for(self._key, signature, args, kwargs))
            return await fn(*args, **kwargs)

        return wrapper


__all__ = [
    "ALGORITHMS",
    "SERVICE",
    "AsyncLimited",
    "AsyncRateLimitAPI",
    "Decision",
    "Limit",
    "LimitStatus",
    "Limited",
    "RateLimitAPI",
    "RateLimited",
    "parse_rate",
]
