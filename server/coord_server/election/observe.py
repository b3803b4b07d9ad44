"""Observe streams: the state of an election, then every change of leadership in order. No gRPC.

Each election's changes are a Redis stream (its log, ``scripts/_election.lua``), read live by this
process's stream readers (``events/readers.py``: many streams per XREAD BLOCK, on a bounded number
of connections, shared with the Events service). One :class:`Feed` per election (and tenant) is that
stream's only reader here, shared by every Observe stream of the election, and hands each batch to
its :class:`Observer` s.

**No change is missed.** Each observer has its own cursor (the revision of the last change it sent).
A feed hands over every batch with the feed's cursor before it (``prev``): when ``prev`` is past the
observer's cursor, the changes in between were read before the observer joined (or were dropped, see
below), and the observer reads them from Redis first, through the ``observe`` script, which also
says when the log no longer has them all (a gap: the stream then sends the current state again,
flagged). Changes at or before the cursor are skipped, so the order holds and nothing is sent twice.
An observer that falls far behind (its clients reads slowly) has its queued batches dropped for one
mark that makes it read the changes from Redis; so does a live read that returned a full batch
(trimming could have removed changes before the reader got to them: only the script can tell).

**Leases that run out.** A leader whose grant expires without any script of the election running
(its server died) is noticed by the next script that looks. While a feed has observers and someone
leads, the feed asks at that leader's lease expiry (the ``leader`` script), which logs the end: every
observer sees "no leader" within a few milliseconds of the expiry, not at the next campaign. It also
asks every ``look_every`` seconds (COORD_LOCK_FALLBACK) in between, since a keep-alive with a shorter
TTL brings the expiry closer without a change in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeAlias

from ..errors import CoordError
from ..events.readers import StreamReaders
from ..events.topics import StreamId, format_id, parse_id
from ..redis import StreamEntry, deadline
from .store import PAGE, Catchup, Change, ChangeKind, ElectionStore, Snapshot, change

log = logging.getLogger(__name__)

# Queued batches an observer may have before they are dropped for a read from Redis.
MAX_BEHIND = 256
# How long after a leader's lease expiry (by the Redis clock) the feed asks, and how long it waits
# after a failed ask: the expiry has passed by then, and a Redis outage is not hammered.
EXPIRY_MARGIN_S = 0.005
RETRY_S = 1.0

# A batch for an observer: the feed's cursor before it and the changes read; or why the feed stopped.
Item: TypeAlias = tuple[StreamId, list[Change]] | CoordError


def revision_id(revision: str) -> StreamId:
    """A revision as the stream id it is ('' and anything malformed: before every revision)."""
    return parse_id(revision) or (0, 0)


class Observer:
    """One Observe stream's inbox on a feed."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Item] = asyncio.Queue()

    def push(self, item: Item) -> None:
        if self.inbox.qsize() >= MAX_BEHIND and not isinstance(item, CoordError):
            # Too far behind: forget the queued batches; a mark past them makes the observer read
            # what it missed from Redis (with a gap if the log no longer has it).
            while not self.inbox.empty():
                self.inbox.get_nowait()
            item = (item[0] if not item[1] else revision_id(item[1][-1].revision), [])
        self.inbox.put_nowait(item)


class Feed:
    """The one live reader of an election's log in this process, for one tenant."""

    def __init__(self, feeds: Feeds, name: str, cursor: StreamId) -> None:
        self._feeds = feeds
        self.name = name
        self.key = feeds.store.log_key(name)
        self.cursor = cursor
        self.observers: set[Observer] = set()
        self.error: CoordError | None = None
        self._changed = asyncio.Event()
        # Outlives the RPC that started it: no RPC deadline bounds its calls.
        self._watcher = asyncio.create_task(
            self._watch(), name=f"coord-election-expiry:{name}", context=deadline.detached_context()
        )

    # -- what the readers call (StreamOwner) ---------------------------------------------------------

    def deliver(self, entries: list[StreamEntry]) -> None:
        if self.error is not None or not entries:
            return
        prev = self.cursor
        last = parse_id(_text(entries[-1][0]))
        if last is None:
            return
        self.cursor = last
        if len(entries) >= self._feeds.readers.count:
            # A full batch: trimming may have removed changes before they were read. The observers
            # read them from Redis, which knows.
            item: Item = (last, [])
        else:
            item = (prev, [change(entry_id, fields) for entry_id, fields in entries])
        for observer in self.observers:
            observer.push(item)
        self._changed.set()

    def fail(self, error: CoordError) -> None:
        if self.error is not None:
            return
        self.error = error
        self._feeds.forget(self)
        for observer in self.observers:
            observer.push(error)

    # -- leases that run out -------------------------------------------------------------------------

    async def _watch(self) -> None:
        store = self._feeds.store
        while True:
            self._changed.clear()  # before the look: a change during it is not missed
            try:
                state = await store.leader(self.name)
            except CoordError as error:
                log.debug("election %r: could not look for an expired lease: %s", self.name, error)
                await asyncio.sleep(RETRY_S)
                continue
            pause: float | None = None  # nobody leads: wait for the next change
            if state.leader is not None and state.leader.expire_ms:
                # At most ``look_every`` apart: a keep-alive may have shortened the lease since.
                left = max(0.0, (state.leader.expire_ms - state.now_ms) / 1000) + EXPIRY_MARGIN_S
                pause = min(left, self._feeds.look_every)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._changed.wait()

    def stop(self) -> None:
        self._watcher.cancel()


class Feeds:
    """One tenant's feeds in this process, by election name."""

    def __init__(self, store: ElectionStore, readers: StreamReaders, *, look_every: float) -> None:
        """``look_every``: the longest a feed goes without looking for an expired lease while
        someone leads (a keep-alive with a shorter TTL moves the expiry closer, unlogged)."""
        self.store = store
        self.readers = readers
        self.look_every = look_every
        self._feeds: dict[str, Feed] = {}

    @contextlib.asynccontextmanager
    async def joined(self, name: str, cursor: StreamId) -> AsyncIterator[Observer]:
        """An inbox on ``name``'s feed (started at ``cursor`` if there is none) for the block."""
        observer = Observer()
        feed = self._feeds.get(name)
        if feed is None:
            feed = self._feeds[name] = Feed(self, name, cursor)
            feed.observers.add(observer)
            try:
                await self.readers.add(feed)
            except BaseException as error:
                feed.fail(error if isinstance(error, CoordError) else CoordError("the feed did not start"))
                self._leave(feed, observer)
                raise
        else:
            feed.observers.add(observer)
        # The changes the feed read before this observer joined are read from Redis (see the module
        # docstring): a mark at the feed's cursor asks for them, and is a no-op if there are none.
        observer.push((feed.cursor, []))
        try:
            yield observer
        finally:
            self._leave(feed, observer)

    def _leave(self, feed: Feed, observer: Observer) -> None:
        feed.observers.discard(observer)
        if not feed.observers:
            self.forget(feed)
            self.readers.remove(feed)
            feed.stop()

    def forget(self, feed: Feed) -> None:
        if self._feeds.get(feed.name) is feed:
            del self._feeds[feed.name]


async def observe(feeds: Feeds, name: str, after: str) -> AsyncGenerator[Change, None]:
    """The changes of ``name``: the state first (without ``after``), or the changes after it."""
    store = feeds.store
    first = await store.observe(name, after)
    cursor = revision_id(first.state.revision)
    if not after or first.gap:
        yield _current(first.state, first.gap)
    else:
        cursor = revision_id(after)
        async for found in _read(store, name, first, cursor):
            yield found
            cursor = revision_id(found.revision)
    async with feeds.joined(name, cursor) as observer:
        while True:
            item = await observer.inbox.get()
            if isinstance(item, CoordError):
                raise item
            prev, changes = item
            if prev > cursor:  # changes this observer has not been handed: read them from Redis
                caught = await store.observe(name, format_id(cursor))
                async for found in _read(store, name, caught, cursor):
                    yield found
                    cursor = revision_id(found.revision)
            for found in changes:
                if revision_id(found.revision) > cursor:
                    yield found
                    cursor = revision_id(found.revision)


async def _read(
    store: ElectionStore, name: str, caught: Catchup, cursor: StreamId
) -> AsyncGenerator[Change, None]:
    """What an observe call found after ``cursor``, then the next pages up to the newest change; a
    gap is the current state instead, flagged (its revision is the new cursor)."""
    while True:
        if caught.gap:
            yield _current(caught.state, True)
            return
        for found in caught.changes:
            yield found
            cursor = revision_id(found.revision)
        if len(caught.changes) < PAGE:
            return
        caught = await store.observe(name, format_id(cursor))


def _current(state: Snapshot, gap: bool) -> Change:
    return Change(ChangeKind.CURRENT, state.revision, state.now_ms, leader=state.leader, gap=gap)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
