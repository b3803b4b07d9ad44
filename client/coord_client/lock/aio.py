"""The asyncio Lock API: :class:`AsyncLockAPI`, reached as ``AsyncClient(...).lock``.

The same methods, arguments and results as :class:`~.sync.LockAPI`, as coroutines; the context
managers are used with ``async with``. Only the waiting is written here: requests and parsing are in
:mod:`._codec`, the Hold's state machine in :mod:`._lease`, the non-sending methods in :mod:`._api`,
and the methods of one call (acquire, release, extend, describe) are the sync ones, taken over with
:func:`~coord_client._call.awaiting` (arguments are checked when the method is called).
"""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from types import TracebackType
from typing import Any

import grpc

from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, awaiting
from ..errors import CoordError, DeadlineExceeded
from . import _codec
from ._api import AcquiredBase, LockAPIBase
from ._lease import HEARTBEAT, RELEASE, Answer, HoldBase, HoldSpec, LeaseState, stream_error
from .models import Grant
from .sync import LockAPI

# What writing to, or closing, a stream that already ended raises.
_STREAM_OVER = (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError)


class AsyncLease(LeaseState):
    """The asyncio twin of :class:`~.sync.Lease`: ``lost`` is an ``asyncio.Event``."""

    lost: asyncio.Event

    def __init__(self, grant: Grant) -> None:
        super().__init__(grant)
        self.lost = asyncio.Event()


class AsyncHold(HoldBase[AsyncLease]):
    """What :meth:`AsyncLockAPI.hold` returns: ``async with`` it (see :class:`~.sync.Hold`).

    One task sends heartbeats and another reads the answers; both end with the block.
    """

    _stop: asyncio.Event

    def __init__(
        self, stub: lock_pb2_grpc.LockServiceAsyncStub, transport: AsyncTransport, spec: HoldSpec
    ) -> None:
        super().__init__(spec, transport.timeout)
        self._stub = stub
        self._metadata = transport.metadata
        self._guard = nullcontext()  # one event loop runs both tasks: nothing to serialize
        self._stop = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None
        self._beater_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncLease:
        opening = self._opening()
        call: Any = self._stub.Hold(None, metadata=self._metadata)
        self._call = call
        grant: lock_pb2.Grant | None = None
        try:
            await call.write(opening)
            async with asyncio.timeout(self._answer_within):
                while grant is None:
                    grant = self._granted(await self._next())
        except TimeoutError as error:
            call.cancel()
            raise DeadlineExceeded("no answer to the Hold request in time") from error
        except BaseException:
            call.cancel()  # the server leaves the queue or releases at once
            raise
        lease = self._hold(grant, AsyncLease)
        self._reader_task = asyncio.create_task(self._reader())
        self._beater_task = asyncio.create_task(self._beater())
        return lease

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        reader, beater = self._reader_task, self._beater_task
        assert reader is not None and beater is not None, "the Hold was not entered"
        self._stop.set()
        await beater  # it ends after its current write, never in the middle of one
        try:
            if self._close():
                await self._call.write(RELEASE)
                await self._call.done_writing()
                await asyncio.wait_for(asyncio.shield(reader), self._timeout)
        except (*_STREAM_OVER, TimeoutError):
            pass  # the stream is cut below, which releases the lock at once as well
        finally:
            self._call.cancel()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._closed(block_raised=exc_type is not None)

    async def _next(self) -> Answer:
        try:
            response = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            return stream_error(exc)
        if response is grpc.aio.EOF:  # type: ignore[attr-defined]
            return None
        assert isinstance(response, lock_pb2.HoldResponse)
        return response

    async def _reader(self) -> None:
        while self._read(await self._next()):
            pass

    async def _beater(self) -> None:
        while (pause := self._pause()) is not None:
            try:
                # A timeout scope: asyncio.wait_for on Python 3.11 can swallow a cancellation.
                async with asyncio.timeout(pause):
                    await self._stop.wait()
                return
            except TimeoutError:
                pass
            if self._beat_due():
                try:
                    await self._call.write(HEARTBEAT)
                except _STREAM_OVER:
                    return  # the reader reports the broken stream
        self._call.cancel()


class AsyncAcquired(AcquiredBase):
    """What :meth:`AsyncLockAPI.acquired` returns (see :class:`~.sync.Acquired`)."""

    def __init__(self, api: AsyncLockAPI, kwargs: dict[str, Any]) -> None:
        super().__init__(kwargs)
        self._api = api

    async def __aenter__(self) -> Grant:
        return self._take(await self._api.acquire(**self._kwargs))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        grant = self._taken()
        try:
            self.release_result = await self._api.release(grant.name, grant.lock_token)
        except CoordError:
            if exc_type is None:
                raise


class AsyncLockAPI(LockAPIBase[AsyncHold, AsyncAcquired], AsyncService):
    """Asyncio access to ``coord.lock.v1.LockService``; reached as ``AsyncClient(...).lock``.

    The same methods, arguments and results as :class:`~.sync.LockAPI`, as coroutines; the context
    managers are used with ``async with``.
    """

    def __init__(self, transport: AsyncTransport) -> None:
        super().__init__(transport, lock_pb2_grpc.LockServiceStub(transport.channel), _codec.SERVICE)

    acquire = awaiting(LockAPI.acquire)
    release = awaiting(LockAPI.release)
    extend = awaiting(LockAPI.extend)
    describe = awaiting(LockAPI.describe)

    def _new_hold(self, spec: HoldSpec) -> AsyncHold:
        return AsyncHold(self._stub, self._t, spec)

    def _new_acquired(self, kwargs: dict[str, Any]) -> AsyncAcquired:
        return AsyncAcquired(self, kwargs)


__all__ = ["AsyncAcquired", "AsyncHold", "AsyncLease", "AsyncLockAPI"]
