"""The sync Events API: :class:`EventsAPI`, reached as ``Client(...).events``, and :class:`Subscription`.

    with Client() as client:
        client.events.publish("orders.created", b'{"id": 1}', content_type="application/json")
        with client.events.subscribe("orders.*", after=saved_cursors) as subscription:
            for event in subscription:
                handle(event)
                saved_cursors = subscription.cursors      # {topic: id}: where to resume next time

Only the waiting is written here: requests and parsing are in :mod:`._codec`, cursors, resumption
and settling in :mod:`._stream`, ``subscribe`` in :mod:`._api`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc

from .._base import Transport
from .._call import SyncService
from .._convert import Seconds
from ..errors import CoordError, from_grpc_error
from . import _codec
from ._api import EventsAPIBase
from ._stream import Backoff, Cursors, SubscriptionBase, report_gap, settled
from .models import Data, Event, Gap, PublishItem, PublishResult, TopicInfo


class Subscription(SubscriptionBase):
    """A sync subscription: iterate it for events; ``cursors`` says where it stands; ``close()`` ends it.

    A stream that stays silent (no event, no Progress heartbeat) for three heartbeat intervals while
    the subscription waits on it is treated as dead and resumed; ``reconnects`` counts resumptions.
    """

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        while not self._closed:
            call = self._open()
            stop = threading.Event()
            threading.Thread(target=self._watch, args=(call, stop), daemon=True).start()
            try:
                frames = iter(call)
                while True:
                    self._waiting_since = time.monotonic()
                    try:
                        frame = next(frames)
                    except StopIteration:
                        break
                    finally:
                        self._waiting_since = None
                    for event in self._received(frame):
                        yield event
                        self._handed_out(event)
                raise CoordError("the subscription stream ended")
            except grpc.RpcError as exc:
                if not self._resumes(exc):
                    return
            finally:
                stop.set()
            time.sleep(self._reconnect_delay())

    def _watch(self, call: Any, stop: threading.Event) -> None:
        while not stop.wait(self._watch_every):
            if self._silent(call, time.monotonic()):
                return


class EventsAPI(EventsAPIBase[Subscription], SyncService):
    """Sync access to ``coord.events.v1.EventsService``; reached as ``Client(...).events``."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport, events_pb2_grpc.EventsServiceStub(transport.channel), _codec.SERVICE)

    def publish(
        self,
        topic: str,
        data: Data,
        *,
        content_type: str = "",
        headers: Mapping[str, str] | None = None,
        dedup_id: str | None = None,
        volatile: bool = False,
        timeout: float | None = None,
    ) -> PublishResult:
        """Append one event; with ``dedup_id`` a retried publish returns the first event's id."""
        item = PublishItem(topic, data, content_type, headers, dedup_id, volatile)
        return self._send(_codec.publish(item), timeout)

    def publish_many(
        self, items: Iterable[PublishItem], *, timeout: float | None = None
    ) -> list[PublishResult]:
        """Append many events in one round trip (each atomic on its own, in order per topic)."""
        return self._send(_codec.publish_many(items), timeout)

    def get_topic(self, topic: str, *, timeout: float | None = None) -> TopicInfo:
        """A snapshot of ``topic``: its length, first and last ids, retention and consumer groups."""
        return self._send(_codec.get_topic(topic), timeout)

    def list_topics(self, pattern: str = "", *, timeout: float | None = None) -> list[str]:
        """Every topic name (matching ``pattern`` when given), fetching all pages."""
        pages = _codec.TopicNames(pattern)
        while (page := pages.next_page()) is not None:
            self._send(page, timeout)
        return pages.names

    def consume(
        self,
        topic: str,
        group: str,
        handler: Callable[[Event], Any],
        *,
        prefetch: int = 16,
        group_start: str = "earliest",
        ack_timeout: Seconds | None = None,
        max_deliveries: int = 0,
        dead_letter_topic: str = "",
        stop: threading.Event | None = None,
        on_gap: Callable[[Gap], Any] | None = None,
    ) -> None:
        """Handle the group's events one by one until ``stop`` is set: ack when ``handler`` returns,
        nack (redeliver at once) when it raises. At most ``prefetch`` events are in flight. Events
        retention removed before the group read them are reported to ``on_gap`` (logged without
        it), before the events that follow them."""
        start = _codec.consume_start(
            topic=topic,
            group=group,
            group_start=group_start,
            ack_timeout=ack_timeout,
            max_deliveries=max_deliveries,
            dead_letter_topic=dead_letter_topic,
            prefetch=prefetch,
        )
        stop = stop or threading.Event()
        backoff = Backoff()
        while not stop.is_set():
            requests: queue.Queue[events_pb2.ConsumeRequest | None] = queue.Queue()
            requests.put(start)
            call: Any = self._stub.Consume(iter(requests.get, None), metadata=self._t.metadata)
            threading.Thread(target=_close_when, args=(stop, call, requests), daemon=True).start()
            try:
                for frame in call:
                    backoff.reset()
                    if (gap := _codec.consume_gap(frame)) is not None:
                        report_gap(gap, on_gap)
                    for event in _codec.consumed(frame):
                        if stop.is_set():
                            break  # not handled: the server hands it to the group again
                        requests.put(_settle(handler, event))
                        requests.put(_codec.credit(1))
                return
            except grpc.RpcError as exc:
                if stop.is_set() or exc.code() == grpc.StatusCode.CANCELLED:
                    return
                error = from_grpc_error(exc)
                if not _codec.consume_resumable(error):
                    raise error from exc
            finally:
                requests.put(None)
            time.sleep(backoff.next())

    def _new_subscription(self, cursors: Cursors, on_gap: Callable[[Gap], Any] | None) -> Subscription:
        return Subscription(self._stub, cursors, on_gap, lambda: self._t.metadata)


def _settle(handler: Callable[[Event], Any], event: Event) -> events_pb2.ConsumeRequest:
    try:
        handler(event)
    except Exception as failure:
        return settled(event, failure)
    return settled(event, None)


def _close_when(stop: threading.Event, call: Any, requests: queue.Queue[Any]) -> None:
    # Half-close after the acks already queued: the server applies them, then ends the stream.
    while not stop.wait(0.2):
        if call.done():
            return
    requests.put(None)


__all__ = ["EventsAPI", "Subscription"]
