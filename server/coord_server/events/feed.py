"""One topic's reader: the only XREAD BLOCK loop on that topic in this server process.

A :class:`Feed` loops on XREAD BLOCK from its cursor (the newest id it has read), pushing each batch
into the buffers of the subscriptions that joined it and waking the topic's consumer-group sessions.
The :class:`~.hub.Hub` creates it with the first reference and stops it when the last one goes. A
reader that fails ends every joined subscription with an error carrying its cursors, so the clients
resume without loss.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..errors import BackendUnavailable, CoordError
from ..redis import deadline
from .frames import chunk_events
from .store import StoredEvent
from .topics import ZERO_ID, StreamId

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
