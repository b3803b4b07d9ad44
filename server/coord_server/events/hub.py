"""Fan-out inside one server process: one Redis reader per topic, many subscribers, bounded buffers.

A :class:`Feed` is the only reader of its topic in this process: one task looping on XREAD BLOCK
from its cursor (the newest id it has read), pushing each batch into the buffers of the subscribers
that joined it and waking the topic's consumer-group sessions. It runs exactly while something holds
a reference to it and stops the moment the last reference goes.

A :class:`Subscription` is one Subscribe stream. For each of its topics it first catches up with
XRANGE pages on its own, then joins the feed in the same event-loop step in which it has read up to
the feed's cursor: everything up to the cursor came from XRANGE, everything after it comes from the
feed, and a per-topic "last queued id" filter drops any overlap. So the hand-over has no gap and no
duplicate. The buffer is bounded in events; a subscriber that would overflow it is ended with
SubscriberTooSlow carrying the cursors of what it was sent, so it can resume without loss.

Nothing here imports gRPC: the servicer turns frames into protobuf messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendUnavailable, CoordError, SubscriberTooSlow, invalid
from ..redis import rpc_deadline
from .store import EventsStore, StoredEvent
from .topics import ZERO_ID, Pattern, StreamId, format_id, id_before_time

log = logging.getLogger(__name__)

CATCH_UP_PAGE = 500
LIVE_BATCH = 512
MAX_FRAME_EVENTS = 256
MAX_FRAME_BYTES = 1 << 20


def chunk_events(events: list[StoredEvent]) -> list[list[StoredEvent]]:
    """``events`` cut into replies within the caps of :func:`merge_events` (each at least one event);
    ``[events]`` itself, not a copy, when it fits in one."""
    chunks: list[list[StoredEvent]] = []
    size = 0
    for event in events:
        if not chunks or len(chunks[-1]) >= MAX_FRAME_EVENTS or size >= MAX_FRAME_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(event)
        size += len(event.data)
    return [events] if len(chunks) == 1 else chunks


def merge_events(first: EventsFrame, buffer: deque[Any]) -> list[StoredEvent]:
    """``first``'s events and those of the EventsFrames right behind it in ``buffer`` (taken from it),
    up to MAX_FRAME_EVENTS events and about MAX_FRAME_BYTES of data: one reply, never one gRPC
    would refuse to send."""
    events = first.events
    size = -1
    while (
        buffer
        and isinstance(buffer[0], EventsFrame)
        and len(events) + len(buffer[0].events) <= MAX_FRAME_EVENTS
    ):
        if size < 0:
            size = sum(len(e.data) for e in events)
        if size >= MAX_FRAME_BYTES:
            break
        more = buffer.popleft()
        # A copy only when merging: an unmerged batch stays the very list the feed handed to every
        # subscriber, which the transport then encodes once for all of them.
        events = events + more.events
        size += sum(len(e.data) for e in more.events)
    return events


class Wake:
    """A flag one task sleeps on with a timeout: an ``asyncio.Event`` without the task that
    ``asyncio.wait_for`` makes per timed wait or the loop lookup per wait (a ``getpid`` system call
    on Python 3.11). A subscriber sleeps on it once per frame it sends. Make it inside the loop."""

    __slots__ = ("_loop", "_set", "_waiter")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, seconds: float) -> None:
        """Return when set (at once if it is) or after ``seconds``, whichever comes first."""
        if self._set:
            return
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(seconds, _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


CLOCK_RESYNC = 5.0  # seconds between reads of the Redis clock
SETTLE_TIMEOUT = 5.0  # longest a closing stream waits for its cancelled readers


class StartKind:
    LATEST = 1
    EARLIEST = 2
    AT_TIME = 3


# -- frames (what a subscription yields) -------------------------------------------------------------


@dataclass(frozen=True)
class SubscribedFrame:
    starts: list[tuple[str, StreamId]]
    open_ms: int


@dataclass(frozen=True)
class EventsFrame:
    events: list[StoredEvent]


@dataclass(frozen=True)
class ProgressFrame:
    cursors: list[tuple[str, StreamId]]


@dataclass(frozen=True)
class GapFrame:
    topic: str
    after_id: StreamId
    first_available_id: StreamId | None
    last_removed_id: StreamId | None


Frame = SubscribedFrame | EventsFrame | ProgressFrame | GapFrame


# -- the per-topic reader --------------------------------------------------------------------------


class Feed:
    """The one Redis reader of a topic in this process."""

    def __init__(self, hub: Hub, topic: str) -> None:
        self.hub = hub
        self.topic = topic
        self.cursor: StreamId = ZERO_ID
        self.refs = 0
        self.subscribers: set[Subscription] = set()
        self.wakers: set[asyncio.Event] = set()
        self.ready = asyncio.Event()
        self.error: CoordError | None = None
        # Set when the last reference goes. The reader is not cancelled mid-read (a cancelled
        # blocking read can leave a pooled connection in a state that takes long to clean up);
        # it stops when its current XREAD BLOCK returns, within block_ms.
        self.stopped = False
        self.task = asyncio.create_task(self._run(), name=f"coord-events-feed:{topic}")

    async def _run(self) -> None:
        rpc_deadline.set(None)  # the feed outlives the RPC that happened to start it
        store = self.hub.store
        try:
            self.cursor = (await store.position(self.topic)).last_id
            self.ready.set()
            while not self.stopped:
                events = await store.wait_after(self.topic, self.cursor, self.hub.block_ms, LIVE_BATCH)
                if events and not self.stopped:
                    self._dispatch(events)
        except CoordError as error:
            log.warning("events reader for topic %r stopped: %s", self.topic, error.message)
            self._fail(error)
        except Exception:
            log.exception("events reader for topic %r failed", self.topic)
            self._fail(BackendUnavailable("the topic reader failed; resume from your cursors"))

    def _dispatch(self, events: list[StoredEvent]) -> None:
        # One synchronous step: every joined subscriber gets the batch before the cursor moves. Each
        # chunk fits one reply and is one list shared by all subscribers (encoded once for all).
        for chunk in chunk_events(events):
            for subscriber in list(self.subscribers):
                if not subscriber.offer(self.topic, chunk):
                    self.subscribers.discard(subscriber)
        self.cursor = events[-1].id
        for waker in self.wakers:
            waker.set()

    def _fail(self, error: CoordError) -> None:
        self.error = error
        self.ready.set()
        self.hub.forget(self)
        for subscriber in list(self.subscribers):
            subscriber.fail_interrupted(error)
        self.subscribers.clear()
        for waker in self.wakers:
            waker.set()


# -- the process-wide hub --------------------------------------------------------------------------


class Hub:
    """Owns the feeds of this process and the pattern subscriptions waiting for new topics."""

    def __init__(
        self, store: EventsStore, *, block_ms: int, buffer_events: int, pattern_refresh: float
    ) -> None:
        self.store = store
        self.block_ms = block_ms
        self.buffer_events = buffer_events
        self.pattern_refresh = pattern_refresh
        self.feeds: dict[str, Feed] = {}
        self.subscriptions: set[Subscription] = set()
        self.pattern_subscriptions: set[Subscription] = set()
        self._directory_task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._clock: tuple[int, float] | None = None  # (Redis ms, monotonic s) at the last sync

    async def redis_now_ms(self) -> int:
        """The Redis server's clock in ms, read with TIME at most every few seconds and extrapolated
        with the monotonic clock in between; it errs early (by the round trip), never late."""
        now = time.monotonic()
        if self._clock is None or now - self._clock[1] > CLOCK_RESYNC:
            sent = time.monotonic()
            redis_ms = await self.store.redis_time_ms()
            back = time.monotonic()
            self._clock = (redis_ms - math.ceil((back - sent) * 1000) - 1, back)
        base, at = self._clock
        return base + int((time.monotonic() - at) * 1000)

    async def attach(self, topic: str) -> Feed:
        """A ready feed for ``topic``, with one more reference; pair with :meth:`detach`."""
        feed = self.feeds.get(topic)
        if feed is None:
            feed = self.feeds[topic] = Feed(self, topic)
        feed.refs += 1
        try:
            await feed.ready.wait()
        except BaseException:
            self.detach(feed)
            raise
        if feed.error is not None:
            self.detach(feed)
            raise feed.error
        return feed

    def detach(self, feed: Feed) -> None:
        feed.refs -= 1
        if feed.refs <= 0:
            self.forget(feed)
            feed.stopped = True
            self.await_task(feed.task)

    def stop_task(self, task: asyncio.Task[None]) -> None:
        """Cancel ``task``; :meth:`settle` waits for it (and every other task being stopped)."""
        if not task.done():
            task.cancel()
            self.await_task(task)

    def await_task(self, task: asyncio.Task[None]) -> None:
        if not task.done():
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def settle(self) -> None:
        """Wait until cancelled readers have really stopped, so none outlives the server's Redis client."""
        current = asyncio.current_task()
        pending = {t for t in self._stopping if t is not current}
        if pending:
            _, late = await asyncio.wait(pending, timeout=SETTLE_TIMEOUT)
            if late:
                log.warning("%d cancelled events tasks did not stop in time: %s", len(late), late)

    def forget(self, feed: Feed) -> None:
        if self.feeds.get(feed.topic) is feed:
            del self.feeds[feed.topic]

    def subscriber_count(self, topic: str) -> int:
        """Open Subscribe streams of this process that read ``topic`` (joined or catching up)."""
        return sum(1 for s in self.subscriptions if s.reads(topic))

    # -- new topics for pattern subscriptions ------------------------------------------------------

    def topics_seen(self, topics: Iterable[str]) -> None:
        """Offer names of existing topics to the pattern subscriptions (after a publish, or a poll)."""
        names = list(topics)
        for subscription in list(self.pattern_subscriptions):
            subscription.consider(names)

    def add_pattern_subscription(self, subscription: Subscription) -> None:
        self.pattern_subscriptions.add(subscription)
        if self._directory_task is None or self._directory_task.done():
            self._directory_task = asyncio.create_task(self._poll_directory(), name="coord-events-topics")

    def remove_pattern_subscription(self, subscription: Subscription) -> None:
        self.pattern_subscriptions.discard(subscription)
        if not self.pattern_subscriptions and self._directory_task is not None:
            self.stop_task(self._directory_task)
            self._directory_task = None

    async def _poll_directory(self) -> None:
        # Topics created through other server processes are found here, one registry scan per
        # interval for the whole process (not per subscription).
        rpc_deadline.set(None)
        while self.pattern_subscriptions:
            await asyncio.sleep(self.pattern_refresh)
            prefixes = {s.scan_prefix for s in self.pattern_subscriptions}
            prefix = _common_prefix(prefixes)
            try:
                after = ""
                while True:
                    names = await self.store.list_topics(after, 1000, prefix)
                    self.topics_seen(names)
                    if len(names) < 1000:
                        break
                    after = names[-1]
            except CoordError as error:
                log.warning("listing topics for pattern subscriptions failed: %s", error.message)


def _common_prefix(prefixes: set[str]) -> str:
    if not prefixes:
        return ""
    low, high = min(prefixes), max(prefixes)
    i = 0
    while i < min(len(low), len(high)) and low[i] == high[i]:
        i += 1
    return low[:i]


# -- one Subscribe stream --------------------------------------------------------------------------


@dataclass
class _TopicState:
    queued: StreamId  # newest id put into the buffer (the overlap filter)
    sent: StreamId  # newest id handed to the transport (the resume cursor)
    feed: Feed | None = None
    attached: bool = False  # has a start position (a pattern match may still be attaching)
    joined: bool = False


@dataclass
class SubscribeSpec:
    topics: list[str]
    patterns: list[Pattern]
    start: int
    start_ms: int
    cursors: dict[str, StreamId]
    heartbeat: float
    max_topics: int = 1000


@dataclass(eq=False)
class Subscription:
    """One Subscribe stream: open it with :meth:`open`, iterate :meth:`frames`, always :meth:`close`."""

    hub: Hub
    spec: SubscribeSpec
    states: dict[str, _TopicState] = field(default_factory=dict)
    open_ms: int = 0
    _buffer: deque[Frame] = field(default_factory=deque)
    _buffered_events: int = 0
    _wake: Wake = field(default_factory=Wake)
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _error: CoordError | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _closed: bool = False
    _deferred: list[str] | None = field(default_factory=list)  # names offered while opening

    @property
    def scan_prefix(self) -> str:
        return _common_prefix({p.literal_prefix for p in self.spec.patterns})

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Attach every initial topic and queue the Subscribed frame, gaps and catch-up work."""
        self.hub.subscriptions.add(self)
        self.open_ms = await self.hub.redis_now_ms()
        topics = list(self.spec.topics)
        if self.spec.patterns:
            self.hub.add_pattern_subscription(self)
            for prefix in sorted({p.literal_prefix for p in self.spec.patterns}):
                matched = await self.hub.store.list_topics("", 100_000, prefix)
                topics += [t for t in matched if self._matches(t)]
        topics = list(dict.fromkeys(topics))
        if len(topics) > self.spec.max_topics:
            raise invalid("topics", f"match {len(topics)} topics; the limit is {self.spec.max_topics}")
        starts = [(topic, await self._attach(topic, late=False)) for topic in topics]
        self._push(SubscribedFrame(starts, self.open_ms))
        deferred, self._deferred = self._deferred, None
        if deferred:
            self.consider(deferred)
        for topic, after in starts:
            await self._check_gap(topic, after)
        for topic, after in starts:
            self._spawn(self._catch_up(topic, after))

    def close(self) -> None:
        """Release everything at once: catch-up tasks, feed references, pattern registration."""
        if self._closed:
            return
        self._closed = True
        self.hub.subscriptions.discard(self)
        self.hub.remove_pattern_subscription(self)
        for task in list(self._tasks):
            self.hub.stop_task(task)
        for state in self.states.values():
            if state.feed is not None:
                state.feed.subscribers.discard(self)
                self.hub.detach(state.feed)
                state.feed = None
        self._buffer.clear()

    # -- topics ------------------------------------------------------------------------------------

    def reads(self, topic: str) -> bool:
        state = self.states.get(topic)
        return state is not None and state.feed is not None

    def _matches(self, topic: str) -> bool:
        return any(p.matches(topic) for p in self.spec.patterns)

    def consider(self, names: Iterable[str]) -> None:
        if self._deferred is not None:
            # open() is still listing and attaching topics: a name seen now may be one it attaches,
            # and attaching it here too would read (and deliver) its events twice. Decide once the
            # opening Subscribed frame is queued.
            self._deferred.extend(names)
            return
        for name in names:
            # Names it already reads or does not match are not news: only a new topic can hit the cap
            # (else every publish to a known topic would log the warning again).
            if name in self.states or self._closed or not self._matches(name):
                continue
            if len(self.states) >= self.spec.max_topics:
                log.warning(
                    "a pattern subscription reached %d topics; ignoring %r", self.spec.max_topics, name
                )
                return
            self.states[name] = _TopicState(ZERO_ID, ZERO_ID)  # reserve; filled by _late_topic
            self._spawn(self._late_topic(name))

    async def _late_topic(self, topic: str) -> None:
        after = await self._attach(topic, late=True)
        self._push(SubscribedFrame([(topic, after)], self.open_ms))
        await self._check_gap(topic, after)
        await self._catch_up(topic, after)

    async def _attach(self, topic: str, *, late: bool) -> StreamId:
        feed = await self.hub.attach(topic)
        if self._closed:
            self.hub.detach(feed)
            raise asyncio.CancelledError
        spec = self.spec
        if topic in spec.cursors:
            after = spec.cursors[topic]
        elif spec.start == StartKind.EARLIEST:
            after = ZERO_ID
        elif spec.start == StartKind.AT_TIME:
            after = id_before_time(spec.start_ms)
        elif late:
            after = id_before_time(self.open_ms)
        else:
            after = feed.cursor
        self.states[topic] = _TopicState(after, after, feed, attached=True)
        return after

    async def _check_gap(self, topic: str, after: StreamId) -> None:
        """Queue a Gap frame when events after ``after`` were removed before this stream could read them.

        Retention trims from the head, so a position older than the first stored event has lost the
        events in between, if any were ever removed (Redis 7 counts them: entries-added > length).
        Redis does not say which ids trimming removed, so a cursor whose own event was the newest
        one removed also gets a (harmless) Gap. XDEL removals are reported by max-deleted-entry-id.
        """
        if topic not in self.spec.cursors and self.spec.start != StartKind.AT_TIME:
            return  # LATEST and EARLIEST ask for no particular position
        position = await self.hub.store.position(topic)
        first = position.first_id
        if not position.exists:
            # A resumed topic that no longer exists expired with everything after the cursor.
            lost = topic in self.spec.cursors and after != ZERO_ID
        else:
            removed = position.entries_added is None or position.entries_added > position.length
            lost = first is not None and first > after and removed
            lost = lost or (position.last_removed_id is not None and position.last_removed_id > after)
        if lost:
            self._push(GapFrame(topic, after, first, position.last_removed_id))

    async def _catch_up(self, topic: str, after: StreamId) -> None:
        state = self.states[topic]
        feed = state.feed
        assert feed is not None
        last = after
        while True:
            if feed.error is not None:
                self.fail_interrupted(feed.error)
                return
            cursor = feed.cursor
            if last >= cursor:
                # Same event-loop step as the check: the feed has not read past `cursor` yet.
                state.queued = max(state.queued, last)
                state.joined = True
                feed.subscribers.add(self)
                return
            page = await self.hub.store.read_after(topic, last, CATCH_UP_PAGE)
            page = [e for e in page if e.id > state.queued]
            if page:
                await self._room_for(len(page))
                self._push_events(topic, page)
                last = page[-1].id
            else:
                last = max(last, cursor)  # entries up to `cursor` were removed meanwhile

    def _spawn(self, coro: object) -> None:
        async def guarded() -> None:
            try:
                await coro  # type: ignore[misc]
            except CoordError as error:
                self._fail(error)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the buffer --------------------------------------------------------------------------------

    def _push(self, frame: Frame) -> None:
        self._buffer.append(frame)
        self._wake.set()

    def _push_events(self, topic: str, events: list[StoredEvent]) -> None:
        # A catch-up page (or a live batch) may hold more than one reply may carry.
        self._buffer.extend(EventsFrame(chunk) for chunk in chunk_events(events))
        self._buffered_events += len(events)
        self.states[topic].queued = events[-1].id
        self._wake.set()

    async def _room_for(self, count: int) -> None:
        # Catch-up waits for room (it reads at its own pace); only the live feed can overflow.
        while self._buffered_events and self._buffered_events + count > self.hub.buffer_events // 2:
            self._room.clear()
            await self._room.wait()

    def offer(self, topic: str, events: list[StoredEvent]) -> bool:
        """Called by the feed: queue the events after this topic's position; False when overflowing."""
        state = self.states.get(topic)
        if state is None or self._error is not None:
            return False
        fresh = events if events[0].id > state.queued else [e for e in events if e.id > state.queued]
        if not fresh:
            return True
        if self._buffered_events + len(fresh) > self.hub.buffer_events:
            self._fail(
                SubscriberTooSlow(
                    f"the subscriber fell more than {self.hub.buffer_events} events behind; "
                    "resume from the cursors in the error metadata",
                    metadata={"cursors": self.cursors_json()},
                )
            )
            return False
        self._push_events(topic, fresh)
        return True

    def fail_interrupted(self, error: CoordError) -> None:
        self._fail(
            BackendUnavailable(
                f"the topic reader stopped ({error.message}); resume from the cursors in the error metadata",
                reason="EVENTS_STREAM_INTERRUPTED",
                metadata={"cursors": self.cursors_json()},
            )
        )

    def _fail(self, error: CoordError) -> None:
        # The stream is over: release its feeds and buffer now, even while its transport is stuck.
        if self._error is None:
            self._error = error
        self.close()
        self._wake.set()

    def cursors_json(self) -> str:
        sent = {t: format_id(s.sent) for t, s in self.states.items() if s.attached}
        return json.dumps(sent, sort_keys=True)

    # -- the output side ---------------------------------------------------------------------------

    async def frames(self) -> AsyncIterator[Frame]:
        """Frames in order; Progress after ``heartbeat`` of silence. Raises the error that ends it."""
        heartbeat = self.spec.heartbeat
        while True:
            if self._error is not None:
                raise self._error
            if not self._buffer:
                self._wake.clear()
                await self._wake.wait(heartbeat)
                if self._error is not None:
                    raise self._error
                if not self._buffer:
                    yield ProgressFrame(self._progress())
                    continue
            yield self._next_frame()

    def _next_frame(self) -> Frame:
        frame = self._buffer.popleft()
        if isinstance(frame, EventsFrame):
            events = merge_events(frame, self._buffer)
            self._buffered_events -= len(events)
            self._room.set()
            for event in events:
                state = self.states.get(event.topic)
                if state is not None and event.id > state.sent:
                    state.sent = event.id
            return EventsFrame(events)
        return frame

    def _progress(self) -> list[tuple[str, StreamId]]:
        # The buffer is empty: a joined topic has been sent everything up to its feed's cursor.
        cursors = []
        for topic, state in self.states.items():
            if not state.attached:
                continue  # a pattern match still being attached: no position yet
            position = state.sent
            if state.joined and state.feed is not None:
                position = max(position, state.feed.cursor)
                state.sent = position
            cursors.append((topic, position))
        return cursors
