"""Fan-out inside one server process, per tenant: the feeds of a tenant's topics and the
subscriptions reading them.

Each tenant has its own :class:`Hub` (tenant.py), reaching Redis only through that tenant's store.
It hands out one :class:`~.feed.Feed` per topic (the topic's only Redis reader in this process),
shared by reference count between Subscribe and Consume streams; a feed runs exactly while something
holds a reference to it. The feeds of every hub are read by the process's one set of readers
(readers.py): many topics per connection, a bounded number of connections. The hub also keeps a
view of the Redis clock, finds new topics for the tenant's pattern subscriptions (also those created
through other server processes) in the tenant's registry only, and tracks the tasks being stopped so
that a closing stream can wait for them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import BackendUnavailable, CoordError
from ..redis import deadline
from .feed import Feed
from .readers import StreamReaders
from .store import EventsStore
from .subscription import common_prefix

if TYPE_CHECKING:
    from .subscription import Subscription

log = logging.getLogger(__name__)

CLOCK_RESYNC = 5.0  # seconds between reads of the Redis clock
SETTLE_TIMEOUT = 5.0  # longest a closing stream waits for its cancelled readers
START_TIMEOUTS = 4  # Redis timeouts a stream waits at most for a topic's feed to start


class Hub:
    """Owns one tenant's feeds in this process and its pattern subscriptions waiting for new topics."""

    def __init__(
        self,
        store: EventsStore,
        readers: StreamReaders,
        *,
        block_ms: int,
        buffer_events: int,
        pattern_refresh: float,
    ) -> None:
        self.store = store
        self.readers = readers
        # A feed's start is two bounded Redis calls (XINFO, and on a Cluster the slot map): waiting
        # longer than a few Redis timeouts for it means something is wrong, and the caller resumes.
        self.start_timeout = START_TIMEOUTS * store.redis_timeout
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
        """A ready feed for ``topic``, with one more reference; pair with :meth:`detach`.

        Raises the feed's error when it could not start (BackendUnavailable...). The wait is bounded
        twice over: the feed's start sets ``ready`` however it ends (feed.py), and a start that took
        longer than its own Redis calls can (``start_timeout``) is given up here.
        """
        feed = self.feeds.get(topic)
        if feed is None:
            feed = self.feeds[topic] = Feed(self, topic)
        feed.refs += 1
        try:
            async with asyncio.timeout(self.start_timeout):
                await feed.ready.wait()
        except TimeoutError:
            self.detach(feed)
            raise BackendUnavailable(
                "the topic reader did not start in time; resume from your cursors"
            ) from None
        except BaseException:
            self.detach(feed)
            raise
        if feed.error is not None:
            self.detach(feed)
            raise feed.error
        return feed

    def detach(self, feed: Feed) -> asyncio.Task[None] | None:
        """Drop a reference; the last one stops the feed. Returns the feed's start if it is still
        running (the caller may wait for it with :meth:`settle`)."""
        feed.refs -= 1
        if feed.refs <= 0:
            self.forget(feed)
            feed.stop()
            return self.await_task(feed.task)
        return None

    def stop_task(self, task: asyncio.Task[None]) -> asyncio.Task[None] | None:
        """Cancel ``task``; returns it while it has not stopped yet (for :meth:`settle`)."""
        if not task.done():
            task.cancel()
            return self.await_task(task)
        return None

    def await_task(self, task: asyncio.Task[None]) -> asyncio.Task[None] | None:
        if task.done():
            return None
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        return task

    async def settle(self, tasks: Iterable[asyncio.Task[None]] | None = None) -> None:
        """Wait until ``tasks`` (by default every task being stopped in this hub) have really stopped,
        so none outlives the server's Redis client. A closing stream passes the tasks it stopped
        itself: its end (and its status to the client) never waits for other streams' tasks."""
        current = asyncio.current_task()
        chosen = self._stopping if tasks is None else tasks
        pending = {t for t in chosen if t is not current and not t.done()}
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

    def remove_pattern_subscription(self, subscription: Subscription) -> asyncio.Task[None] | None:
        """Forget ``subscription``; returns the registry poll it stopped, if it was the last one."""
        self.pattern_subscriptions.discard(subscription)
        stopped = None
        if not self.pattern_subscriptions and self._directory_task is not None:
            stopped = self.stop_task(self._directory_task)
            self._directory_task = None
        return stopped

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
