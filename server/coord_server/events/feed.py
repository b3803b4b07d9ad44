"""One topic's live position in this server process: the one reader of that topic here.

A :class:`Feed` is a stream of the process's :class:`~.readers.StreamReaders`, which reads it along
with many other topics in one XREAD BLOCK: the feed gives its key (from its tenant's store) and its
cursor (the newest id it has read), and pushes each batch it is handed into the buffers of the
subscriptions that joined it, waking the topic's consumer-group sessions. The :class:`~.hub.Hub`
creates it with the first reference and stops it when the last one goes. A feed whose reader fails
ends every joined subscription with an error carrying its cursors, so the clients resume without loss.

Starting is bounded: the feed reads the topic's position (XINFO), then joins a reader; whatever ends
that (an answer, an error, a timeout, a cancellation), ``ready`` is set, with ``error`` when it did not
start, so that no Subscribe or Consume stream waits on it forever.

Trimming can overtake the reader itself: when more than the topic's max length is published between
two of its reads, the oldest of those events are trimmed before it reads them. That is only possible
when a read returns at least ``min(LIVE_BATCH, max length)`` events (trimming keeps at least the max
length, all of them then unread), so only such a batch costs one XINFO to check; if events after the
cursor were removed, every joined subscriber gets a Gap before the batch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..errors import BackendUnavailable, CoordError
from ..redis import StreamEntry, deadline
from .frames import chunk_events
from .gaps import overtaken
from .readers import LIVE_BATCH
from .store import StoredEvent
from .topics import ZERO_ID, StreamId, format_id

if TYPE_CHECKING:
    from .hub import Hub
    from .subscription import Subscription

log = logging.getLogger(__name__)


class Feed:
    """The one Redis reader of a topic in this process (a stream of the process's readers)."""

    def __init__(self, hub: Hub, topic: str) -> None:
        self.hub = hub
        self.topic = topic
        self.key = hub.store.stream_key(topic)
        self.cursor: StreamId = ZERO_ID
        self.refs = 0
        self.subscribers: set[Subscription] = set()
        self.wakers: set[asyncio.Event] = set()
        self.ready = asyncio.Event()
        self.error: CoordError | None = None
        # Set when the last reference goes: the stream leaves its reader at once, and a batch read
        # for it meanwhile is dropped.
        self.stopped = False
        # Assumes every server of the deployment trims to the same max length (or this one to the
        # smallest): a batch smaller than this cannot hide trimmed events.
        self._suspect = min(LIVE_BATCH, hub.store.retention.max_length)
        # The feed outlives the RPC that happened to start it: no RPC deadline bounds its reads.
        self.task = asyncio.create_task(
            self._start(), name=f"coord-events-feed:{topic}", context=deadline.detached_context()
        )

    async def _start(self) -> None:
        started = False
        try:
            self.cursor = (await self.hub.store.position(self.topic)).last_id
            if not self.stopped:
                await self.hub.readers.add(self)
                if self.stopped:  # the last reference went while it was being added
                    self.hub.readers.remove(self)
            started = True
        except CoordError as error:
            self.fail(error)
        except Exception:
            log.exception("events reader for topic %r failed to start", self.topic)
        finally:
            if not started and self.error is None:
                # An unexpected error, or a cancellation: still an answer for whoever waits.
                self.fail(BackendUnavailable("the topic reader did not start; resume from your cursors"))
            self.ready.set()

    def stop(self) -> None:
        """The last reference went: stop reading (the hub has forgotten this feed already)."""
        self.stopped = True
        self.hub.readers.remove(self)

    # -- what the reader calls -----------------------------------------------------------------------

    def deliver(self, entries: list[StreamEntry]) -> asyncio.Task[None] | None:
        """Take a batch read after the cursor; an awaitable when it must first check for trimming."""
        if self.stopped or self.error is not None:
            return None
        events = self.hub.store.events_of(self.topic, entries)
        if not events:
            return None
        if len(events) >= self._suspect:
            return asyncio.create_task(self._checked_dispatch(events))
        self._dispatch(events)
        return None

    def fail(self, error: CoordError) -> None:
        """The reader failed (or the feed could not start): every joined stream ends, with its cursors."""
        if self.error is not None:
            return
        log.debug("events reader for topic %r stopped: %s", self.topic, error.message)
        self.error = error
        self.ready.set()
        self.hub.forget(self)
        self.hub.readers.remove(self)
        for subscriber in list(self.subscribers):
            subscriber.fail_interrupted(error)
        self.subscribers.clear()
        for waker in self.wakers:
            waker.set()

    # -- internals -----------------------------------------------------------------------------------

    async def _checked_dispatch(self, events: list[StoredEvent]) -> None:
        try:
            trimmed = overtaken(await self.hub.store.position(self.topic), self.cursor)
        except CoordError as error:
            self.fail(error)
            return
        except Exception:
            log.exception("events reader for topic %r failed", self.topic)
            self.fail(BackendUnavailable("the topic reader failed; resume from your cursors"))
            return
        if not self.stopped and self.error is None:
            self._dispatch(events, trimmed)

    def _dispatch(self, events: list[StoredEvent], trimmed: bool = False) -> None:
        # One synchronous step: every joined subscriber gets the batch before the cursor moves. Each
        # chunk fits one reply and is one list shared by all subscribers (encoded once for all).
        if trimmed:
            # Retention working as configured, said to the subscribers; info, not a fault of Coord.
            log.info(
                "events of topic %r were trimmed before its reader read them (after %s)",
                self.topic,
                format_id(self.cursor),
            )
            for subscriber in list(self.subscribers):
                subscriber.offer_gap(self.topic, events[0].id)
        for chunk in chunk_events(events):
            for subscriber in list(self.subscribers):
                if not subscriber.offer(self.topic, chunk):
                    self.subscribers.discard(subscriber)
        self.cursor = events[-1].id
        for waker in self.wakers:
            waker.set()
