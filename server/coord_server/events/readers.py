"""The live topic readers of a server process: many topics per XREAD BLOCK, on few connections.

Every topic this process reads live (for its Subscribe and Consume streams) is one *stream* of the
process's :class:`StreamReaders`, shared by every tenant's hub. Its owner is the topic's
:class:`~.feed.Feed`, which gives the stream's key (built by its tenant's store: a tenant's feed only
ever names its own keys) and its cursor, and takes what is read. A :class:`Reader` is one task with
one connection of its own (``redis/blocking.py``): it sends one ``XREAD COUNT n BLOCK ms STREAMS k1 k2
... id1 id2 ...`` for all its streams, hands each stream's entries to its owner (which moves its
cursor), and reads again. Entries of a stream that left the reader meanwhile are dropped.

**Bounds.** A reader takes ``streams_per_read`` streams (COORD_EVENTS_READ_STREAMS) before another
connection is opened, and a Redis node gets at most ``max_readers`` of them (COORD_EVENTS_READERS).
Past that, new streams join the existing readers (the least loaded): more keys per XREAD, never more
connections. So the number of connections blocked in reads is bounded per node, however many topics
are read (it used to be one per topic, until the pool's or Redis's ``maxclients`` limit refused more).

**Redis Cluster.** One XREAD may only name keys of one hash slot (CROSSSLOT otherwise), and a topic's
keys are in the slot of its ``{<topic>}`` tag, so a reader groups its streams by slot. A new stream
goes to a reader of its node already reading its slot (while it has room), else to a new reader, else,
at the bound, to the node's reader with the most slots. A reader of one slot blocks in one XREAD; a
reader of several cannot block on all at once, so it *polls* them: one round trip of pipelined XREADs
without BLOCK, one per slot, every ``POLL_INTERVAL`` (at once again after a round that found events),
or less often with many slots, so that its idle topics cost Redis at most ``POLL_BUDGET`` reads a
second. Only the slots of a node beyond its bound are polled (with those of the reader that took
them); raise COORD_EVENTS_READERS to avoid it.

**A new stream for a blocked reader** must not wait for its block time to run out (seconds; the
events published meanwhile would wait too). Adding a stream bumps the reader's generation; if its
XREAD in flight is of an older generation, it is woken with ``CLIENT UNBLOCK <id>`` sent to the same
node over an ordinary connection (the connection's id was asked with ``CLIENT ID`` when it opened):
the XREAD returns at once as if its time ran out, and the next one names the new stream. Redis
answers 0 when the connection is not blocked at that moment (the XREAD is still on its way, or
answered already), so the wake is tried again after 1, 2, 4... ms, ``WAKE_ATTEMPTS`` times at most,
until the read of the old generation is over; if all fail the stream still joins when the read ends,
within its block time. This needs no key, no write and no extra connection per reader, and works the
same on a single node, Sentinel and a Cluster (the UNBLOCK goes to the reader's node). A stream
leaving does not wake the reader (its key just stays in the current XREAD, its entries dropped),
unless it was the last: an empty reader closes its connection at once.

**Failures.** A read that fails (Redis restarting or unreachable, an error reply, no answer within
its block time plus COORD_REDIS_TIMEOUT) ends the reader: every owner of its streams is told
(:meth:`StreamOwner.fail`), which ends their subscribers with their resume cursors, and the
connection is closed. Streams added later get a new reader with a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from collections.abc import Awaitable
from typing import Protocol

from ..errors import BackendUnavailable, CoordError, ShuttingDown
from ..redis import RedisBackend, StreamEntry, deadline
from ..redis.blocking import BlockingConnection, Route, StreamAfter, refresh_routes, route
from .topics import StreamId, format_id

log = logging.getLogger(__name__)

LIVE_BATCH = 512  # most entries of one stream per read (XREAD COUNT)
POLL_INTERVAL = 0.05  # shortest time between polls of a reader that reads several Cluster slots
POLL_BUDGET = 1000  # most XREADs per second one polling reader sends while its topics are idle
WAKE_ATTEMPTS = 10  # CLIENT UNBLOCKs tried (1, 2, 4... ms apart) while an outdated read may be starting
CLOSE_TIMEOUT = 5.0  # longest the backend's close waits for the readers to stop


class StreamOwner(Protocol):
    """What a reader reads for: a topic's feed."""

    @property
    def key(self) -> str:
        """The stream's Redis key (built by the owner's tenant store)."""

    @property
    def cursor(self) -> StreamId:
        """The newest id the owner has: the next read is after it."""

    def deliver(self, entries: list[StreamEntry]) -> Awaitable[None] | None:
        """Take the entries read after the cursor (and move the cursor). An awaitable when the owner
        must ask Redis something first: the reader awaits it before its next read. Never raises."""

    def fail(self, error: CoordError) -> None:
        """The reader failed: this stream is no longer read."""


_of_backend: weakref.WeakKeyDictionary[RedisBackend, StreamReaders] = weakref.WeakKeyDictionary()


def readers_of(backend: RedisBackend) -> StreamReaders | None:
    """The readers of ``backend`` (one set per backend, so per server process), if made yet."""
    return _of_backend.get(backend)


class StreamReaders:
    """Every live reader of a server process: the bounded set of connections blocked in XREAD."""

    def __init__(
        self,
        backend: RedisBackend,
        *,
        max_readers: int,
        streams_per_read: int,
        block_ms: int,
        count: int = LIVE_BATCH,
    ) -> None:
        self.backend = backend
        self.max_readers = max(1, max_readers)
        self.streams_per_read = max(1, streams_per_read)
        self.block_ms = block_ms
        self.count = count
        self.readers: dict[str, list[Reader]] = {}  # node name -> its readers
        self._reader_of: dict[StreamOwner, Reader] = {}
        self.closed = False

    @classmethod
    def for_backend(
        cls, backend: RedisBackend, *, max_readers: int, streams_per_read: int, block_ms: int
    ) -> StreamReaders:
        """The readers of ``backend``, made on first use; closed with it."""
        readers = _of_backend.get(backend)
        if readers is None:
            readers = cls(
                backend, max_readers=max_readers, streams_per_read=streams_per_read, block_ms=block_ms
            )
            _of_backend[backend] = readers
            backend.on_close(readers.aclose)
        return readers

    # -- streams -----------------------------------------------------------------------------------

    async def add(self, owner: StreamOwner) -> None:
        """Read ``owner``'s stream from now on, after its cursor; pair with :meth:`remove`.

        Raises BackendUnavailable when the key's node cannot be known (a Cluster without a node for
        its slot) and ShuttingDown once the backend is closing.
        """
        where = await route(self.backend, owner.key)
        if self.closed:
            raise ShuttingDown()
        if owner in self._reader_of:
            return
        reader = self._choose(where, owner.key)
        self._reader_of[owner] = reader
        reader.add(owner, where.slot)

    def remove(self, owner: StreamOwner) -> None:
        """Stop reading ``owner``'s stream (at once; entries read for it meanwhile are dropped)."""
        reader = self._reader_of.pop(owner, None)
        if reader is not None:
            reader.remove(owner)

    def reader_of(self, owner: StreamOwner) -> Reader | None:
        return self._reader_of.get(owner)

    def connections(self) -> int:
        """Readers running now (each holds at most one connection)."""
        return sum(len(readers) for readers in self.readers.values())

    def _choose(self, where: Route, key: str) -> Reader:
        node = self.readers.setdefault(where.node, [])
        # A key is read once per XREAD: a reader already reading it is no candidate.
        candidates = [r for r in node if key not in r.streams]
        # On a Cluster, only a reader of the key's slot can name it in the same XREAD.
        same_slot = [r for r in candidates if where.slot is None or where.slot in r.slots]
        roomy = [r for r in same_slot if len(r.streams) < self.streams_per_read]
        if roomy:
            return max(roomy, key=lambda r: len(r.streams))  # packed: the fewest connections
        if len(node) < self.max_readers or not candidates:
            reader = Reader(self, where.node)
            node.append(reader)
            return reader
        if same_slot:
            return min(same_slot, key=lambda r: len(r.streams))
        # At the bound, and no reader of this slot: the node's poller (the reader with most slots).
        return max(candidates, key=lambda r: (len(r.slots), -len(r.streams)))

    def _forget(self, reader: Reader, owners: list[StreamOwner]) -> None:
        node = self.readers.get(reader.node)
        if node is not None and reader in node:
            node.remove(reader)
            if not node:
                del self.readers[reader.node]
        for owner in owners:
            if self._reader_of.get(owner) is reader:
                del self._reader_of[owner]

    async def aclose(self) -> None:
        """Stop every reader and close its connection (the backend's close calls this first)."""
        self.closed = True
        tasks = [reader.task for readers in self.readers.values() for reader in readers]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)


class Reader:
    """One connection reading many streams (one XREAD for all of them, or one per slot on a Cluster)."""

    def __init__(self, pool: StreamReaders, node: str) -> None:
        self.pool = pool
        self.node = node
        self.streams: dict[str, StreamOwner] = {}  # key -> owner
        self.slots: Counter[int | None] = Counter()  # slot -> streams of that slot
        self._slot_of: dict[str, int | None] = {}
        self.connection = BlockingConnection(pool.backend, node)
        self.generation = 0  # bumped by every added stream
        self.reading: int | None = None  # the generation of the blocking XREAD in flight
        self.closed = False
        # What happened, for tests and logs: reads sent, wakes that ended a blocked read.
        self.reads = 0
        self.wakes = 0
        self._changed = asyncio.Event()
        self._waking: asyncio.Task[None] | None = None
        # Outlives every RPC: no RPC deadline bounds its reads.
        self.task = asyncio.create_task(
            self._run(), name=f"coord-events-reader:{node or 'redis'}", context=deadline.detached_context()
        )

    def add(self, owner: StreamOwner, slot: int | None) -> None:
        self.streams[owner.key] = owner
        self._slot_of[owner.key] = slot
        self.slots[slot] += 1
        self.generation += 1
        self._changed.set()
        self._wake_if_blocked()

    def remove(self, owner: StreamOwner) -> None:
        key = owner.key
        if self.streams.get(key) is not owner:
            return
        del self.streams[key]
        slot = self._slot_of.pop(key)
        self.slots[slot] -= 1
        if self.slots[slot] <= 0:
            del self.slots[slot]
        if not self.streams:
            # The last one: end the read now, so the connection closes at once.
            self.generation += 1
            self._changed.set()
            self._wake_if_blocked()

    def stream_keys(self) -> set[str]:
        return set(self.streams)

    # -- the loop ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        error: CoordError | None = None
        try:
            while self.streams and not self.pool.closed:
                await self._read_once()
        except CoordError as exc:
            error = exc
        except Exception:
            log.exception("a topic reader failed")
            error = BackendUnavailable("the topic reader failed; resume from your cursors")
        finally:
            # Synchronous up to the first await: no stream joins this reader from here on.
            self.closed = True
            owners = list(self.streams.values())
            self.streams.clear()
            self.slots.clear()
            self._slot_of.clear()
            self.pool._forget(self, owners)
            if self._waking is not None:
                self._waking.cancel()
            if owners:
                if error is None:
                    # Cancelled: the backend is closing, or something unexpected. Either way no
                    # stream may stay silently unread: its owner is told, and its subscribers resume.
                    error = (
                        ShuttingDown() if self.pool.closed else BackendUnavailable("the topic reader stopped")
                    )
                else:
                    log.warning(
                        "a topic reader stopped (%s); %d topics resume from their cursors",
                        error.message,
                        len(owners),
                    )
                for owner in owners:
                    owner.fail(error)
            await self.connection.aclose()
            if error is not None and (error.metadata or {}).get("state") == "MOVED":
                await refresh_routes(self.pool.backend)

    async def _read_once(self) -> None:
        generation = self.generation
        groups = self._groups()
        snapshot = {key: owner for group in groups for key, owner in group}
        if len(groups) == 1:
            self.reading = generation
            try:
                batches = await self.connection.xread(
                    _positions(groups[0]), self.pool.count, self.pool.block_ms
                )
            finally:
                self.reading = None
        else:
            batches = await self.connection.xread_each([_positions(g) for g in groups], self.pool.count)
        self.reads += 1
        await self._deliver(snapshot, batches)
        if len(groups) > 1 and not batches:
            # Polling several slots: nothing new, so wait (less if a stream is added meanwhile);
            # longer with more slots, so that idle topics cost Redis at most POLL_BUDGET reads/s.
            self._changed.clear()
            if self.generation == generation:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(POLL_INTERVAL, len(groups) / POLL_BUDGET)):
                        await self._changed.wait()

    def _groups(self) -> list[list[tuple[str, StreamOwner]]]:
        by_slot: dict[int | None, list[tuple[str, StreamOwner]]] = {}
        for key, owner in self.streams.items():
            by_slot.setdefault(self._slot_of[key], []).append((key, owner))
        return list(by_slot.values())

    async def _deliver(
        self, snapshot: dict[str, StreamOwner], batches: list[tuple[str, list[StreamEntry]]]
    ) -> None:
        pending: list[Awaitable[None]] = []
        for key, entries in batches:
            owner = snapshot.get(key)
            # Read for an owner that left meanwhile (or whose key a new owner took): dropped, the
            # new one reads after its own cursor.
            if not entries or owner is None or self.streams.get(key) is not owner:
                continue
            work = owner.deliver(entries)
            if work is not None:
                pending.append(work)
        if pending:
            await asyncio.gather(*pending)

    # -- waking a blocked read ---------------------------------------------------------------------

    def _wake_if_blocked(self) -> None:
        if self.reading is not None and (self._waking is None or self._waking.done()):
            self._waking = asyncio.create_task(
                self._wake(), name="coord-events-reader-wake", context=deadline.detached_context()
            )

    async def _wake(self) -> None:
        delay = 0.001
        for _ in range(WAKE_ATTEMPTS):
            if self.closed or self.reading is None or self.reading >= self.generation:
                return  # the outdated read is over: the next one has every stream
            try:
                if await self.connection.wake():
                    self.wakes += 1
                    return
            except Exception as exc:  # the read still ends within its block time
                log.debug("waking a topic reader failed: %r", exc)
                return
            await asyncio.sleep(delay)
            delay *= 2


def _positions(group: list[tuple[str, StreamOwner]]) -> list[StreamAfter]:
    return [(key, format_id(owner.cursor)) for key, owner in group]
