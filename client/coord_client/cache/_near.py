"""The near cache: entries kept in this process, dropped when the server says they changed.

    near = NearCache(prefixes=["user:"], max_entries=50_000)
    with Client(near_cache=near) as client:
        client.cache.get("user:42")     # from the server; kept
        client.cache.get("user:42")     # from memory: no network at all
        near.stats                      # hits, misses, invalidations, flushes...

How it stays correct
--------------------
The client keeps one ``WatchInvalidations`` stream open (a thread for :class:`~coord_client.Client`,
a task for :class:`~coord_client.AsyncClient`) for the watched prefixes and keys. The server sends
``ready`` once its Redis subscription is confirmed, then one invalidation per change to a watched
key, from any client through any Coord server, numbered 1, 2, 3...

- Entries are kept only while the stream is ready, and only for watched keys. Until then, and from
  the moment the stream breaks until a new one is ready, every read goes to the server.
- An invalidation drops its key; a flush, a hole in the numbering or the end of the stream drops
  everything. The stream reconnects by itself (backing off from 50 ms to 2 s). It asks for batches:
  a busy server sends the invalidations waiting for it as one message, applied in order, each as if
  it had come alone.
- New values in place (``values=True``, the default): the stream asks for the new entry with each
  invalidation of a Set that can carry one (a small untagged value; see the server's
  COORD_CACHE_PUSH_VALUE_MAX). Such an entry replaces the key's local entry when it is newer than it
  (a higher version), so a hot key written now and then by another client stays a hit. It never
  creates an entry (a cached miss or a key not held is only dropped: the cache keeps what its reads
  chose), and an entry of the same version stays as it is (a Touch changed its expiry, not its
  version). Since the changes of a key come in order and versions only grow, an entry replaced so
  is the key's newest; since this client's own writes drop the key (below), and the entry a read
  brings back is at least as new as the write, a pushed entry older than this client's write is
  never kept.
- A read in flight when its key is invalidated (or everything is dropped) does not keep its answer,
  which may predate the change: each read notes the invalidation count when it starts, and its answer
  is kept only if its key saw no invalidation since (and no flush, no reconnect).
- Read-your-writes: every write through this client (set, batch_set, delete, increment, touch)
  drops its keys before it is sent and again when it is answered, so the next read of the writing
  client goes to the server and sees the write, even before the server's invalidation arrives.
- Expiry: an entry is never served past its ``expire_time`` (which is by Redis's clock). It is kept
  until ``expire_time - expiry_margin`` by this machine's wall clock, converted to the monotonic
  clock when stored (a later step of the wall clock changes nothing). This assumes the two clocks
  agree within ``expiry_margin`` (50 ms by default; NTP keeps hosts far closer): a client clock
  that is behind Redis's by more could serve an entry for up to the difference past its expiry.
- Misses are kept too (a key that does not exist), until a write creates it: that write is an
  invalidation like any other. ``cache_misses=False`` keeps only hits.
- One read per key at a time: reads of a key whose read is already on its way to the server wait
  for its answer instead (a hot key just invalidated is read by many callers at once), as long as
  nothing dropped the key since that read started; if its answer is not kept, each asks the server.
- An asyncio client's hits await nothing, so every ``YIELD_EVERY`` hits a read yields to the event
  loop once: a caller reading in a tight loop cannot starve the task that applies invalidations.
- Bounds: at most ``max_entries`` entries and ``max_bytes`` bytes (each entry counted as its key,
  its value and ``ENTRY_OVERHEAD``), least recently used dropped first; a value larger than
  ``max_bytes`` is never kept.

Every Coord server on the Redis must publish invalidations (COORD_CACHE_INVALIDATIONS, on by
default): a server with it off refuses the stream, and the near cache then stays empty, retrying
every ``PERMANENT_RETRY`` seconds. A write made to Redis by anything but Coord's own scripts
(``FLUSHALL``, another program) is not seen.

A dead connection to the server is found by gRPC keepalive (the client turns it on with a near
cache: a ping every 10 s, 5 s to answer), so a frozen or unreachable server costs the near cache
within about 15 s: it then reads from the server, or fails as the server does.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from coord.cache.v1 import cache_pb2

from .._base import AsyncTransport, Transport
from ._codec import entry_of
from .models import Entry

log = logging.getLogger("coord_client.cache")

ENTRY_OVERHEAD = 100  # bytes counted per entry beyond its key and value (the Python objects)
RETRY_MIN, RETRY_MAX = 0.05, 2.0  # seconds between reconnections, doubling, jittered
PERMANENT_RETRY = 30.0  # seconds between attempts after an error a retry cannot fix soon
# Errors that another attempt in a moment would get again (a setting, a permission, bad prefixes).
_PERMANENT = frozenset(
    {
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
# Channel options a client with a near cache adds (the caller's own options win): a server that
# stops answering is found within about 15 s, so hits stop being served from memory.
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
)
_NEVER = float("inf")


@dataclass(frozen=True)
class NearCacheStats:
    """What a near cache did so far (counters) and holds now.

    ``hits`` are reads answered from memory, ``misses`` reads of watched keys that went to the server
    or waited for such a read (also while the stream was not ready). ``invalidations`` and
    ``flushes`` count what the server sent (a hole in the numbering counts as a flush);
    ``evictions`` entries dropped for the bounds; ``reconnects`` streams opened after the first;
    ``updates`` the invalidations whose new entry was kept in place of the old one.
    """

    hits: int
    misses: int
    invalidations: int
    flushes: int
    evictions: int
    reconnects: int
    entries: int
    bytes: int
    ready: bool
    updates: int = 0  # entries replaced by the new entry an invalidation carried (values=True)


@dataclass(slots=True)
class _Local:
    entry: Entry
    until: float  # time.monotonic() after which it is not served
    size: int


class Ticket:
    """A read that went to the server, what its answer must not have missed to be kept, and the
    flight other reads of the key may join (None for a read of a batch)."""

    __slots__ = ("count", "flight", "generation", "key")

    def __init__(self, key: str, generation: int, count: int) -> None:
        self.key = key
        self.generation = generation
        self.count = count
        self.flight: Flight | None = None


class Flight:
    """A read of one key on its way to the server, which other reads of that key wait for instead of
    asking the server again: a hot key that was just invalidated is read by many callers at once.

    A read joins it only while nothing dropped the key since the flight started, so what it gets is
    as fresh as a hit would have been. It gets the answer only if the answer was kept; otherwise
    (``None``: the key changed meanwhile, the read failed) it asks the server itself.
    """

    __slots__ = ("_event", "_future", "entry", "ticket")

    def __init__(self, ticket: Ticket, asynchronous: bool) -> None:
        self.ticket = ticket
        self.entry: Entry | None = None
        self._event = None if asynchronous else threading.Event()
        self._future = asyncio.get_running_loop().create_future() if asynchronous else None

    def finish(self, entry: Entry | None) -> None:
        self.entry = entry
        if self._event is not None:
            self._event.set()
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def wait(self, timeout: float) -> Entry | None:
        """For a sync client: the flight's answer, if kept (waiting at most ``timeout`` seconds)."""
        assert self._event is not None
        self._event.wait(timeout)
        return self.entry

    async def wait_async(self) -> Entry | None:
        """For an asyncio client: the flight's answer, if kept."""
        assert self._future is not None
        await asyncio.shield(self._future)  # a joiner cancelled leaves the flight to the others
        return self.entry


class NearCache:
    """A near cache for one client: ``Client(near_cache=NearCache(...))`` (see the module docstring).

    ``prefixes`` and ``keys`` say what is kept: keys starting with a prefix or equal to a key. With
    neither, every key is (the prefix ``""``). One NearCache serves one client.
    """

    def __init__(
        self,
        *,
        prefixes: Iterable[str] | None = None,
        keys: Iterable[str] = (),
        max_entries: int = 10_000,
        max_bytes: int = 64 << 20,
        expiry_margin: float = 0.05,
        cache_misses: bool = True,
        values: bool = True,
    ) -> None:
        watched_keys = _strings(keys, "keys")
        watched_prefixes = _strings(prefixes if prefixes is not None else (), "prefixes")
        if not watched_prefixes and not watched_keys:
            watched_prefixes = [""]
        for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0 <= expiry_margin < 3600:
            raise ValueError("expiry_margin must be seconds between 0 and 3600")
        self.prefixes: tuple[str, ...] = tuple(dict.fromkeys(watched_prefixes))
        self.keys: frozenset[str] = frozenset(watched_keys)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.expiry_margin = float(expiry_margin)
        self.cache_misses = cache_misses
        self.values = bool(values)
        self._every = "" in self.prefixes
        self._starts = tuple(p for p in self.prefixes if p)
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Local] = OrderedDict()
        self._bytes = 0
        self._ready = False
        self._generation = 0  # bumped whenever everything is dropped (flush, ready, stream lost)
        self._count = 0  # invalidations so far (received or made by this client's writes)
        self._reads: dict[str, int] = {}  # key -> reads of it in flight
        self._flights: dict[str, Flight] = {}  # key -> the read of it others may join
        self._asynchronous = False  # the client's kind: how a read waits for a flight
        self._dropped: dict[str, int] = {}  # key -> _count at its last invalidation, while read
        self._expected = 1  # the sequence number the next stream message must carry
        self._hits = self._misses = self._invalidations = self._flushes = 0
        self._evictions = self._reconnects = self._updates = 0
        self._runner: _Runner | None = None
        self.last_error: Exception | None = None  # why the stream last ended or failed

    def __repr__(self) -> str:
        state = "ready" if self._ready else "not ready"
        return f"<NearCache {state} entries={len(self._entries)} prefixes={list(self.prefixes)}>"

    # -- what callers see ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether reads are answered from memory now (the stream is ready)."""
        return self._ready

    @property
    def stats(self) -> NearCacheStats:
        with self._lock:
            return NearCacheStats(
                self._hits,
                self._misses,
                self._invalidations,
                self._flushes,
                self._evictions,
                self._reconnects,
                len(self._entries),
                self._bytes,
                self._ready,
                self._updates,
            )

    def watches(self, key: str) -> bool:
        """Whether ``key`` is kept here (it starts with a watched prefix or is a watched key)."""
        return self._every or key in self.keys or key.startswith(self._starts)

    def clear(self) -> None:
        """Drop every entry (reads in flight keep nothing either)."""
        with self._lock:
            self._drop_all()

    # -- the read and write paths of the cache API ---------------------------------------------------

    def read(self, key: str, *, join: bool = True) -> Entry | Ticket | Flight | None:
        """The entry of ``key`` from memory (a hit); else a flight of the key to wait for (``join``);
        else a ticket for keeping the server's answer; None when the key is not watched or the
        stream is not ready (nothing to keep)."""
        if key.__class__ is not str or not self.watches(key):
            return None
        with self._lock:
            local = self._entries.get(key)
            if local is not None:
                if local.until > time.monotonic():
                    self._entries.move_to_end(key)
                    self._hits += 1
                    return local.entry
                self._remove(key)  # expired
            self._misses += 1
            if not self._ready:
                return None
            if join:
                flight = self._flights.get(key)
                if (
                    flight is not None
                    and flight.ticket.generation == self._generation
                    and self._dropped.get(key, -1) <= flight.ticket.count
                ):
                    return flight
            self._reads[key] = self._reads.get(key, 0) + 1
            ticket = Ticket(key, self._generation, self._count)
            if join:  # the key's flight from now on (an outdated one still finishes for its joiners)
                ticket.flight = self._flights[key] = Flight(ticket, self._asynchronous)
            return ticket

    def settle(self, ticket: Entry | Ticket | Flight | None, entry: Entry | None) -> None:
        """The server answered the read of ``ticket`` with ``entry`` (None: it failed): keep it if
        nothing may have changed it since the read started."""
        if ticket is None or ticket.__class__ is not Ticket:
            return
        assert isinstance(ticket, Ticket)
        key = ticket.key
        with self._lock:
            left = self._reads[key] - 1
            dropped = self._dropped.get(key, -1)
            if left:
                self._reads[key] = left
            else:
                del self._reads[key]
                self._dropped.pop(key, None)
            flight = ticket.flight
            if flight is not None and self._flights.get(key) is flight:
                del self._flights[key]
            kept = (
                entry is not None
                and self._ready
                and ticket.generation == self._generation
                and dropped <= ticket.count  # else invalidated while read: it may predate the change
                and self._keep(key, entry)
            )
            if flight is not None:
                flight.finish(entry if kept else None)

    def wrote(self, keys: Sequence[str]) -> None:
        """This client writes ``keys`` (called before the write is sent and once it is answered)."""
        with self._lock:
            for key in keys:
                self._invalidate(key)

    # -- the stream ------------------------------------------------------------------------------------

    def request(self) -> cache_pb2.WatchInvalidationsRequest:
        return cache_pb2.WatchInvalidationsRequest(
            prefixes=list(self.prefixes), keys=sorted(self.keys), values=self.values, batch=True
        )

    def opened(self, first: bool) -> None:
        """A new stream was opened: its numbering starts at 1."""
        with self._lock:
            self._expected = 1
            if not first:
                self._reconnects += 1

    def received(self, message: cache_pb2.WatchInvalidationsResponse) -> bool:
        """Apply one stream message; True when it was ``ready``."""
        kind = message.WhichOneof("kind")
        with self._lock:
            if message.sequence != self._expected:
                # A hole: something may be missing. (A ready never comes after a hole.)
                log.warning(
                    "near cache: message %d after %d; dropping every entry",
                    message.sequence,
                    self._expected - 1,
                )
                self._flushes += 1
                self._drop_all()
            self._expected = message.sequence + 1
            if kind == "invalidation":
                self._apply(message.invalidation)
            elif kind == "batch":  # several, in order (a busy stream: the request asks for batches)
                for invalidation in message.batch.invalidations:
                    self._apply(invalidation)
            elif kind == "flush":
                self._flushes += 1
                self._drop_all()
            elif kind == "ready":
                self._drop_all()
                self._ready = message.sequence == 1
                return self._ready
        return False

    def lost(self, error: Exception | None) -> None:
        """The stream ended (or could not be opened): nothing is vouched for any more."""
        with self._lock:
            self._ready = False
            self._drop_all()
        if error is not None:
            self.last_error = error

    # -- inside the lock ---------------------------------------------------------------------------

    def _keep(self, key: str, entry: Entry) -> bool:
        if entry.found:
            if entry.expire_time is None:
                return False
            now = time.monotonic()  # read first: the conversion errs on the early side
            left = entry.expire_time.timestamp() - time.time() - self.expiry_margin
            if left <= 0:
                return False
            until = now + left
        elif self.cache_misses:
            until = _NEVER  # until a write creates it, which is an invalidation
        else:
            return False
        size = len(key) + len(entry.value) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return False
        self._remove(key)
        self._entries[key] = _Local(entry, until, size)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= oldest.size
            self._evictions += 1
        return key in self._entries

    def _apply(self, invalidation: cache_pb2.Invalidation) -> None:
        self._invalidations += 1
        if invalidation.HasField("entry"):
            self._update(invalidation.key, invalidation.entry)
        else:
            self._invalidate(invalidation.key)

    def _remove(self, key: str) -> None:
        local = self._entries.pop(key, None)
        if local is not None:
            self._bytes -= local.size

    def _invalidate(self, key: str) -> None:
        self._count += 1
        if key in self._reads:
            self._dropped[key] = self._count
        self._remove(key)

    def _update(self, key: str, pushed: cache_pb2.Entry) -> None:
        """An invalidation that carries the key's new entry: it replaces an older local entry."""
        local = self._entries.get(key)
        self._invalidate(key)  # reads in flight keep nothing, whatever happens to the entry
        if local is None or not local.entry.found or local.entry.version > pushed.version:
            return  # no entry (or a miss, or a newer one read ahead of the stream) to replace
        if local.entry.version == pushed.version:
            self._entries[key] = local  # the same write: the local entry is as new (its expiry more)
            self._bytes += local.size
        elif self._keep(key, entry_of(pushed)):
            self._updates += 1

    def _drop_all(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._bytes = 0

    # -- the runner ------------------------------------------------------------------------------------

    def attach(self, runner: _Runner, *, asynchronous: bool) -> None:
        if self._runner is not None:
            raise ValueError("this NearCache already serves another client; make one per client")
        self._runner = runner
        self._asynchronous = asynchronous

    @property
    def runner(self) -> _Runner | None:
        return self._runner


def _strings(values: Iterable[str], name: str) -> list[str]:
    if isinstance(values, str | bytes):
        raise TypeError(f"{name} must be a list of strings, not a single string")
    out = list(values)
    for i, value in enumerate(out):
        if not isinstance(value, str):
            raise TypeError(f"{name}[{i}] must be a str, not {type(value).__name__}")
        if any(c in value for c in "\x00\r\n"):
            raise ValueError(f"{name}[{i}] must not contain NUL, CR or LF")
    return out


def settle_many(
    near: NearCache, local: list[Entry | Ticket | Flight | None], fetched: list[Entry] | None
) -> None:
    """Settle the tickets of a batch read: ``fetched`` holds the answers of the reads that were not
    hits, in order (None: the read failed)."""
    answers = iter(fetched) if fetched is not None else None
    for ticket in local:
        if ticket.__class__ is not Entry:
            near.settle(ticket, next(answers) if answers is not None else None)


def merged(local: list[Entry | Ticket | Flight | None], fetched: list[Entry]) -> list[Entry]:
    answers = iter(fetched)
    return [t if isinstance(t, Entry) else next(answers) for t in local]


class _Backoff:
    """Seconds to wait before the next stream: doubling from RETRY_MIN to RETRY_MAX, jittered."""

    def __init__(self) -> None:
        self.delay = RETRY_MIN

    def after(self, error: Exception | None) -> float:
        if isinstance(error, grpc.RpcError) and error.code() in _PERMANENT:
            return PERMANENT_RETRY
        delay, self.delay = self.delay, min(self.delay * 2, RETRY_MAX)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.delay = RETRY_MIN


def _log_end(error: Exception | None, delay: float) -> None:
    if isinstance(error, grpc.RpcError) and error.code() in _PERMANENT:
        log.warning(
            "near cache: the server refused the invalidation stream (%s: %s); reads go to the server, "
            "trying again in %gs",
            error.code().name,
            error.details(),
            delay,
        )
    else:
        log.info("near cache: invalidation stream ended (%s); reconnecting", error)


class _Runner:
    """What both runners share: the near cache, the stream's method and the transport."""

    def __init__(self, near: NearCache, method: Any, metadata: Callable[[], Any]) -> None:
        self.near = near
        self._method = method  # the stub's WatchInvalidations
        self._metadata = metadata  # asked for each stream: the token may have rotated
        self._closed = False
        self._call: Any = None
        self._backoff = _Backoff()
        self.streams = 0  # opened so far

    def _open(self) -> Any:
        self.near.opened(self.streams == 0)
        self.streams += 1
        self._call = call = self._method(self.near.request(), metadata=self._metadata())
        if self._closed:  # closed while opening: end it at once
            call.cancel()
        return call

    def _take(self, message: cache_pb2.WatchInvalidationsResponse) -> None:
        if self.near.received(message):
            self._backoff.reset()


class SyncRunner(_Runner):
    """The stream of a sync client, read by a daemon thread."""

    def __init__(self, near: NearCache, method: Any, transport: Transport) -> None:
        super().__init__(near, method, lambda: transport.metadata)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="coord-near-cache", daemon=True)
        near.attach(self, asynchronous=False)
        self._thread.start()

    def _main(self) -> None:
        while not self._closed:
            error: Exception | None = None
            try:
                for message in self._open():
                    self._take(message)
            except grpc.RpcError as exc:
                error = exc
            except Exception as exc:  # a closed channel, or worse: never a silent stale cache
                error = exc
            self.near.lost(error)
            if self._closed:
                return
            delay = self._backoff.after(error)
            _log_end(error, delay)
            self._stop.wait(delay)

    def close(self) -> None:
        """Stop the stream (the client closes); the near cache stops answering from memory."""
        self._closed = True
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self.near.lost(None)


class AsyncRunner(_Runner):
    """The stream of an asyncio client, read by a task of the client's loop."""

    def __init__(self, near: NearCache, method: Any, transport: AsyncTransport) -> None:
        super().__init__(near, method, lambda: transport.metadata)
        self._task: asyncio.Task[None] | None = None
        near.attach(self, asynchronous=True)

    def start(self) -> None:
        """Start the task (at once if the loop runs, else on the first read: see AsyncCacheAPI)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._main(), name="coord-near-cache")

    @property
    def started(self) -> bool:
        return self._task is not None

    async def _main(self) -> None:
        while not self._closed:
            error: Exception | None = None
            try:
                async for message in self._open():
                    self._take(message)
            except grpc.aio.AioRpcError as exc:
                error = exc
            except asyncio.CancelledError:
                self.near.lost(None)
                raise
            except Exception as exc:  # never a silent stale cache
                error = exc
            self.near.lost(error)
            if self._closed:
                return
            delay = self._backoff.after(error)
            _log_end(error, delay)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        call = self._call
        if call is not None:
            call.cancel()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.near.lost(None)


__all__ = [
    "KEEPALIVE_OPTIONS",
    "AsyncRunner",
    "Flight",
    "NearCache",
    "NearCacheStats",
    "SyncRunner",
    "Ticket",
    "merged",
    "settle_many",
]
