# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""How the asyncio client sends concurrent rate-limit checks as batches (see :class:`_CheckBatcher`).

Only :class:`~.aio.AsyncRateLimitAPI` uses it; the numbers below were measured (docs/ratelimit.md,
docs/benchmarks.md) and are the levers of the client's throughput.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import grpc

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

from .._base import AsyncTransport
from .._convert import to_duration
from ..errors import (
    Cancelled,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    Unavailable,
    Unimplemented,
    from_grpc_error,
    from_status,
)
from ._codec import METHOD_PREFIX

_CHECK = METHOD_PREFIX + "Check"
_CHECK_BATCH = METHOD_PREFIX + "CheckBatch"


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
        return (await self._t.call(self._stub.CheckBatch, _CHECK_BATCH, request, timeout)).results

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
            response = await self._t.call(self._stub.Check, _CHECK, request, timeout)
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
            batch_id=batch_id, checks=checks, timeout=to_duration(min(timeout, _MAX_TIMEOUT))
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


__all__ = ["BATCHES_IN_FLIGHT"]
