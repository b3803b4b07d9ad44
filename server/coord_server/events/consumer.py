"""One Consume stream: a member of a Redis consumer group, paced by the client's credits. No gRPC.

Deliveries are pulled, never pushed ahead: the session reads only as many events as it has credit
for (XREADGROUP ... COUNT credit, not blocking), so nothing ages unseen in a server buffer. It sleeps
on the topic's feed (the one XREAD BLOCK reader of the process), which wakes it when events arrive,
so no Redis connection blocks per consumer. Every sweep interval it also takes over events of its
group that stayed unacknowledged past the ack timeout (XAUTOCLAIM): those are redelivered with their
delivery count, or, past the delivery limit, published to the dead-letter topic and acknowledged.

Loss is never silent here either: a group that falls further behind than retention keeps (more than
the max length, or older than the max age) loses events it never read. Each read of new events also
returns where the group stood (its last delivered id) and the oldest stored id, in one atomic script;
when every stored event is newer than the group's position (gaps.group_loss), the consumer whose read
crossed the hole gets a Gap frame naming it, before the events that follow it, once per hole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..errors import CoordError
from .feed import Feed
from .frames import EventsFrame, GapFrame, chunk_events
from .gaps import group_loss
from .hub import Hub
from .store import EventsStore, PublishItem, StoredEvent
from .topics import StreamId, format_id

log = logging.getLogger(__name__)

MAX_CREDIT = 10_000
READ_BATCH = 256
LEAVE_OTHERS = 16  # idle consumers holding nothing that one leaving stream also takes out


@dataclass(frozen=True)
class ConsumeSpec:
    topic: str
    group: str
    consumer: str
    earliest: bool
    ack_timeout_ms: int
    max_deliveries: int
    dead_letter_topic: str
    credit: int


@dataclass(frozen=True)
class DeadLetteredFrame:
    ids: list[StreamId]
    dead_letter_ids: list[StreamId]


@dataclass(eq=False)
class ConsumerSession:
    store: EventsStore
    hub: Hub
    spec: ConsumeSpec
    credit: int = 0
    _feed: Feed | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _error: CoordError | None = None
    _next_sweep: float = 0.0
    _held: set[StreamId] = field(default_factory=set)
    _finished: bool = False

    @property
    def sweep_interval(self) -> float:
        return max(0.05, min(self.spec.ack_timeout_ms / 4000, 1.0))

    async def open(self) -> bool:
        """Create the group if needed and join the topic's feed; True when the group was created."""
        created = await self.store.create_group(self.spec.topic, self.spec.group, self.spec.earliest)
        self._feed = await self.hub.attach(self.spec.topic)
        self._feed.wakers.add(self._wake)
        self.credit = min(self.spec.credit, MAX_CREDIT)
        return created

    async def close(self) -> list[asyncio.Task[None]]:
        """Leave the feed at once; events still held become claimable by the group right away.
        Returns the tasks it stopped that have not ended yet (for hub.settle)."""
        stopping: list[asyncio.Task[None]] = []
        if self._feed is not None:
            self._feed.wakers.discard(self._wake)
            stopped = self.hub.detach(self._feed)
            if stopped is not None:
                stopping.append(stopped)
            self._feed = None
        s = self.spec
        if self._held:
            held, self._held = sorted(self._held), set()
            try:
                await self.store.set_idle(s.topic, s.group, s.consumer, held, s.ack_timeout_ms)
            except Exception as exc:  # best effort: the ack timeout hands them over anyway
                log.debug("releasing %d held events of %s failed: %r", len(held), s.consumer, exc)
        try:
            # Each stream joins under a name of its own: without this, a group's consumer list (in
            # Redis, for as long as the topic lives) would grow by one per stream that ever read.
            await self.store.leave(s.topic, s.group, s.consumer, s.ack_timeout_ms, LEAVE_OTHERS)
        except Exception as exc:  # best effort: a later stream's leave takes this one out
            log.debug("leaving group %s as %s failed: %r", s.group, s.consumer, exc)
        return stopping

    # -- client actions ----------------------------------------------------------------------------

    def grant(self, count: int) -> None:
        self.credit = min(self.credit + count, MAX_CREDIT)
        self._wake.set()

    def fail(self, error: CoordError) -> None:
        self._error = error
        self._wake.set()

    def finish(self) -> None:
        """The client half-closed, after the actions it sent were applied (the reader calls this once
        its last one is): the stream ends at once, with OK. Called from the reader task, it wakes
        :meth:`deliveries` wherever it waits (even with no credit, when no sweep timer runs)."""
        self._finished = True
        self._wake.set()

    async def ack(self, ids: list[StreamId]) -> None:
        await self.store.ack(self.spec.topic, self.spec.group, ids)
        self._held.difference_update(ids)

    async def nack(self, ids: list[StreamId], delay_ms: int) -> None:
        s = self.spec
        await self.store.set_idle(s.topic, s.group, s.consumer, ids, s.ack_timeout_ms - delay_ms)
        self._held.difference_update(ids)
        self._next_sweep = min(self._next_sweep, time.monotonic() + delay_ms / 1000)
        self._wake.set()

    async def extend(self, ids: list[StreamId]) -> None:
        s = self.spec
        await self.store.set_idle(s.topic, s.group, s.consumer, ids, 0)

    # -- deliveries --------------------------------------------------------------------------------

    async def deliveries(self) -> AsyncIterator[EventsFrame | DeadLetteredFrame | GapFrame]:
        """Frames to send until the client half-closes (then it returns: the stream ends with OK);
        raises the error that ends the stream."""
        s = self.spec
        while True:
            if self._error is not None:
                raise self._error
            if self._finished:
                return
            if self._feed is not None and self._feed.error is not None:
                raise self._feed.error
            self._wake.clear()
            delivered: list[StoredEvent] = []
            now = time.monotonic()
            if self.credit > 0 and now >= self._next_sweep:
                self._next_sweep = now + self.sweep_interval
                claimed = await self.store.claim(
                    s.topic, s.group, s.consumer, s.ack_timeout_ms, min(self.credit, READ_BATCH)
                )
                dead = [e for e in claimed if e.delivery_count > s.max_deliveries]
                delivered = [e for e in claimed if e.delivery_count <= s.max_deliveries]
                if dead:
                    yield await self._dead_letter(dead)
            if self.credit - len(delivered) > 0:
                want = min(self.credit - len(delivered), READ_BATCH)
                read = await self.store.read_group(s.topic, s.group, s.consumer, want)
                loss = group_loss(read.last_delivered, read.first_stored, read.lag, read.length)
                if loss is not None:
                    log.info(
                        "events of topic %r were trimmed before group %r read them (after %s)",
                        s.topic,
                        s.group,
                        format_id(read.last_delivered),
                    )
                    yield GapFrame(s.topic, read.last_delivered, loss.first_available, None)
                delivered += read.events
            if delivered:
                self._held.update(e.id for e in delivered)
                if self._finished:
                    # The client half-closed while they were read: it can settle nothing more, so the
                    # stream ends now and close() hands them back to the group at once.
                    return
                self.credit -= len(delivered)
                for chunk in chunk_events(delivered):  # claimed plus read: may exceed one reply's caps
                    yield EventsFrame(chunk)
                continue
            wait = max(0.0, self._next_sweep - time.monotonic()) if self.credit > 0 else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _dead_letter(self, dead: list[StoredEvent]) -> DeadLetteredFrame:
        s = self.spec
        items = [
            PublishItem(
                s.dead_letter_topic,
                e.data,
                e.content_type,
                {
                    **e.headers,
                    "coord-origin-topic": e.topic,
                    "coord-origin-id": format_id(e.id),
                    "coord-group": s.group,
                    "coord-deliveries": str(e.delivery_count - 1),
                },
                # A retry after a crash between publish and ack finds the first copy.
                dedup_id=f"dlq:{s.group}:{format_id(e.id)}",
            )
            for e in dead
        ]
        published = await self.store.publish(items)
        ids = [e.id for e in dead]
        await self.store.ack(s.topic, s.group, ids)
        self.hub.topics_seen([s.dead_letter_topic])
        return DeadLetteredFrame(ids, [p.id for p in published])
