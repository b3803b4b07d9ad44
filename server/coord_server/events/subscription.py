"""One Subscribe stream of durable topics: catch-up, hand-over to the live feed, a bounded buffer.

For each of its topics a :class:`Subscription` first catches up with XRANGE pages on its own, then
joins the topic's :class:`~.feed.Feed` in the same event-loop step in which it has read up to the
feed's cursor: everything up to the cursor came from XRANGE, everything after it comes from the feed,
and a per-topic "last queued id" filter drops any overlap. So the hand-over has no gap and no
duplicate. Loss is never silent (the rules are in gaps.py): a Gap frame is queued when the stream
opens at a position whose events are gone, when a catch-up page shows that trimming overtook the
reader, and when the feed finds that trimming overtook the topic's live reader.

The buffer is bounded in events; a subscriber that would overflow it is ended with SubscriberTooSlow
carrying the cursors of what it was sent, so it can resume without loss. A pattern subscription also
takes the matching topics that appear while it is open, as the hub offers them.

Nothing here imports gRPC: the servicer turns frames into protobuf messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import BackendUnavailable, CoordError, SubscriberTooSlow, invalid
from .frames import EventsFrame, Frame, GapFrame, ProgressFrame, SubscribedFrame, chunk_events, merge_events
from .gaps import loss_at_cursor, loss_on_open, overtaken
from .store import StoredEvent
from .topics import ZERO_ID, Pattern, StreamId, format_id, id_before_time
from .wake import Wake

if TYPE_CHECKING:
    from .feed import Feed
    from .hub import Hub

log = logging.getLogger(__name__)

CATCH_UP_PAGE = 500


class StartKind:
    LATEST = 1
    EARLIEST = 2
    AT_TIME = 3


@dataclass
class SubscribeSpec:
    topics: list[str]
    patterns: list[Pattern]
    start: int
    start_ms: int
    cursors: dict[str, StreamId]
    heartbeat: float
    max_topics: int = 1000


@dataclass
class _TopicState:
    queued: StreamId  # newest id put into the buffer (the overlap filter)
    sent: StreamId  # newest id handed to the transport (the resume cursor)
    feed: Feed | None = None
    attached: bool = False  # has a start position (a pattern match may still be attaching)
    joined: bool = False
    # after_id of the last Gap queued: the check at opening and the first catch-up page can find the
    # same loss, and it is said once.
    gap_after: StreamId | None = None


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
    # Tasks this stream stopped and that had not ended yet when it closed: its transport waits for
    # them (hub.settle), and for no other stream's.
    stopping: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def scan_prefix(self) -> str:
        return common_prefix({p.literal_prefix for p in self.spec.patterns})

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Attach every initial topic and queue the Subscribed frame, gaps and catch-up work."""
        self.hub.subscriptions.add(self)
        self.open_ms = await self.hub.redis_now_ms()
        if self.spec.patterns:
            self.hub.add_pattern_subscription(self)
        topics = await self._initial_topics()
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
        stopped = [self.hub.remove_pattern_subscription(self)]
        for task in list(self._tasks):
            stopped.append(self.hub.stop_task(task))
        for state in self.states.values():
            if state.feed is not None:
                state.feed.subscribers.discard(self)
                stopped.append(self.hub.detach(state.feed))
                state.feed = None
        self.stopping = [task for task in stopped if task is not None]
        self._buffer.clear()

    # -- topics ------------------------------------------------------------------------------------

    def reads(self, topic: str) -> bool:
        state = self.states.get(topic)
        return state is not None and state.feed is not None

    def _matches(self, topic: str) -> bool:
        return any(p.matches(topic) for p in self.spec.patterns)

    async def _initial_topics(self) -> list[str]:
        """The named topics and the existing topics the patterns match, each once, within the cap."""
        topics = list(self.spec.topics)
        for prefix in sorted({p.literal_prefix for p in self.spec.patterns}):
            matched = await self.hub.store.list_topics("", 100_000, prefix)
            topics += [t for t in matched if self._matches(t)]
        topics = list(dict.fromkeys(topics))
        if len(topics) > self.spec.max_topics:
            raise invalid("topics", f"match {len(topics)} topics; the limit is {self.spec.max_topics}")
        return topics

    def consider(self, names: Iterable[str]) -> None:
        """Take the topics among ``names`` that the patterns match and this stream does not read yet."""
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
        after = self._start_after(topic, feed, late=late)
        self.states[topic] = _TopicState(after, after, feed, attached=True)
        return after

    def _start_after(self, topic: str, feed: Feed, *, late: bool) -> StreamId:
        """The id after which ``topic`` starts: the client's cursor, else the asked start position;
        LATEST means the feed's cursor for a topic of the opening, the opening time for a later one."""
        spec = self.spec
        if topic in spec.cursors:
            return spec.cursors[topic]
        if spec.start == StartKind.EARLIEST:
            return ZERO_ID
        if spec.start == StartKind.AT_TIME:
            return id_before_time(spec.start_ms)
        if late:
            return id_before_time(self.open_ms)
        return feed.cursor

    async def _check_gap(self, topic: str, after: StreamId) -> None:
        """Queue a Gap frame when events after ``after`` are gone: removed by retention, or lost by
        Redis, before this stream could read them."""
        resumed = topic in self.spec.cursors
        if not resumed and self.spec.start != StartKind.AT_TIME:
            return  # LATEST and EARLIEST ask for no particular position
        store = self.hub.store
        stream = await store.position(topic)
        loss = loss_on_open(stream, after, resumed=resumed)
        if isinstance(loss, str):  # LOOK_UP: is the cursor's own event still stored?
            loss = loss_at_cursor(after, await store.next_id(topic, after, inclusive=True))
        if loss is None:
            return
        first = loss.first_available
        if first is None and stream.exists:
            first = await store.next_id(topic, after)
        self._gap(topic, after, first, stream.last_removed_id)

    def _gap(
        self, topic: str, after: StreamId, first_available: StreamId | None, removed: StreamId | None
    ) -> None:
        state = self.states.get(topic)
        if state is not None:
            if state.gap_after == after:
                return
            state.gap_after = after
        self._push(GapFrame(topic, after, first_available, removed))

    async def _check_page(self, topic: str, last: StreamId, page: list[StoredEvent]) -> None:
        """After a catch-up page read after ``last``: queue a Gap if trimming removed events after
        ``last`` before the page was read (this reader waited for room while the topic was trimmed).
        A page read from the beginning (0-0) reads whatever is stored: nothing to check."""
        if last == ZERO_ID:
            return
        if not page:
            # Nothing after `last`, yet the feed has read up to a newer id: that event, at least,
            # was removed meanwhile (trimmed, expired, or lost by Redis).
            self._gap(topic, last, None, None)
            return
        if overtaken(await self.hub.store.position(topic), last):
            self._gap(topic, last, page[0].id, None)

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
                self._join(state, feed, last)
                return
            page = await self.hub.store.read_after(topic, last, CATCH_UP_PAGE)
            page = [e for e in page if e.id > state.queued]
            await self._check_page(topic, last, page)
            if page:
                await self._room_for(len(page))
                self._push_events(topic, page)
                last = page[-1].id
            else:
                last = max(last, cursor)  # entries up to `cursor` were removed meanwhile

    def _join(self, state: _TopicState, feed: Feed, last: StreamId) -> None:
        # Synchronous, so in the same event-loop step as the caller's check that `last` reached the
        # feed's cursor: the feed has not read past it yet, and delivers everything after it.
        state.queued = max(state.queued, last)
        state.joined = True
        feed.subscribers.add(self)

    def _spawn(self, coro: object) -> None:
        # However a topic's catch-up ends, the stream learns of it: a topic that silently stopped
        # short of joining its feed would get no event again while heartbeats kept flowing.
        async def guarded() -> None:
            try:
                await coro  # type: ignore[misc]
            except CoordError as error:
                self._fail(error)
            except asyncio.CancelledError:
                if not self._closed:  # not cancelled by close(): resume rather than go quiet
                    self.fail_interrupted(BackendUnavailable("a topic's catch-up was cancelled"))
                raise
            except Exception:
                log.exception("a topic's catch-up failed")
                self.fail_interrupted(BackendUnavailable("a topic's catch-up failed"))

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
            self._fail(self._too_slow())
            return False
        self._push_events(topic, fresh)
        return True

    def offer_gap(self, topic: str, first_available: StreamId) -> None:
        """Called by the feed before a batch starting at ``first_available``: trimming removed events
        the feed had not read. Queue a Gap if this stream has not reached that batch yet."""
        state = self.states.get(topic)
        if state is None or self._error is not None or state.queued >= first_available:
            return
        self._gap(topic, state.queued, first_available, None)

    def _too_slow(self) -> SubscriberTooSlow:
        return SubscriberTooSlow(
            f"the subscriber fell more than {self.hub.buffer_events} events behind; "
            "resume from the cursors in the error metadata",
            metadata={"cursors": self.cursors_json()},
        )

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
            self._mark_sent(events)
            return EventsFrame(events)
        return frame

    def _mark_sent(self, events: list[StoredEvent]) -> None:
        # The resume cursors: what the transport has been handed, per topic.
        for event in events:
            state = self.states.get(event.topic)
            if state is not None and event.id > state.sent:
                state.sent = event.id

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


def common_prefix(prefixes: set[str]) -> str:
    """The longest string every one of ``prefixes`` starts with ("" for none)."""
    if not prefixes:
        return ""
    low, high = min(prefixes), max(prefixes)
    i = 0
    while i < min(len(low), len(high)) and low[i] == high[i]:
        i += 1
    return low[:i]
