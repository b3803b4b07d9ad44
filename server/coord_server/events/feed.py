"""One topic's reader: the only XREAD BLOCK loop on that topic in this server process.

A :class:`Feed` loops on XREAD BLOCK from its cursor (the newest id it has read), pushing each batch
into the buffers of the subscriptions that joined it and waking the topic's consumer-group sessions.
The :class:`~.hub.Hub` creates it with the first reference and stops it when the last one goes. A
reader that fails ends every joined subscription with an error carrying its cursors, so the clients
resume without loss.

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
from ..redis import deadline
from .frames import chunk_events
from .gaps import overtaken
from .store import StoredEvent
from .topics import ZERO_ID, StreamId, format_id

if TYPE_CHECKING:
    from .hub import Hub
    from .subscription import Subscription

log = logging.getLogger(__name__)

LIVE_BATCH = 512


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
        # The feed outlives the RPC that happened to start it: no RPC deadline bounds its reads.
        self.task = asyncio.create_task(
            self._run(), name=f"coord-events-feed:{topic}", context=deadline.detached_context()
        )

    async def _run(self) -> None:
        store = self.hub.store
        try:
            self.cursor = (await store.position(self.topic)).last_id
            self.ready.set()
            # Assumes every server of the deployment trims to the same max length (or this one to
            # the smallest): a batch smaller than this cannot hide trimmed events.
            suspect = min(LIVE_BATCH, store.retention.max_length)
            while not self.stopped:
                events = await store.wait_after(self.topic, self.cursor, self.hub.block_ms, LIVE_BATCH)
                if not events or self.stopped:
                    continue
                trimmed = len(events) >= suspect and overtaken(await store.position(self.topic), self.cursor)
                if not self.stopped:
                    self._dispatch(events, trimmed)
        except CoordError as error:
            log.warning("events reader for topic %r stopped: %s", self.topic, error.message)
            self._fail(error)
        except Exception:
            log.exception("events reader for topic %r failed", self.topic)
            self._fail(BackendUnavailable("the topic reader failed; resume from your cursors"))

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

    def _fail(self, error: CoordError) -> None:
        self.error = error
        self.ready.set()
        self.hub.forget(self)
        for subscriber in list(self.subscribers):
            subscriber.fail_interrupted(error)
        self.subscribers.clear()
        for waker in self.wakers:
            waker.set()
