# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The asyncio Election API: ``AsyncClient(...).election(name)`` gives an :class:`AsyncElection`.

The same methods, arguments and results as :mod:`.sync`, as coroutines; the campaign is used with
``async with`` and the observation with ``async for``::

    async with client.election("scheduler").campaign(value=b"host-a") as leadership:
        leadership.check()
        await leadership.proclaim(b"host-a:busy")

    async for change in client.election("scheduler").observe():
        print(change.kind, change.leader)

Only the waiting is written here: requests and parsing are in :mod:`._codec`, the campaign's state
machine in :mod:`._campaign`, and the unary methods are the sync ones, taken over with
:func:`~coord_client._call.awaiting`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import nullcontext
from types import TracebackType
from typing import Any

import grpc

from coord.election.v1 import election_pb2, election_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, awaiting
from .._convert import Seconds
from ..errors import from_grpc_error
from ..events._stream import Backoff
from . import _codec
from ._campaign import Answer, CampaignBase, CampaignSpec, LeadershipState, stream_error
from .models import Leader, LeaderChange, LeaderState, LostCallback, ProclaimResult, ResignResult
from .sync import ElectionAPI, _spec

# What writing to, or closing, a stream that already ended raises.
_STREAM_OVER = (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError)


class AsyncLeadership(LeadershipState):
    """The asyncio twin of :class:`~.sync.Leadership`: ``lost`` is an ``asyncio.Event``."""

    lost: asyncio.Event

    def __init__(
        self, pb: election_pb2.Leadership, anchor: float, election: AsyncElection, campaign: AsyncCampaign
    ) -> None:
        super().__init__(pb, anchor, campaign._refused)
        self.lost = asyncio.Event()
        self._election = election

    async def proclaim(self, value: bytes | str, *, timeout: float | None = None) -> ProclaimResult:
        """Publish a new value, fenced by this term; raises :class:`LeadershipLost` if refused."""
        self.check()
        data = _codec.value_of(value)
        result = await self._election.proclaim(self.term, self.leader_token, data, timeout=timeout)
        return self._proclaimed(result, data)


class AsyncCampaign(CampaignBase[AsyncLeadership]):
    """What :meth:`AsyncElection.campaign` returns: ``async with`` it (see :class:`~.sync.Campaign`).

    One task sends keep-alives and another reads the answers; both end with the block.
    """

    _stop: asyncio.Event

    def __init__(self, election: AsyncElection, spec: CampaignSpec) -> None:
        super().__init__(spec, election._api._t.timeout)
        self._election = election
        self._stub = election._api._stub
        self._metadata = election._api._t.metadata
        self._guard = nullcontext()  # one event loop runs both tasks: nothing to serialize
        self._stop = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None
        self._beater_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncLeadership:
        opening = self._opening()
        call: Any = self._stub.Campaign(None, metadata=self._metadata)
        self._call = call
        elected: election_pb2.Leadership | None = None
        try:
            await call.write(opening)
            async with asyncio.timeout(self._spec.wait):
                while elected is None:
                    elected = self._elected(await self._next())
        except TimeoutError:
            call.cancel()  # the server takes the candidate out of the queue
            raise self._not_elected() from None
        except BaseException:
            call.cancel()
            raise
        leadership = self._lead(elected, lambda pb, anchor: AsyncLeadership(pb, anchor, self._election, self))
        self._reader_task = asyncio.create_task(self._reader())
        self._beater_task = asyncio.create_task(self._beater())
        return leadership

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        reader, beater = self._reader_task, self._beater_task
        assert reader is not None and beater is not None, "the campaign was not entered"
        self._stop.set()
        await beater  # it ends after its current write, never in the middle of one
        try:
            if self._close():
                await self._call.write(_codec.RESIGN)
                await self._call.done_writing()
                await asyncio.wait_for(asyncio.shield(reader), self._timeout)
        except (*_STREAM_OVER, TimeoutError):
            pass  # the stream is cut below, which ends the leadership at once as well
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
        assert isinstance(response, election_pb2.CampaignResponse)
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
                    await self._call.write(_codec.KEEP_ALIVE)
                except _STREAM_OVER:
                    return  # the reader reports the broken stream
        self._call.cancel()


class AsyncObservation:
    """The asyncio twin of :class:`~.sync.Observation`: ``async for change in observation``."""

    def __init__(self, api: AsyncElectionAPI, name: str, after: str | None) -> None:
        self._api = api
        self._name = name
        self.revision = after
        self._request = _codec.observe_request(name, after)  # checks the arguments now
        self._call: Any = None
        self._closed = False
        self._backoff = Backoff()
        self.reconnects = 0

    async def __aenter__(self) -> AsyncObservation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    async def __aiter__(self) -> AsyncIterator[LeaderChange]:
        while not self._closed:
            request = _codec.observe_request(self._name, self.revision)
            self._call = self._api._stub.Observe(request, metadata=self._api._t.metadata)
            try:
                async for pb in self._call:
                    self._backoff.reset()
                    change = _codec.change(pb)
                    yield change
                    self.revision = change.revision
            except grpc.aio.AioRpcError as exc:
                if self._closed or exc.code() == grpc.StatusCode.CANCELLED:
                    return
                if exc.code() not in _codec.RESUMABLE:
                    raise from_grpc_error(exc) from exc
            except asyncio.CancelledError:
                self._call.cancel()
                raise
            self.reconnects += 1
            await asyncio.sleep(self._backoff.next())


class AsyncElection:
    """One election, by name: ``client.election("scheduler")`` on an :class:`AsyncClient`."""

    def __init__(self, api: AsyncElectionAPI, name: str) -> None:
        self._api = api
        self.name = _codec.name_of(name)

    def __repr__(self) -> str:
        return f"<AsyncElection {self.name!r}>"

    def campaign(
        self,
        value: bytes | str = b"",
        *,
        ttl: Seconds | None = None,
        wait: Seconds | None = None,
        keep_alive: Seconds | None = None,
        raise_on_lost: bool = True,
        on_lost: LostCallback | None = None,
        timeout: float | None = None,
    ) -> AsyncCampaign:
        """Lead for the length of an ``async with`` block (see :meth:`~.sync.Election.campaign`);
        ``on_lost`` is called in the event loop."""
        spec = _spec(
            self.name,
            value,
            ttl=ttl,
            wait=wait,
            keep_alive=keep_alive,
            raise_on_lost=raise_on_lost,
            on_lost=on_lost,
            timeout=timeout,
        )
        return AsyncCampaign(self, spec)

    async def leader(self, *, timeout: float | None = None) -> Leader | None:
        """Who leads now (None: nobody)."""
        return (await self._api.state(self.name, timeout=timeout)).leader

    async def state(self, *, timeout: float | None = None) -> LeaderState:
        """Who leads now, with the newest revision (to observe the changes after it)."""
        return await self._api.state(self.name, timeout=timeout)

    def observe(self, *, after: str | None = None) -> AsyncObservation:
        """The current state, then every change of leadership (or the changes ``after`` a revision)."""
        return AsyncObservation(self._api, self.name, after)

    async def proclaim(
        self, term: int, leader_token: str, value: bytes | str, *, timeout: float | None = None
    ) -> ProclaimResult:
        """Publish a new value for the leadership of ``term`` (falsy when it is not the current one)."""
        return await self._api.proclaim(self.name, term, leader_token, value, timeout=timeout)

    async def resign(self, term: int, leader_token: str, *, timeout: float | None = None) -> ResignResult:
        """End the leadership of ``term``; idempotent."""
        return await self._api.resign(self.name, term, leader_token, timeout=timeout)


class AsyncElectionAPI(AsyncService):
    """Asyncio access to ``coord.election.v1.ElectionService`` (see :class:`~.sync.ElectionAPI`)."""

    def __init__(self, transport: AsyncTransport) -> None:
        super().__init__(transport, election_pb2_grpc.ElectionServiceStub(transport.channel), _codec.SERVICE)

    def election(self, name: str) -> AsyncElection:
        return AsyncElection(self, name)

    state = awaiting(ElectionAPI.state)
    proclaim = awaiting(ElectionAPI.proclaim)
    resign = awaiting(ElectionAPI.resign)


__all__ = [
    "AsyncCampaign",
    "AsyncElection",
    "AsyncElectionAPI",
    "AsyncLeadership",
    "AsyncObservation",
]
