"""Fan-out inside one server process, per tenant: the feeds of a tenant's topics and the
subscriptions reading them.

Each tenant has its own :class:`Hub` (tenant.py), reaching Redis only through that tenant's store.
It hands out one :class:`~.feed.Feed` per topic (the topic's only Redis reader in this process),
shared by reference count between Subscribe and Consume streams; a feed runs exactly while something
holds a reference to it. It also keeps a view of the Redis clock, finds new topics for the tenant's
pattern subscriptions (also those created through other server processes) in the tenant's registry
only, and tracks the tasks being stopped so that a closing stream can wait for them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import CoordError
from ..redis import deadline
from .feed import Feed
from .store import EventsStore
from .subscription import common_prefix

if TYPE_CHECKING:
    from .subscription import Subscription

log = logging.getLogger(__name__)

CLOCK_RESYNC = 5.0  # seconds between reads of the Redis clock
SETTLE_TIMEOUT = 5.0  # longest a closing stream waits for its cancelled readers


class Hub:
    """Owns one tenant's feeds in this process and its pattern subscriptions waiting for new topics."""

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
            self._directory_task = asyncio.create_task(
                self._poll_directory(), name="coord-events-topics", context=deadline.detached_context()
            )

    def remove_pattern_subscription(self, subscription: Subscription) -> None:
        self.pattern_subscriptions.discard(subscription)
        if not self.pattern_subscriptions and self._directory_task is not None:
            self.stop_task(self._directory_task)
            self._directory_task = None

    async def _poll_directory(self) -> None:
        # Topics created through other server processes are found here, one registry scan per
        # interval for the whole process (not per subscription).
        while self.pattern_subscriptions:
            await asyncio.sleep(self.pattern_refresh)
            prefixes = {s.scan_prefix for s in self.pattern_subscriptions}
            prefix = common_prefix(prefixes)
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
