# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The asyncio Events API: :class:`AsyncEventsAPI`, reached as ``AsyncClient(...).events``.

    async with AsyncClient() as client:
        await client.events.publish("orders.created", b'{"id": 1}', content_type="application/json")
        subscription = client.events.subscribe("orders.*", after=saved_cursors)
        async for event in subscription:
            handle(event)
            saved_cursors = subscription.cursors      # {topic: id}: where to resume next time

        async def work(event: Event) -> None: ...   # acked when it returns, nacked when it raises
        await client.events.consume("jobs", "workers", work, prefetch=16)

The methods of :class:`~.sync.EventsAPI` (same arguments, results and errors), as coroutines. Those
that send one call are the sync ones, taken over with :func:`~coord_client._call.awaiting` (arguments
are checked when the method is called); only the waiting is written here (``list_topics``' pages,
``consume``, the subscription): see :mod:`.sync` for where the rest lives.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, awaiting
from .._convert import Seconds
from ..errors import CoordError, from_grpc_error
from . import _codec
from ._api import EventsAPIBase
from ._stream import Backoff, Cursors, SubscriptionBase, report_gap, settled
from .models import Event, Gap
from .sync import EventsAPI


class AsyncSubscription(SubscriptionBase):
    """An asyncio subscription: ``async for`` it; ``cursors`` says where it stands; ``close()`` ends it.

    Silent streams are resumed as in :class:`~.sync.Subscription`; ``reconnects`` counts resumptions.
    """

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                call = self._open()
                watchdog = loop.create_task(self._watch(call))
                try:
                    frames = call.__aiter__()
                    while True:
                        self._waiting_since = loop.time()
                        try:
                            frame = await frames.__anext__()
                        except StopAsyncIteration:
                            break
                        finally:
                            self._waiting_since = None
                        for event in self._received(frame):
                            yield event
                            self._handed_out(event)
                    if self._closed:
                        return
                    raise CoordError("the subscription stream ended")
                except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
                    if isinstance(exc, asyncio.CancelledError) and not (self._closed or self._stale):
                        raise  # our own task is being cancelled
                    if not self._resumes(exc):
                        return
                finally:
                    watchdog.cancel()
                await asyncio.sleep(self._reconnect_delay())
        finally:
            if self._call is not None:
                self._call.cancel()

    async def _watch(self, call: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._watch_every)
            if self._silent(call, loop.time()):
                return


class AsyncEventsAPI(EventsAPIBase[AsyncSubscription], AsyncService):
    """Asyncio access to ``coord.events.v1.EventsService``; reached as ``AsyncClient(...).events``.

    The methods of :class:`~coord_client.events.EventsAPI` (same arguments, results and errors), as
    coroutines.
    """

    def __init__(self, transport: AsyncTransport) -> None:
        super().__init__(transport, events_pb2_grpc.EventsServiceStub(transport.channel), _codec.SERVICE)

    publish = awaiting(EventsAPI.publish)
    publish_many = awaiting(EventsAPI.publish_many)
    get_topic = awaiting(EventsAPI.get_topic)

    async def list_topics(self, pattern: str = "", *, timeout: float | None = None) -> list[str]:
        """Every topic name (matching ``pattern`` when given), fetching all pages."""
        pages = _codec.TopicNames(pattern)
        while (page := pages.next_page()) is not None:
            await self._send(page, timeout)
        return pages.names

    async def consume(
        self,
        topic: str,
        group: str,
        handler: Callable[[Event], Awaitable[Any] | Any],
        *,
        prefetch: int = 16,
        group_start: str = "earliest",
        ack_timeout: Seconds | None = None,
        max_deliveries: int = 0,
        dead_letter_topic: str = "",
        on_gap: Callable[[Gap], Any] | None = None,
    ) -> None:
        """Handle the group's events until cancelled: ack when ``handler`` returns, nack when it raises.

        Events are handled one at a time, at most ``prefetch`` in flight; the stream reconnects by
        itself when the server or Redis is briefly unavailable (unacked events are redelivered).
        Events retention removed before the group read them are reported to ``on_gap`` (logged
        without it), before the events that follow them.
        """
        start = _codec.consume_start(
            topic=topic,
            group=group,
            group_start=group_start,
            ack_timeout=ack_timeout,
            max_deliveries=max_deliveries,
            dead_letter_topic=dead_letter_topic,
            prefetch=prefetch,
        )
        backoff = Backoff()
        while True:
            call: Any = self._stub.Consume(None, metadata=self._t.metadata)
            try:
                await call.write(start)
                async for frame in call:
                    backoff.reset()
                    if (gap := _codec.consume_gap(frame)) is not None:
                        report_gap(gap, on_gap)
                    for event in _codec.consumed(frame):
                        await call.write(await _settle(handler, event))
                        await call.write(_codec.credit(1))
                return
            except grpc.aio.AioRpcError as exc:
                error = from_grpc_error(exc)
                if not _codec.consume_resumable(error):
                    raise error from exc
            finally:
                call.cancel()
            await asyncio.sleep(backoff.next())

    def _new_subscription(self, cursors: Cursors, on_gap: Callable[[Gap], Any] | None) -> AsyncSubscription:
        return AsyncSubscription(self._stub, cursors, on_gap, lambda: self._t.metadata)


async def _settle(
    handler: Callable[[Event], Awaitable[Any] | Any], event: Event
) -> events_pb2.ConsumeRequest:
    try:
        result = handler(event)
        if inspect.isawaitable(result):
            await result
    except Exception as failure:
        return settled(event, failure)
    return settled(event, None)


__all__ = ["AsyncEventsAPI", "AsyncSubscription"]
