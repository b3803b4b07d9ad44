"""Volatile topics: Redis Pub/Sub with a sequence number per topic, so loss is still reported.

One Pub/Sub connection per server process and tenant (opened with the tenant's first volatile
subscriber, closed with its last) listens to the channels of every topic of that tenant some volatile
subscriber reads, and fans messages out to the subscribers' bounded buffers. Each message carries
the topic's next sequence number (assigned atomically with the PUBLISH): a subscriber that sees 7
after 5 gets a Gap frame for 6, whether the message was lost by Redis (a Pub/Sub client disconnected
for a full output buffer, then reconnected), or dropped here because the subscriber's buffer was
full. Volatile subscribers are never ended for being slow: they lose messages, and are told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendUnavailable, CoordError
from ..redis import deadline
from .frames import EventsFrame, Frame, ProgressFrame, SubscribedFrame, merge_events
from .hub import Hub
from .store import StoredEvent, decode_volatile
from .topics import ZERO_ID
from .wake import Wake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolatileGapFrame:
    topic: str
    after_sequence: int
    next_sequence: int


class VolatileHub:
    """One tenant's volatile listener in this process and the subscribers it feeds."""

    def __init__(self, hub: Hub, *, wait: float, buffer_events: int) -> None:
        self.hub = hub
        self.store = hub.store
        self.wait = wait
        self.buffer_events = buffer_events
        self.readers: dict[str, set[VolatileSubscription]] = {}  # topic -> subscribers
        self._channels: dict[str, str] = {}  # channel -> topic
        self._listener: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def join(self, subscription: VolatileSubscription, topics: list[str]) -> None:
        async with self._lock:
            if self._listener is None:
                self._listener = self.store.open_listener()
            new = [t for t in topics if t not in self.readers]
            if new:
                await self.store.listen(self._listener, new)
            for topic in topics:
                self.readers.setdefault(topic, set()).add(subscription)
                self._channels[self.store.keys.volatile_channel(topic)] = topic
            if self._task is None or self._task.done():
                # The listener outlives the RPC that started it: no deadline of that RPC's.
                self._task = asyncio.create_task(
                    self._run(), name="coord-events-volatile", context=deadline.detached_context()
                )

    def leave(self, subscription: VolatileSubscription) -> asyncio.Task[None] | None:
        """Forget ``subscription``; returns the task that stops listening to channels nobody reads."""
        gone = []
        for topic in subscription.topics:
            readers = self.readers.get(topic)
            if readers is not None:
                readers.discard(subscription)
                if not readers:
                    del self.readers[topic]
                    gone.append(topic)
        if not self.readers and self._task is not None:
            self.hub.await_task(self._task)  # it ends within `wait`; closing streams settle on it
        if not gone:
            return None
        return asyncio.create_task(self._unlisten(gone), context=deadline.detached_context())

    async def _unlisten(self, topics: list[str]) -> None:
        async with self._lock:
            still_gone = [t for t in topics if t not in self.readers]
            for topic in still_gone:
                self._channels.pop(self.store.keys.volatile_channel(topic), None)
            if self._listener is not None and still_gone:
                with contextlib.suppress(CoordError):
                    await self.store.unlisten(self._listener, still_gone)

    async def _run(self) -> None:
        listener = self._listener
        try:
            while self.readers:
                received = await self.store.next_volatile(listener, self.wait)
                if received is None:
                    continue
                topic = self._channels.get(received[0])
                event = decode_volatile(topic, received[1]) if topic else None
                if event is None:
                    continue
                batch = [event]  # one list for every reader: encoded once for all of them
                for subscription in list(self.readers.get(event.topic, ())):
                    subscription.offer(batch)
        except CoordError as error:
            log.warning("the volatile events listener stopped: %s", error.message)
            for readers in list(self.readers.values()):
                for subscription in list(readers):
                    subscription.fail(error)
        finally:
            async with self._lock:
                if self._listener is listener and not self.readers:
                    self._listener = None
                    with contextlib.suppress(Exception):
                        await listener.aclose()
                elif self._listener is listener and self.readers and self._error_free():
                    # A subscriber joined while this reader was leaving: keep listening.
                    self._task = asyncio.create_task(self._run(), name="coord-events-volatile")

    def _error_free(self) -> bool:
        return not any(s._error for readers in self.readers.values() for s in readers)


@dataclass(eq=False)
class VolatileSubscription:
    """One volatile Subscribe stream over exact topic names."""

    hub: VolatileHub
    topics: list[str]
    heartbeat: float
    open_ms: int = 0
    _buffer: deque[Frame | VolatileGapFrame] = field(default_factory=deque)
    _buffered: int = 0
    _last: dict[str, int] = field(default_factory=dict)
    _wake: Wake = field(default_factory=Wake)
    _error: CoordError | None = None

    async def open(self) -> None:
        self.open_ms = await self.hub.hub.redis_now_ms()
        await self.hub.join(self, self.topics)
        self._buffer.append(SubscribedFrame([(t, ZERO_ID) for t in self.topics], self.open_ms))

    async def close(self) -> None:
        task = self.hub.leave(self)
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    def offer(self, batch: list[StoredEvent]) -> None:
        """Queue ``batch`` (one event, as a list the other readers share)."""
        event = batch[0]
        last = self._last.get(event.topic, 0)
        if self._buffered >= self.hub.buffer_events:
            return  # dropped: the next message's number shows the hole
        if last and event.sequence > last + 1:
            self._buffer.append(VolatileGapFrame(event.topic, last, event.sequence))
        self._last[event.topic] = event.sequence
        self._buffer.append(EventsFrame(batch))
        self._buffered += 1
        self._wake.set()

    def fail(self, error: CoordError) -> None:
        self._error = BackendUnavailable(f"the volatile listener stopped ({error.message})")
        self._wake.set()

    async def frames(self) -> AsyncIterator[Frame | VolatileGapFrame]:
        while True:
            if self._error is not None:
                raise self._error
            if not self._buffer:
                self._wake.clear()
                await self._wake.wait(self.heartbeat)
                if self._error is not None:
                    raise self._error
                if not self._buffer:
                    yield ProgressFrame([])
                    continue
            frame = self._buffer.popleft()
            if isinstance(frame, EventsFrame):
                events = merge_events(frame, self._buffer)
                self._buffered -= len(events)
                frame = EventsFrame(events)
            yield frame
