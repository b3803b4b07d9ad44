"""EventsService transport: proto -> validated dataclasses -> store / hub -> proto. No Redis calls here."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc

from .. import tenancy
from .._grpc import rpc, stream_rpc
from .._proto import duration_of_ms, timestamp_ms
from ..errors import CoordError, FailedPrecondition, invalid
from ..metrics.event_groups import GroupSampler
from ..metrics.services import EventsCounts
from ..tenancy import PerTenant
from ..validation import Limits, duration_within
from .consumer import ConsumerSession, ConsumeSpec, DeadLetteredFrame
from .frames import EventsFrame, Frame, GapFrame, ProgressFrame, SubscribedFrame
from .store import PublishItem, PublishResult, StoredEvent
from .subscription import StartKind, SubscribeSpec, Subscription
from .tenant import TenantEvents
from .topics import (
    MAX_NAME_BYTES,
    Pattern,
    StreamId,
    format_id,
    is_pattern,
    name_problem,
    parse_id,
    pattern_problem,
)
from .volatile import VolatileGapFrame, VolatileSubscription

Ctx = grpc.aio.ServicerContext[Any, Any]

MAX_SUBSCRIBE_TOPICS = 100
MAX_TOPICS_PER_SUBSCRIPTION = 1000
MAX_HEADERS = 64
MAX_HEADER_BYTES = 64 * 1024
MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS = 100, 600_000
MIN_ACK_TIMEOUT_MS, MAX_ACK_TIMEOUT_MS = 100, 3_600_000
MAX_DELIVERIES = 1000
MAX_IDS = 1000
MAX_CREDIT = 10_000
DEFAULT_PAGE, MAX_PAGE = 100, 1000


class EventsServicer(events_pb2_grpc.EventsServiceServicer):
    # Every call reaches the state of the caller's tenant (tenancy.py): one lookup, no await. A
    # stream keeps the state it started with to its end (its cleanup included).
    def __init__(
        self,
        tenants: PerTenant[TenantEvents],
        limits: Limits,
        *,
        heartbeat_ms: int,
        ack_timeout_ms: int,
        max_deliveries: int,
    ) -> None:
        self._tenants = tenants
        self._limits = limits
        self._heartbeat_ms = heartbeat_ms
        self._ack_timeout_ms = ack_timeout_ms
        self._max_deliveries = max_deliveries
        self._server_id = uuid.uuid4().hex[:8]
        # Shared by every tenant: it only re-sends an encoding of the very list of events it was made
        # from, and a list comes from one tenant's feed.
        self._encoded = _EncodedBatches()
        # When metrics are on: subscribers and events sent, and the consumed groups' backlog.
        self.counts: EventsCounts | None = None
        self.groups: GroupSampler | None = None

    # -- publishing --------------------------------------------------------------------------------

    @rpc
    async def Publish(self, request: events_pb2.PublishRequest, context: Ctx) -> events_pb2.PublishResponse:
        return (await self._publish([self._publish_item("", request)]))[0]

    @rpc
    async def BatchPublish(
        self, request: events_pb2.BatchPublishRequest, context: Ctx
    ) -> events_pb2.BatchPublishResponse:
        self._limits.batch("requests", len(request.requests))
        items = [self._publish_item(f"requests[{i}].", r) for i, r in enumerate(request.requests)]
        return events_pb2.BatchPublishResponse(responses=await self._publish(items))

    async def _publish(self, items: Sequence[tuple[PublishItem, bool]]) -> list[events_pb2.PublishResponse]:
        tenant = self._tenants.get()
        durable = [item for item, volatile in items if not volatile]
        volatile = [item for item, is_volatile in items if is_volatile]
        stored = iter(await tenant.store.publish(durable)) if durable else iter(())
        sent = iter(await tenant.store.publish_volatile(volatile)) if volatile else iter(())
        if durable:
            tenant.hub.topics_seen(dict.fromkeys(i.topic for i in durable))
        responses = []
        for _, is_volatile in items:
            if is_volatile:
                sequence, receivers = next(sent)
                responses.append(events_pb2.PublishResponse(sequence=sequence, receivers=receivers))
            else:
                responses.append(_published_pb(next(stored)))
        return responses

    def _publish_item(self, prefix: str, request: events_pb2.PublishRequest) -> tuple[PublishItem, bool]:
        topic = _topic(prefix + "topic", request.topic)
        data = self._limits.value(prefix + "data", request.data)
        if len(request.content_type.encode()) > MAX_NAME_BYTES:
            raise invalid(prefix + "content_type", f"must be at most {MAX_NAME_BYTES} bytes")
        if len(request.headers) > MAX_HEADERS:
            raise invalid(
                prefix + "headers", f"holds {len(request.headers)} pairs; the limit is {MAX_HEADERS}"
            )
        size = 0
        for name, value in request.headers.items():
            if not name or len(name.encode()) > MAX_NAME_BYTES:
                raise invalid(prefix + "headers", f"names must be 1 to {MAX_NAME_BYTES} bytes")
            size += len(name.encode()) + len(value.encode())
        if size > MAX_HEADER_BYTES:
            raise invalid(prefix + "headers", f"are {size} bytes; the limit is {MAX_HEADER_BYTES} bytes")
        dedup = request.dedup_id
        if len(dedup.encode()) > MAX_NAME_BYTES or any(c in dedup for c in "\x00\r\n"):
            raise invalid(
                prefix + "dedup_id", f"must be at most {MAX_NAME_BYTES} bytes, without NUL, CR or LF"
            )
        if request.volatile and dedup:
            raise invalid(prefix + "dedup_id", "must be empty for a volatile event")
        return PublishItem(topic, data, request.content_type, dict(request.headers), dedup), request.volatile

    # -- Subscribe ---------------------------------------------------------------------------------

    @stream_rpc
    async def Subscribe(
        self, request: events_pb2.SubscribeRequest, context: Ctx
    ) -> AsyncIterator[events_pb2.SubscribeResponse | bytes]:
        tenant = self._tenants.get()
        counts = self.counts
        if counts is not None:
            counts.subscribers.value += 1
        try:
            if request.volatile:
                async for response in self._subscribe_volatile(tenant, request):
                    yield response
                return
            subscription = Subscription(tenant.hub, self._subscribe_spec(request))
            try:
                await subscription.open()
                async for frame in subscription.frames():
                    if counts is not None and isinstance(frame, EventsFrame):
                        counts.subscribed.value += len(frame.events)
                    yield self._encoded.frame(frame)
            finally:
                subscription.close()
                await tenant.hub.settle(subscription.stopping)
        finally:
            if counts is not None:
                counts.subscribers.value -= 1

    async def _subscribe_volatile(
        self, tenant: TenantEvents, request: events_pb2.SubscribeRequest
    ) -> AsyncIterator[events_pb2.SubscribeResponse | bytes]:
        spec = self._subscribe_spec(request)
        if spec.patterns:
            raise invalid("topics", "a volatile subscription takes exact topic names, not patterns")
        if spec.cursors:
            raise invalid("cursors", "a volatile subscription has no history to resume")
        if spec.start != StartKind.LATEST:
            raise invalid("start", "a volatile subscription starts at START_POSITION_LATEST")
        subscription = VolatileSubscription(tenant.volatile, spec.topics, spec.heartbeat)
        try:
            await subscription.open()
            counts = self.counts
            async for frame in subscription.frames():
                if counts is not None and isinstance(frame, EventsFrame):
                    counts.subscribed.value += len(frame.events)
                yield self._encoded.frame(frame)
        finally:
            await subscription.close()
            await tenant.hub.settle()

    def _subscribe_spec(self, request: events_pb2.SubscribeRequest) -> SubscribeSpec:
        if not request.topics:
            raise invalid("topics", "must hold at least one topic or pattern")
        if len(request.topics) > MAX_SUBSCRIBE_TOPICS:
            raise invalid(
                "topics", f"holds {len(request.topics)} entries; the limit is {MAX_SUBSCRIBE_TOPICS}"
            )
        names: list[str] = []
        patterns: list[Pattern] = []
        for i, text in enumerate(request.topics):
            problem = pattern_problem(text)
            if problem:
                raise invalid(f"topics[{i}]", problem)
            if is_pattern(text):
                patterns.append(Pattern(text))
            else:
                names.append(text)
        start = _start_kind("start", request.start)
        start_ms = 0
        if start == StartKind.AT_TIME:
            if not request.HasField("start_time"):
                raise invalid("start_time", "is required with START_POSITION_AT_TIME")
            start_ms = request.start_time.ToMilliseconds()
            if start_ms < 0:
                raise invalid("start_time", "must not be before 1970")
        elif request.HasField("start_time"):
            raise invalid("start_time", "is only allowed with START_POSITION_AT_TIME")
        cursors: dict[str, StreamId] = {}
        for i, cursor in enumerate(request.cursors):
            topic = _topic(f"cursors[{i}].topic", cursor.topic)
            if topic in cursors:
                raise invalid(f"cursors[{i}].topic", "appears in more than one cursor")
            if topic not in names and not any(p.matches(topic) for p in patterns):
                raise invalid(f"cursors[{i}].topic", "is neither in topics nor matched by a pattern there")
            cursors[topic] = _event_id(f"cursors[{i}].after_id", cursor.after_id)
        heartbeat = duration_within(
            "heartbeat_interval",
            request.heartbeat_interval,
            MIN_HEARTBEAT_MS,
            MAX_HEARTBEAT_MS,
            unset_ms=self._heartbeat_ms,
        )
        return SubscribeSpec(
            list(dict.fromkeys(names)),
            patterns,
            start,
            start_ms,
            cursors,
            heartbeat / 1000,
            MAX_TOPICS_PER_SUBSCRIPTION,
        )

    # -- Consume -----------------------------------------------------------------------------------

    @stream_rpc
    async def Consume(
        self, request_iterator: AsyncIterator[events_pb2.ConsumeRequest], context: Ctx
    ) -> AsyncIterator[events_pb2.ConsumeResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        if first.WhichOneof("action") != "start":
            raise _not_started("the first message must be a ConsumeStart")
        spec = self._consume_spec(first.start)
        tenant = self._tenants.get()
        session = ConsumerSession(tenant.store, tenant.hub, spec)
        reader: asyncio.Task[None] | None = None
        counts, groups = self.counts, self.groups
        tenant_name = ""  # set once the group is sampled for the metrics
        try:
            created = await session.open()
            if groups is not None:
                tenant_name = tenancy.bound() or self._tenants.default
                groups.joined(tenant_name, spec.topic, spec.group, tenant.store)
            yield events_pb2.ConsumeResponse(
                started=events_pb2.ConsumeStarted(
                    consumer=spec.consumer,
                    group_created=created,
                    ack_timeout=duration_of_ms(spec.ack_timeout_ms),
                    max_deliveries=spec.max_deliveries,
                    dead_letter_topic=spec.dead_letter_topic,
                )
            )
            reader = asyncio.create_task(self._read_actions(request_iterator, session))
            async for frame in session.deliveries():
                if isinstance(frame, DeadLetteredFrame):
                    yield events_pb2.ConsumeResponse(
                        dead_lettered=events_pb2.DeadLettered(
                            ids=[format_id(i) for i in frame.ids],
                            dead_letter_ids=[format_id(i) for i in frame.dead_letter_ids],
                        )
                    )
                elif isinstance(frame, GapFrame):
                    yield events_pb2.ConsumeResponse(gap=_gap_pb(frame))
                else:
                    if counts is not None:
                        counts.consumed.value += len(frame.events)
                    yield events_pb2.ConsumeResponse(events=_events_pb(frame.events))
        finally:
            if groups is not None and tenant_name:
                groups.left(tenant_name, spec.topic, spec.group)
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
            await tenant.hub.settle(await session.close())

    async def _read_actions(
        self, requests: AsyncIterator[events_pb2.ConsumeRequest], session: ConsumerSession
    ) -> None:
        try:
            async for request in requests:
                action = request.WhichOneof("action")
                if action == "credit":
                    if request.credit.count == 0:
                        raise invalid("credit.count", "must be positive")
                    session.grant(request.credit.count)
                elif action == "ack":
                    await session.ack(_ids("ack.ids", request.ack.ids))
                elif action == "nack":
                    ids = _ids("nack.ids", request.nack.ids)
                    delay = duration_within("nack.delay", request.nack.delay, 0, session.spec.ack_timeout_ms)
                    await session.nack(ids, delay)
                elif action == "extend":
                    await session.extend(_ids("extend.ids", request.extend.ids))
                elif action == "start":
                    raise _not_started("ConsumeStart may only be the first message", field="start")
                else:
                    raise invalid("action", "must be one of start, credit, ack, nack, extend")
        except CoordError as error:
            session.fail(error)
            return
        session.finish()

    def _consume_spec(self, start: events_pb2.ConsumeStart) -> ConsumeSpec:
        topic = _topic("start.topic", start.topic)
        problem = name_problem(start.group)
        if problem or "." in start.group:
            raise invalid("start.group", problem or "must be a single token (no '.')")
        kind = _start_kind("start.group_start", start.group_start)
        if kind == StartKind.AT_TIME:
            raise invalid("start.group_start", "must be START_POSITION_LATEST or START_POSITION_EARLIEST")
        # Not a TTL of anything stored: the service's own bounds, and reason INVALID_FIELD.
        ack_timeout = duration_within(
            "start.ack_timeout",
            start.ack_timeout,
            MIN_ACK_TIMEOUT_MS,
            MAX_ACK_TIMEOUT_MS,
            unset_ms=self._ack_timeout_ms,
        )
        max_deliveries = start.max_deliveries or self._max_deliveries
        if max_deliveries > MAX_DELIVERIES:
            raise invalid("start.max_deliveries", f"must be at most {MAX_DELIVERIES}")
        dead_letter = start.dead_letter_topic or topic + ".dlq"
        dead_letter = _topic("start.dead_letter_topic", dead_letter)
        if dead_letter == topic:
            raise invalid("start.dead_letter_topic", "must differ from the consumed topic")
        if start.initial_credits > MAX_CREDIT:
            raise invalid("start.initial_credits", f"must be at most {MAX_CREDIT}")
        consumer = f"{self._server_id}-{uuid.uuid4().hex[:12]}"
        return ConsumeSpec(
            topic,
            start.group,
            consumer,
            kind == StartKind.EARLIEST,
            ack_timeout,
            max_deliveries,
            dead_letter,
            start.initial_credits,
        )

    # -- topics ------------------------------------------------------------------------------------

    @rpc
    async def GetTopic(
        self, request: events_pb2.GetTopicRequest, context: Ctx
    ) -> events_pb2.GetTopicResponse:
        topic = _topic("topic", request.topic)
        tenant = self._tenants.get()
        position = await tenant.store.position(topic)
        groups = await tenant.store.groups(topic) if position.exists else []
        retention = tenant.store.retention
        info = events_pb2.TopicInfo(
            name=topic,
            exists=position.exists,
            length=position.length,
            first_id=format_id(position.first_id) if position.first_id else "",
            last_id=format_id(position.last_id) if position.exists else "",
            entries_added=position.entries_added or 0,
            last_removed_id=format_id(position.last_removed_id) if position.last_removed_id else "",
            retention=events_pb2.Retention(
                max_length=retention.max_length, max_age=duration_of_ms(retention.max_age_ms)
            ),
            groups=[
                events_pb2.GroupInfo(
                    name=g.name,
                    consumers=g.consumers,
                    pending=g.pending,
                    last_delivered_id=format_id(g.last_delivered_id),
                    lag=g.lag or 0,
                    lag_known=g.lag is not None,
                )
                for g in groups
            ],
            local_subscribers=tenant.hub.subscriber_count(topic),
            local_reader=topic in tenant.hub.feeds,
        )
        return events_pb2.GetTopicResponse(topic=info)

    @rpc
    async def ListTopics(
        self, request: events_pb2.ListTopicsRequest, context: Ctx
    ) -> events_pb2.ListTopicsResponse:
        size = request.page_size or DEFAULT_PAGE
        if size > MAX_PAGE:
            raise invalid("page_size", f"must be at most {MAX_PAGE}")
        after = ""
        if request.page_token:
            if name_problem(request.page_token):
                raise invalid("page_token", "is not a token this server issued")
            after = request.page_token
        pattern: Pattern | None = None
        if request.pattern:
            problem = pattern_problem(request.pattern)
            if problem:
                raise invalid("pattern", problem)
            pattern = Pattern(request.pattern)
        prefix = pattern.literal_prefix if pattern else ""
        names = await self._tenants.get().store.list_topics(after, size + 1, prefix)
        more = len(names) > size
        names = names[:size]
        shown = [n for n in names if pattern is None or pattern.matches(n)]
        return events_pb2.ListTopicsResponse(topics=shown, next_page_token=names[-1] if more else "")


# -- helpers -----------------------------------------------------------------------------------------


def _topic(field: str, name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise invalid(field, problem)
    return name


def _event_id(field: str, text: str) -> StreamId:
    parsed = parse_id(text)
    if parsed is None:
        raise invalid(field, f"{text!r} is not an event id ('<ms>-<seq>' or '<ms>')")
    return parsed


def _ids(field: str, texts: Sequence[str]) -> list[StreamId]:
    if not texts:
        raise invalid(field, "must hold at least one id")
    if len(texts) > MAX_IDS:
        raise invalid(field, f"holds {len(texts)} ids; the limit is {MAX_IDS}")
    return [_event_id(f"{field}[{i}]", t) for i, t in enumerate(texts)]


def _start_kind(field: str, value: int) -> int:
    kinds: dict[int, int] = {
        events_pb2.START_POSITION_LATEST: StartKind.LATEST,
        events_pb2.START_POSITION_EARLIEST: StartKind.EARLIEST,
        events_pb2.START_POSITION_AT_TIME: StartKind.AT_TIME,
    }
    if value not in kinds:
        raise invalid(
            field, "must be START_POSITION_LATEST, START_POSITION_EARLIEST or START_POSITION_AT_TIME"
        )
    return kinds[value]


def _not_started(message: str, field: str = "action") -> FailedPrecondition:
    return FailedPrecondition(
        f"{field}: {message}", reason="EVENTS_CONSUME_NOT_STARTED", metadata={"field": field}
    )


def _published_pb(result: PublishResult) -> events_pb2.PublishResponse:
    return events_pb2.PublishResponse(
        id=format_id(result.id), duplicate=result.duplicate, publish_time=timestamp_ms(result.id[0])
    )


def _events_pb(events: Sequence[StoredEvent]) -> events_pb2.Events:
    return events_pb2.Events(
        events=[
            events_pb2.Event(
                topic=e.topic,
                id="" if e.sequence else format_id(e.id),
                data=e.data,
                content_type=e.content_type,
                headers=e.headers,
                publish_time=timestamp_ms(e.id[0]) if not e.sequence else None,
                delivery_count=e.delivery_count,
                sequence=e.sequence,
            )
            for e in events
        ]
    )


class _EncodedBatches:
    """Subscribe replies, with a batch of events encoded once for every subscriber it goes to.

    A topic's reader hands the same list of events to all its subscribers, and each stream sends it
    unmerged unless it fell behind; the last few lists are kept with their encoded reply (and kept
    alive, so that an ``id`` is never reused while it is a key here).
    """

    SIZE = 8

    def __init__(self) -> None:
        self._recent: OrderedDict[int, tuple[list[StoredEvent], bytes]] = OrderedDict()

    def frame(self, frame: Frame | VolatileGapFrame) -> events_pb2.SubscribeResponse | bytes:
        if not isinstance(frame, EventsFrame):
            return _frame_pb(frame)
        events = frame.events
        hit = self._recent.get(id(events))
        if hit is not None and hit[0] is events:
            return hit[1]
        encoded = events_pb2.SubscribeResponse(events=_events_pb(events)).SerializeToString()
        self._recent[id(events)] = (events, encoded)
        if len(self._recent) > self.SIZE:
            self._recent.popitem(last=False)
        return encoded


def _cursors_pb(cursors: Sequence[tuple[str, StreamId]]) -> list[events_pb2.TopicCursor]:
    return [events_pb2.TopicCursor(topic=t, after_id=format_id(i)) for t, i in cursors]


def _frame_pb(frame: Frame | VolatileGapFrame) -> events_pb2.SubscribeResponse:
    if isinstance(frame, VolatileGapFrame):
        gap = events_pb2.Gap(
            topic=frame.topic, after_sequence=frame.after_sequence, next_sequence=frame.next_sequence
        )
        return events_pb2.SubscribeResponse(gap=gap)
    if isinstance(frame, EventsFrame):
        return events_pb2.SubscribeResponse(events=_events_pb(frame.events))
    if isinstance(frame, ProgressFrame):
        return events_pb2.SubscribeResponse(progress=events_pb2.Progress(cursors=_cursors_pb(frame.cursors)))
    if isinstance(frame, SubscribedFrame):
        return events_pb2.SubscribeResponse(
            subscribed=events_pb2.Subscribed(
                starts=_cursors_pb(frame.starts), open_time=timestamp_ms(frame.open_ms)
            )
        )
    assert isinstance(frame, GapFrame)
    return events_pb2.SubscribeResponse(gap=_gap_pb(frame))


def _gap_pb(frame: GapFrame) -> events_pb2.Gap:
    return events_pb2.Gap(
        topic=frame.topic,
        after_id=format_id(frame.after_id),
        first_available_id=format_id(frame.first_available_id) if frame.first_available_id else "",
        last_removed_id=format_id(frame.last_removed_id) if frame.last_removed_id else "",
    )
