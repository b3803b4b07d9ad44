# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The Events service: :class:`EventsAPI` (sync) and :class:`AsyncEventsAPI` (asyncio).

    async with AsyncClient() as client:
        await client.events.publish("orders.created", b'{"id": 1}', content_type="application/json")
        subscription = client.events.subscribe("orders.*", after=saved_cursors)
        async for event in subscription:
            handle(event)
            saved_cursors = subscription.cursors      # {topic: id}: where to resume next time

        async def work(event: Event) -> None: ...   # acked when it returns, nacked when it raises
        await client.events.consume("jobs", "workers", work, prefetch=16)

A subscription reconnects by itself when the stream breaks (the server restarts, Redis is briefly
unreachable, or the server ended it because this reader fell behind) and resumes right after the last
event it handed out for each topic: no gap, no duplicate. History that retention removed before it
could be read is reported to ``on_gap``, never skipped silently. Both APIs share the request builders
and parsers below; only the sending differs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from coord.events.v1 import events_pb2, events_pb2_grpc

from ._base import AsyncTransport, Transport, utc
from .errors import CoordError, from_grpc_error

log = logging.getLogger(__name__)

SERVICE = "coord.events.v1.EventsService"
_M = f"/{SERVICE}/"

# Errors after which a subscription reconnects and resumes from its cursors.
_RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
_TOO_SLOW = "EVENTS_SUBSCRIBER_TOO_SLOW"

Start = str | datetime  # "latest", "earliest", or a moment
Data = bytes | str


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Event:
    """One event. ``id`` is its resume cursor within ``topic``; ``delivery_count`` is set by consume."""

    topic: str
    id: str
    data: bytes
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    publish_time: datetime | None = None
    delivery_count: int = 0
    sequence: int = 0  # volatile events: the topic's sequence number (their ``id`` is empty)


@dataclass(frozen=True)
class PublishResult:
    """``id`` of the stored event; ``duplicate`` when a dedup id matched an earlier publish."""

    topic: str
    id: str
    duplicate: bool
    publish_time: datetime | None
    sequence: int = 0  # volatile events only


@dataclass(frozen=True)
class PublishItem:
    """One event for :meth:`EventsAPI.publish_many`."""

    topic: str
    data: Data
    content_type: str = ""
    headers: Mapping[str, str] | None = None
    dedup_id: str | None = None
    volatile: bool = False


@dataclass(frozen=True)
class Gap:
    """History of ``topic`` after ``after_id`` was removed by retention before it could be read."""

    topic: str
    after_id: str
    first_available_id: str
    after_sequence: int = 0  # volatile subscriptions: events after_sequence+1 .. next_sequence-1 were lost
    next_sequence: int = 0


@dataclass(frozen=True)
class GroupInfo:
    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    lag: int | None


@dataclass(frozen=True)
class TopicInfo:
    name: str
    exists: bool
    length: int
    first_id: str
    last_id: str
    max_length: int
    max_age: timedelta
    groups: list[GroupInfo]
    local_subscribers: int


# ---------------------------------------------------------------- shared builders and parsers


def _bytes(data: Data) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _time(stamp: timestamp_pb2.Timestamp) -> datetime | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return utc(stamp)


def _duration(seconds: float | timedelta | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    value = duration_pb2.Duration()
    value.FromNanoseconds(
        round((seconds.total_seconds() if isinstance(seconds, timedelta) else seconds) * 1e9)
    )
    return value


def _publish_request(item: PublishItem) -> events_pb2.PublishRequest:
    return events_pb2.PublishRequest(
        topic=item.topic,
        data=_bytes(item.data),
        content_type=item.content_type,
        headers=dict(item.headers or {}),
        dedup_id=item.dedup_id or "",
        volatile=item.volatile,
    )


def _publish_result(topic: str, response: events_pb2.PublishResponse) -> PublishResult:
    return PublishResult(
        topic, response.id, response.duplicate, _time(response.publish_time), response.sequence
    )


def _event(message: events_pb2.Event) -> Event:
    return Event(
        message.topic,
        message.id,
        message.data,
        message.content_type,
        dict(message.headers),
        _time(message.publish_time),
        message.delivery_count,
        message.sequence,
    )


def _topic_info(info: events_pb2.TopicInfo) -> TopicInfo:
    return TopicInfo(
        name=info.name,
        exists=info.exists,
        length=info.length,
        first_id=info.first_id,
        last_id=info.last_id,
        max_length=info.retention.max_length,
        max_age=timedelta(seconds=info.retention.max_age.ToNanoseconds() / 1e9),
        groups=[
            GroupInfo(g.name, g.consumers, g.pending, g.last_delivered_id, g.lag if g.lag_known else None)
            for g in info.groups
        ],
        local_subscribers=info.local_subscribers,
    )


def _id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


_STARTS = {"latest": events_pb2.START_POSITION_LATEST, "earliest": events_pb2.START_POSITION_EARLIEST}


class _Cursors:
    """Where a subscription stands, per topic, and the request that resumes it."""

    def __init__(
        self,
        topics: tuple[str, ...],
        start: Start,
        after: Mapping[str, str] | str | None,
        heartbeat: float | timedelta | None,
        volatile: bool = False,
    ) -> None:
        if not topics:
            raise ValueError("subscribe needs at least one topic or pattern")
        if isinstance(after, str):
            if len(topics) != 1:
                raise ValueError("after=<id> needs exactly one topic; pass a {topic: id} mapping instead")
            after = {topics[0]: after}
        if not isinstance(start, datetime) and start not in _STARTS:
            raise ValueError("start must be 'latest', 'earliest' or a datetime")
        self.topics = topics
        self.start = start
        self.positions: dict[str, str] = dict(after or {})
        self.heartbeat = heartbeat
        self.volatile = volatile
        self.open_time: timestamp_pb2.Timestamp | None = None

    def request(self) -> events_pb2.SubscribeRequest:
        if self.volatile:  # no history: every (re)connection starts live
            return events_pb2.SubscribeRequest(
                topics=list(self.topics),
                start=events_pb2.START_POSITION_LATEST,
                heartbeat_interval=_duration(self.heartbeat),
                volatile=True,
            )
        request = events_pb2.SubscribeRequest(
            topics=list(self.topics),
            cursors=[events_pb2.TopicCursor(topic=t, after_id=i) for t, i in sorted(self.positions.items())],
            heartbeat_interval=_duration(self.heartbeat),
        )
        if isinstance(self.start, datetime):
            request.start = events_pb2.START_POSITION_AT_TIME
            request.start_time.FromDatetime(self.start)
        elif self.start == "latest" and self.open_time is not None:
            # Resuming: topics first seen while disconnected are read from when the first stream opened.
            request.start = events_pb2.START_POSITION_AT_TIME
            request.start_time.CopyFrom(self.open_time)
        else:
            request.start = _STARTS[str(self.start)]
        return request

    def advance(self, topic: str, event_id: str) -> None:
        if not event_id:
            return  # a volatile event has no position
        current = self.positions.get(topic)
        if current is None or _id_key(event_id) > _id_key(current):
            self.positions[topic] = event_id

    def frame(self, frame: events_pb2.SubscribeResponse, on_gap: Callable[[Gap], Any] | None) -> list[Event]:
        """Apply a frame; returns its events (cursors advance only as events are handed out)."""
        kind = frame.WhichOneof("frame")
        if kind == "events":
            return [_event(e) for e in frame.events.events]
        if kind == "subscribed":
            if self.open_time is None:
                self.open_time = frame.subscribed.open_time
            for start in frame.subscribed.starts:
                self.positions.setdefault(start.topic, start.after_id)
        elif kind == "progress":
            for cursor in frame.progress.cursors:
                self.advance(cursor.topic, cursor.after_id)
        elif kind == "gap":
            gap = frame.gap
            if on_gap is not None:
                on_gap(
                    Gap(
                        gap.topic, gap.after_id, gap.first_available_id, gap.after_sequence, gap.next_sequence
                    )
                )
            else:
                log.warning(
                    "events of %r after %s were removed before they could be read", gap.topic, gap.after_id
                )
        return []


def _resumable(error: CoordError) -> bool:
    return error.code in _RESUMABLE or error.reason == _TOO_SLOW


class _Backoff:
    def __init__(self) -> None:
        self.delay = 0.05

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, 2.0)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.delay = 0.05


# ---------------------------------------------------------------- sync


# The server sends a Progress frame after every heartbeat interval of silence (5 s unless configured).
# A stream silent for several intervals while we wait on it is dead even if TCP does not say so (a
# paused or partitioned server): it is abandoned and resumed from the cursors.
_SERVER_DEFAULT_STALE = 30.0


def _stale_after(heartbeat: float | timedelta | None) -> float:
    if heartbeat is None:
        return _SERVER_DEFAULT_STALE
    seconds = heartbeat.total_seconds() if isinstance(heartbeat, timedelta) else float(heartbeat)
    return max(1.0, 3 * seconds)


class Subscription:
    """A sync subscription: iterate it for events; ``cursors`` says where it stands; ``close()`` ends it.

    A stream that stays silent (no event, no Progress heartbeat) for three heartbeat intervals while
    the subscription waits on it is treated as dead and resumed; ``reconnects`` counts resumptions.
    """

    def __init__(
        self, stub: events_pb2_grpc.EventsServiceStub, cursors: _Cursors, on_gap: Any, metadata: Any
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._state = cursors
        self._on_gap = on_gap
        self._call: Any = None
        self._closed = False
        self._stale = False
        self._waiting_since: float | None = None
        self.reconnects = 0

    @property
    def cursors(self) -> dict[str, str]:
        """Topic -> id of the last event handed out (or a safe checkpoint): pass back as ``after``."""
        return dict(self._state.positions)

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        backoff = _Backoff()
        stale_after = _stale_after(self._state.heartbeat)
        while not self._closed:
            call = self._call = self._stub.Subscribe(self._state.request(), metadata=self._metadata)
            self._stale = False
            stop = threading.Event()
            threading.Thread(target=self._watch, args=(call, stop, stale_after), daemon=True).start()
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
                    backoff.reset()
                    for event in self._state.frame(frame, self._on_gap):
                        yield event
                        self._state.advance(event.topic, event.id)
                raise CoordError("the subscription stream ended")
            except grpc.RpcError as exc:
                if self._closed:
                    return
                if self._stale:
                    log.warning("subscription silent for %gs; resuming from its cursors", stale_after)
                elif exc.code() == grpc.StatusCode.CANCELLED:
                    return
                else:
                    error = from_grpc_error(exc)
                    if not _resumable(error):
                        raise error from exc
                    log.info("subscription interrupted (%s); resuming", error)
            finally:
                stop.set()
            self.reconnects += 1
            time.sleep(backoff.next())

    def _watch(self, call: Any, stop: threading.Event, stale_after: float) -> None:
        while not stop.wait(min(0.5, stale_after / 4)):
            since = self._waiting_since
            if since is not None and time.monotonic() - since > stale_after:
                self._stale = True
                call.cancel()
                return


class EventsAPI:
    """Sync access to ``coord.events.v1.EventsService``; reached as ``Client(...).events``."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = events_pb2_grpc.EventsServiceStub(transport.channel)

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
        request = _publish_request(PublishItem(topic, data, content_type, headers, dedup_id, volatile))
        return _publish_result(topic, self._t.call(self._stub.Publish, _M + "Publish", request, timeout))

    def publish_many(
        self, items: Iterable[PublishItem], *, timeout: float | None = None
    ) -> list[PublishResult]:
        """Append many events in one round trip (each atomic on its own, in order per topic)."""
        todo = list(items)
        if not todo:
            return []
        request = events_pb2.BatchPublishRequest(requests=[_publish_request(i) for i in todo])
        response = self._t.call(self._stub.BatchPublish, _M + "BatchPublish", request, timeout)
        return [_publish_result(i.topic, r) for i, r in zip(todo, response.responses, strict=True)]

    def subscribe(
        self,
        *topics: str,
        after: Mapping[str, str] | str | None = None,
        start: Start = "latest",
        heartbeat: float | timedelta | None = None,
        on_gap: Callable[[Gap], Any] | None = None,
        volatile: bool = False,
    ) -> Subscription:
        """Events of ``topics`` (names or patterns such as ``orders.*``), reconnecting by itself.

        ``after`` resumes: a ``{topic: id}`` mapping (``Subscription.cursors`` of an earlier run) or,
        for one topic, an id. Topics without a cursor start at ``start``. ``volatile=True`` reads
        the topics' volatile (Pub/Sub) events instead: live only, numbered, losses reported to ``on_gap``.
        """
        return Subscription(
            self._stub, _Cursors(topics, start, after, heartbeat, volatile), on_gap, self._t.metadata
        )

    def get_topic(self, topic: str, *, timeout: float | None = None) -> TopicInfo:
        request = events_pb2.GetTopicRequest(topic=topic)
        return _topic_info(self._t.call(self._stub.GetTopic, _M + "GetTopic", request, timeout).topic)

    def list_topics(self, pattern: str = "", *, timeout: float | None = None) -> list[str]:
        """Every topic name (matching ``pattern`` when given), fetching all pages."""
        names: list[str] = []
        token = ""
        while True:
            request = events_pb2.ListTopicsRequest(page_size=1000, page_token=token, pattern=pattern)
            page = self._t.call(self._stub.ListTopics, _M + "ListTopics", request, timeout)
            names += page.topics
            token = page.next_page_token
            if not token:
                return names

    def consume(
        self,
        topic: str,
        group: str,
        handler: Callable[[Event], Any],
        *,
        prefetch: int = 16,
        group_start: str = "earliest",
        ack_timeout: float | timedelta | None = None,
        max_deliveries: int = 0,
        dead_letter_topic: str = "",
        stop: threading.Event | None = None,
    ) -> None:
        """Handle the group's events one by one until ``stop`` is set: ack when ``handler`` returns,
        nack (redeliver at once) when it raises. At most ``prefetch`` events are in flight."""
        stop = stop or threading.Event()
        backoff = _Backoff()
        while not stop.is_set():
            requests: queue.Queue[events_pb2.ConsumeRequest | None] = queue.Queue()
            requests.put(
                _consume_start(
                    topic=topic,
                    group=group,
                    group_start=group_start,
                    ack_timeout=ack_timeout,
                    max_deliveries=max_deliveries,
                    dead_letter_topic=dead_letter_topic,
                    prefetch=prefetch,
                )
            )

            def feed(
                q: queue.Queue[events_pb2.ConsumeRequest | None] = requests,
            ) -> Iterator[events_pb2.ConsumeRequest]:
                while (item := q.get()) is not None:
                    yield item

            call = self._stub.Consume(feed(), metadata=self._t.metadata)
            watcher = threading.Thread(target=_close_when, args=(stop, call, requests), daemon=True)
            watcher.start()
            try:
                for frame in call:
                    backoff.reset()
                    if frame.WhichOneof("frame") != "events":
                        continue
                    for message in frame.events.events:
                        if stop.is_set():
                            break  # not handled: the server hands it to the group again
                        requests.put(_settle(handler, _event(message)))
                        requests.put(_credit(1))
                return
            except grpc.RpcError as exc:
                if stop.is_set() or exc.code() == grpc.StatusCode.CANCELLED:
                    return
                error = from_grpc_error(exc)
                if error.code not in _RESUMABLE:
                    raise error from exc
            finally:
                requests.put(None)
            time.sleep(backoff.next())


def _close_when(stop: threading.Event, call: Any, requests: queue.Queue[Any]) -> None:
    # Half-close after the acks already queued: the server applies them, then ends the stream.
    while not stop.wait(0.2):
        if call.done():
            return
    requests.put(None)


def _consume_start(
    *,
    topic: str,
    group: str,
    group_start: str,
    ack_timeout: float | timedelta | None,
    max_deliveries: int,
    dead_letter_topic: str,
    prefetch: int,
) -> events_pb2.ConsumeRequest:
    if group_start not in _STARTS:
        raise ValueError("group_start must be 'latest' or 'earliest'")
    return events_pb2.ConsumeRequest(
        start=events_pb2.ConsumeStart(
            topic=topic,
            group=group,
            group_start=_STARTS[group_start],
            ack_timeout=_duration(ack_timeout),
            max_deliveries=max_deliveries,
            dead_letter_topic=dead_letter_topic,
            initial_credits=prefetch,
        )
    )


def _credit(count: int) -> events_pb2.ConsumeRequest:
    return events_pb2.ConsumeRequest(credit=events_pb2.ConsumeCredit(count=count))


def _settle(handler: Callable[[Event], Any], event: Event) -> events_pb2.ConsumeRequest:
    try:
        handler(event)
    except Exception:
        log.exception("handler failed on %s %s; nacked for redelivery", event.topic, event.id)
        return events_pb2.ConsumeRequest(nack=events_pb2.ConsumeNack(ids=[event.id]))
    return events_pb2.ConsumeRequest(ack=events_pb2.ConsumeAck(ids=[event.id]))


# ---------------------------------------------------------------- asyncio


class AsyncSubscription:
    """An asyncio subscription: ``async for`` it; ``cursors`` says where it stands; ``close()`` ends it.

    Silent streams are resumed as in :class:`Subscription`; ``reconnects`` counts resumptions.
    """

    def __init__(
        self, stub: events_pb2_grpc.EventsServiceStub, cursors: _Cursors, on_gap: Any, metadata: Any
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._state = cursors
        self._on_gap = on_gap
        self._call: Any = None
        self._closed = False
        self._stale = False
        self._waiting_since: float | None = None
        self.reconnects = 0

    @property
    def cursors(self) -> dict[str, str]:
        return dict(self._state.positions)

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        backoff = _Backoff()
        stale_after = _stale_after(self._state.heartbeat)
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                call: Any = self._stub.Subscribe(self._state.request(), metadata=self._metadata)
                self._call = call
                self._stale = False
                watchdog = loop.create_task(self._watch(call, stale_after))
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
                        backoff.reset()
                        for event in self._state.frame(frame, self._on_gap):
                            yield event
                            self._state.advance(event.topic, event.id)
                    if self._closed:
                        return
                    raise CoordError("the subscription stream ended")
                except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
                    if self._closed:
                        return
                    if self._stale:
                        log.warning("subscription silent for %gs; resuming from its cursors", stale_after)
                    elif isinstance(exc, asyncio.CancelledError):
                        raise  # our own task is being cancelled
                    elif exc.code() == grpc.StatusCode.CANCELLED:
                        return
                    else:
                        error = from_grpc_error(exc)
                        if not _resumable(error):
                            raise error from exc
                        log.info("subscription interrupted (%s); resuming", error)
                finally:
                    watchdog.cancel()
                self.reconnects += 1
                await asyncio.sleep(backoff.next())
        finally:
            if self._call is not None:
                self._call.cancel()

    async def _watch(self, call: Any, stale_after: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(0.5, stale_after / 4))
            since = self._waiting_since
            if since is not None and loop.time() - since > stale_after:
                self._stale = True
                call.cancel()
                return


class AsyncEventsAPI:
    """Asyncio access to ``coord.events.v1.EventsService``; reached as ``AsyncClient(...).events``."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub = events_pb2_grpc.EventsServiceStub(transport.channel)

    async def publish(
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
        request = _publish_request(PublishItem(topic, data, content_type, headers, dedup_id, volatile))
        return _publish_result(
            topic, await self._t.call(self._stub.Publish, _M + "Publish", request, timeout)
        )

    async def publish_many(
        self, items: Iterable[PublishItem], *, timeout: float | None = None
    ) -> list[PublishResult]:
        todo = list(items)
        if not todo:
            return []
        request = events_pb2.BatchPublishRequest(requests=[_publish_request(i) for i in todo])
        response = await self._t.call(self._stub.BatchPublish, _M + "BatchPublish", request, timeout)
        return [_publish_result(i.topic, r) for i, r in zip(todo, response.responses, strict=True)]

    def subscribe(
        self,
        *topics: str,
        after: Mapping[str, str] | str | None = None,
        start: Start = "latest",
        heartbeat: float | timedelta | None = None,
        on_gap: Callable[[Gap], Any] | None = None,
        volatile: bool = False,
    ) -> AsyncSubscription:
        """As :meth:`EventsAPI.subscribe`, for ``async for``."""
        return AsyncSubscription(
            self._stub, _Cursors(topics, start, after, heartbeat, volatile), on_gap, self._t.metadata
        )

    async def get_topic(self, topic: str, *, timeout: float | None = None) -> TopicInfo:
        request = events_pb2.GetTopicRequest(topic=topic)
        return _topic_info((await self._t.call(self._stub.GetTopic, _M + "GetTopic", request, timeout)).topic)

    async def list_topics(self, pattern: str = "", *, timeout: float | None = None) -> list[str]:
        names: list[str] = []
        token = ""
        while True:
            request = events_pb2.ListTopicsRequest(page_size=1000, page_token=token, pattern=pattern)
            page = await self._t.call(self._stub.ListTopics, _M + "ListTopics", request, timeout)
            names += page.topics
            token = page.next_page_token
            if not token:
                return names

    async def consume(
        self,
        topic: str,
        group: str,
        handler: Callable[[Event], Awaitable[Any] | Any],
        *,
        prefetch: int = 16,
        group_start: str = "earliest",
        ack_timeout: float | timedelta | None = None,
        max_deliveries: int = 0,
        dead_letter_topic: str = "",
    ) -> None:
        """Handle the group's events until cancelled: ack when ``handler`` returns, nack when it raises.

        Events are handled one at a time, at most ``prefetch`` in flight; the stream reconnects by
        itself when the server or Redis is briefly unavailable (unacked events are redelivered).
        """
        start = _consume_start(
            topic=topic,
            group=group,
            group_start=group_start,
            ack_timeout=ack_timeout,
            max_deliveries=max_deliveries,
            dead_letter_topic=dead_letter_topic,
            prefetch=prefetch,
        )
        backoff = _Backoff()
        while True:
            call = self._stub.Consume(None, metadata=self._t.metadata)
            try:
                await call.write(start)
                async for frame in call:
                    backoff.reset()
                    if frame.WhichOneof("frame") != "events":
                        continue
                    for message in frame.events.events:
                        event = _event(message)
                        try:
                            result = handler(event)
                            if inspect.isawaitable(result):
                                await result
                        except Exception:
                            log.exception("handler failed on %s %s; nacked for redelivery", topic, event.id)
                            await call.write(
                                events_pb2.ConsumeRequest(nack=events_pb2.ConsumeNack(ids=[event.id]))
                            )
                        else:
                            await call.write(
                                events_pb2.ConsumeRequest(ack=events_pb2.ConsumeAck(ids=[event.id]))
                            )
                        await call.write(_credit(1))
                return
            except grpc.aio.AioRpcError as exc:
                error = from_grpc_error(exc)
                if error.code not in _RESUMABLE:
                    raise error from exc
            finally:
                call.cancel()
            await asyncio.sleep(backoff.next())


__all__ = [
    "AsyncEventsAPI",
    "AsyncSubscription",
    "Event",
    "EventsAPI",
    "Gap",
    "GroupInfo",
    "PublishItem",
    "PublishResult",
    "Subscription",
    "TopicInfo",
]
