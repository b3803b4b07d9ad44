"""WatchInvalidations: the invalidations of cache writes, pushed to near caches.

Every cache write publishes ``<version> <entry key>`` (version 0: deleted) on its tenant's channel
(``CacheKeys.invalidations()``) from inside its script, so in order with every other write of that
key. InvalidateTags publishes ``flush <reason>`` there instead (it cannot name the entries it
invalidated): every stream is sent a flush. This module turns that channel into streams, one per
watching client.

**Values.** A Set of a small untagged value (COORD_CACHE_PUSH_VALUE_MAX, set.lua) publishes the
entry itself: ``=<version> <expiry ms> <compute time ms> <length of the entry key> <entry key><value>``.
A stream that asked for values (``WatchInvalidationsRequest.values``) gets it with the
invalidation, so a near cache holding the key keeps the new value instead of reading it again (a hot
key written now and then stays a hit); other streams get the plain invalidation. A stream's buffer
is bounded in bytes as well as in messages.

**One subscription per process and tenant.** A tenant's :class:`InvalidationHub` subscribes once
(on its own Pub/Sub connection) with its first watcher and fans every message out to the streams
that watch its key: by exact key, or by prefix (``""`` watches every key). It stops ``LINGER``
seconds after its last watcher left, so a client that reconnects does not pay a new SUBSCRIBE and
its confirmation. On Redis Cluster a plain PUBLISH reaches every node over the cluster bus, so the
subscription is made on one node (redis-py picks it by the channel's slot) and hears writes to
every slot, through any Coord server. Sharded Pub/Sub is not used, so Redis 6.2 works too.

**Never a silent gap.** A stream sends ``ready`` only once the subscription is confirmed by Redis
(the ``subscribe`` reply): from then on no write is missed. Whenever that can no longer be vouched
for, every stream is told to drop everything (``flush``):

- the subscription failed (its connection closed, an error): a flush at once, so that clients stop
  serving what they hold; then the hub subscribes again (backing off) and sends a second flush once
  the new subscription is confirmed (what a client cached in between may have missed a write). A
  subscription that is not back within ``LOST_GRACE`` Redis timeouts ends its ready streams with
  UNAVAILABLE instead: their clients read from the server until a new stream is ``ready``;
- the subscription went silent (a half-open connection tells nothing): after ``PROBE_INTERVAL``
  seconds without a message, the hub publishes a probe on a channel of its own (subscribed on the
  same connection) through an ordinary connection; a probe that does not come back within the probe
  timeout counts as a failed subscription;
- a stream fell behind: each stream buffers at most ``STREAM_BUFFER`` invalidations waiting to be
  sent; past that its buffer is dropped and a flush queued instead. The stream is not ended, and
  its memory stays bounded however slow it is.

**Batches.** A stream that asked for ``batch`` is sent every invalidation waiting in its buffer
when it is next written to (up to ``BATCH_MAX`` of them, ``BATCH_BYTES`` of values) as one message:
a busy stream costs the server (and its client) one message per burst of changes instead of one per
change. Nothing is held back to make a batch: a change that finds the stream idle goes alone.

Messages are numbered per stream when sent: 1 (ready), 2, 3... without holes. A flush makes every
message queued before it moot, so those are dropped when it is queued. The changes of one key come
in the order they were made. On a Cluster, changes to keys on different nodes may come in another
order than they were made (each node's messages travel the cluster bus on their own link): a near
cache drops each key on its own, so that order does not matter to it.

No gRPC here: :meth:`InvalidationHub.watch` yields :class:`Notice` objects that the servicer turns
into messages.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from ..errors import BackendUnavailable, CoordError, FailedPrecondition, invalid
from ..redis import PubSub, RedisBackend, deadline
from ..validation import Limits
from .keys import FLUSH, CacheKeys

log = logging.getLogger(__name__)

LINGER = 30.0  # seconds the subscription outlives its last watcher
STREAM_BUFFER = 10_000  # most invalidations one stream holds waiting to be sent, then a flush instead
STREAM_BUFFER_BYTES = 8 << 20  # most bytes of pushed values one stream holds waiting, likewise
BATCH_MAX = 512  # most invalidations in one message of a stream that asked for batches
# Most bytes of pushed values in one batch (besides its first): with keys of at most a few KiB and
# values of at most 64 KiB (COORD_CACHE_PUSH_VALUE_MAX), a message stays far below gRPC's 4 MiB.
BATCH_BYTES = 1 << 20
PROBE_INTERVAL = 5.0  # seconds of silence on the subscription before it is probed
LOST_GRACE = 2.0  # Redis timeouts a lost subscription has to come back before ready streams end
RETRY_MIN, RETRY_MAX = 0.05, 2.0  # backoff between subscription attempts, seconds

FLUSH_LOST = "subscription lost"
FLUSH_RESUBSCRIBED = "resubscribed"
FLUSH_TOO_SLOW = "too slow"
FLUSH_UNREADABLE = "unreadable invalidation"
_FLUSH = FLUSH.encode()  # the first word of a message that flushes every stream (keys.FLUSH)
_PUSHED = b"="  # the first byte of a message that carries the entry (set.lua)


class Kind(enum.Enum):
    READY = "ready"
    INVALIDATION = "invalidation"
    FLUSH = "flush"
    BATCH = "batch"


@dataclass(frozen=True, slots=True)
class Notice:
    """One message of a stream: its number, and what it says."""

    sequence: int
    kind: Kind
    key: str = ""
    version: int = 0
    reason: str = ""
    pushed: Pushed | None = None  # the entry the change left, for a stream that asked for values
    batch: tuple[Change, ...] = ()  # Kind.BATCH: the changes, in order


@dataclass(frozen=True, slots=True)
class Pushed:
    """The entry a Set left, sent with its invalidation (see the module docstring)."""

    value: bytes
    expire_ms: int
    compute_ms: int


# One change as a stream holds it: the key, its version after the change, the entry it pushed.
Change = tuple[str, int, Pushed | None]


@dataclass(frozen=True)
class WatchSpec:
    """What one stream watches: keys equal to one of ``keys`` or starting with one of ``prefixes``."""

    prefixes: tuple[str, ...]
    keys: frozenset[str]
    values: bool = False  # invalidations carry the entry when the change pushed it
    batch: bool = False  # the invalidations waiting to be sent go in one message


def watch_spec(
    limits: Limits, prefixes: Sequence[str], keys: Sequence[str], values: bool = False, batch: bool = False
) -> WatchSpec:
    """The checked request: at least one prefix or key, each list within the batch limit, keys by the
    key rules, prefixes likewise except that ``""`` (every key) is allowed. InvalidArgument names
    the field."""
    if not prefixes and not keys:
        raise invalid("prefixes", "and keys are both empty: watch at least one prefix or key")
    limits.batch("prefixes", len(prefixes), allow_empty=True)
    limits.batch("keys", len(keys), allow_empty=True)
    checked = tuple(p and limits.key(f"prefixes[{i}]", p) for i, p in enumerate(prefixes))
    return WatchSpec(
        tuple(dict.fromkeys(checked)),
        frozenset(limits.key(f"keys[{i}]", k) for i, k in enumerate(keys)),
        values,
        batch,
    )


# The ErrorInfo reason of a WatchInvalidations refused because invalidations are off. The catalogue
# (coord.common.v1.ErrorReason) has no reason for it yet; CACHE_INVALIDATIONS_OFF is proposed.
OFF_REASON = "CACHE_INVALIDATIONS_OFF"


def watching_off() -> FailedPrecondition:
    """Why a WatchInvalidations is refused on a server whose writes publish no invalidations."""
    return FailedPrecondition(
        "cache invalidations are off on this server (COORD_CACHE_INVALIDATIONS=false): its writes "
        "publish none, so no near cache can be kept; read from the server instead",
        reason=OFF_REASON,
        metadata={"setting": "COORD_CACHE_INVALIDATIONS"},
    )


class Watcher:
    """One stream: what it watches, its bounded buffer, and its numbering.

    The hub calls :meth:`ready`, :meth:`invalidate`, :meth:`flush` and :meth:`fail`; the stream
    reads :meth:`notices`. Nothing is queued before ``ready``: until then the client caches nothing.
    """

    def __init__(
        self, spec: WatchSpec, buffer: int = STREAM_BUFFER, buffer_bytes: int = STREAM_BUFFER_BYTES
    ) -> None:
        self.spec = spec
        self._every = "" in spec.prefixes
        self._prefixes = tuple(p for p in spec.prefixes if p)
        self._buffer = max(1, buffer)
        self._buffer_bytes = buffer_bytes
        self._bytes = 0  # of the pushed values in _pending
        self.started = False  # ready is queued or sent: from then on every change is passed on
        self._ready_due = False
        self._flush: str | None = None  # a flush due before everything in _pending
        self._pending: deque[Change] = deque()  # in arrival order
        self._wake = asyncio.Event()
        self._error: CoordError | None = None
        self._sequence = 0
        self.flushes = 0  # flushes queued, for tests and logs

    def wants(self, key: str) -> bool:
        return self._every or key in self.spec.keys or key.startswith(self._prefixes)

    def ready(self) -> None:
        if not self.started:
            self.started = self._ready_due = True
            self._wake.set()

    def invalidate(self, key: str, version: int, pushed: Pushed | None = None) -> None:
        if not self.started:
            return
        if pushed is not None:
            if self.spec.values:
                self._bytes += len(pushed.value)
            else:
                pushed = None
        if len(self._pending) >= self._buffer or self._bytes > self._buffer_bytes:
            self.flush(FLUSH_TOO_SLOW)  # this change is covered by the flush
            return
        self._pending.append((key, version, pushed))
        self._wake.set()

    def flush(self, reason: str) -> None:
        if not self.started:
            return
        self._pending.clear()  # moot: the client drops everything anyway
        self._bytes = 0
        self._flush = reason
        self.flushes += 1
        self._wake.set()

    def fail(self, error: CoordError) -> None:
        self._error = error
        self._wake.set()

    async def notices(self) -> AsyncIterator[Notice]:
        """The stream's messages, numbered 1, 2, 3... (ready first); raises the error of :meth:`fail`."""
        while True:
            if self._error is not None:
                raise self._error
            notice = self._next()
            if notice is None:
                self._wake.clear()
                await self._wake.wait()
            else:
                yield notice

    def _next(self) -> Notice | None:
        """The next message to send (numbered now, so that numbers have no holes), if any."""
        pushed: Pushed | None = None
        if self._ready_due:
            self._ready_due = False
            kind, key, version, reason = Kind.READY, "", 0, ""
        elif self._flush is not None:
            kind, key, version, reason = Kind.FLUSH, "", 0, self._flush
            self._flush = None
        elif len(self._pending) > 1 and self.spec.batch:
            self._sequence += 1
            return Notice(self._sequence, Kind.BATCH, batch=self._take_batch())
        elif self._pending:
            key, version, pushed = self._pending.popleft()
            kind, reason = Kind.INVALIDATION, ""
            if pushed is not None:
                self._bytes -= len(pushed.value)
        else:
            return None
        self._sequence += 1
        return Notice(self._sequence, kind, key, version, reason, pushed)

    def _take_batch(self) -> tuple[Change, ...]:
        """The oldest waiting changes, up to BATCH_MAX of them and BATCH_BYTES of values after the
        first."""
        taken: list[Change] = []
        size = 0
        pending = self._pending
        while pending and len(taken) < BATCH_MAX:
            pushed = pending[0][2]
            length = 0 if pushed is None else len(pushed.value)
            if taken and size + length > BATCH_BYTES:
                break
            taken.append(pending.popleft())
            size += length
        self._bytes -= size
        return tuple(taken)


def _read_pushed(data: bytes) -> tuple[int, str, Pushed] | None:
    """A message of set.lua that carries the entry: (version, entry key, entry); None if malformed."""
    try:
        version, expire_ms, compute_ms, length, rest = data[1:].split(b" ", 4)
        size = int(length)
        if not 0 < size <= len(rest):
            return None
        return int(version), rest[:size].decode(), Pushed(rest[size:], int(expire_ms), int(compute_ms))
    except ValueError:  # also UnicodeDecodeError, and too few fields
        return None


_HUBS: weakref.WeakKeyDictionary[RedisBackend, list[InvalidationHub]] = weakref.WeakKeyDictionary()


def hubs_of(redis: RedisBackend) -> list[InvalidationHub]:
    """The hubs made on ``redis`` (one per tenant that watched), for tests and diagnostics."""
    return list(_HUBS.get(redis, ()))


class InvalidationHub:
    """One tenant's invalidation subscription in this process, and the streams it feeds."""

    def __init__(self, redis: RedisBackend, keys: CacheKeys, *, buffer: int = STREAM_BUFFER) -> None:
        self._redis = redis
        self._keys = keys
        self._buffer = buffer
        self.channel = keys.invalidations()
        # Probes go to a channel only this hub hears (on the same connection as the invalidations).
        self.probe_channel = f"{self.channel}:probe:{secrets.token_hex(8)}"
        self._watchers: set[Watcher] = set()
        self.confirmed = False  # the subscription is confirmed and has not failed since
        self._task: asyncio.Task[None] | None = None
        self._idle_stop: asyncio.TimerHandle | None = None
        self._grace: asyncio.TimerHandle | None = None
        # What happened, for tests and logs.
        self.subscriptions = 0  # confirmed subscriptions
        self.probes = 0  # probes published
        redis.on_close(self.close)
        _HUBS.setdefault(redis, []).append(self)

    def __len__(self) -> int:
        return len(self._watchers)

    @property
    def running(self) -> bool:
        """Whether the subscription task runs (with watchers, or lingering after the last one)."""
        return self._task is not None and not self._task.done()

    async def watch(self, spec: WatchSpec) -> AsyncIterator[Notice]:
        """The notices of one stream watching ``spec``, until the caller stops reading (or the hub
        fails it)."""
        watcher = Watcher(spec, self._buffer)
        self._join(watcher)
        try:
            async for notice in watcher.notices():
                yield notice
        finally:
            self._leave(watcher)

    def _join(self, watcher: Watcher) -> None:
        self._watchers.add(watcher)
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            self._idle_stop = None
        if self._task is None or self._task.done():
            self.confirmed = False
            # The task outlives the RPC that started it: no deadline of that RPC's.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="coord-cache-invalidations", context=deadline.detached_context()
            )
        elif self.confirmed:
            watcher.ready()

    def _leave(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        if not self._watchers and self._task is not None and self._idle_stop is None:
            self._idle_stop = asyncio.get_running_loop().call_later(LINGER, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._idle_stop = None
        if not self._watchers and self._task is not None:
            self._task.cancel()
            self._task = None
            self.confirmed = False

    async def close(self) -> None:
        """Stop the subscription now (the backend is closing: the server shuts down)."""
        for timer in (self._idle_stop, self._grace):
            if timer is not None:
                timer.cancel()
        self._idle_stop = self._grace = None
        task, self._task = self._task, None
        self.confirmed = False
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=self._redis.timeout)

    # -- the subscription --------------------------------------------------------------------------

    async def _run(self) -> None:
        me = asyncio.current_task()
        delay = RETRY_MIN
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel, self.probe_channel)
                await self._confirmation(pubsub)
                if self._task is not me:
                    return
                self._confirmed()
                delay = RETRY_MIN
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._task is not me:
                    return
                log.warning(
                    "cache invalidation subscription failed (%s: %s); subscribing again",
                    type(exc).__name__,
                    exc,
                )
                self._lost()
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
            finally:
                await pubsub.aclose()

    async def _confirmation(self, pubsub: PubSub) -> None:
        """Wait until Redis confirms both channels: only then can no message be missed."""
        waiting = {self.channel, self.probe_channel}
        until = time.monotonic() + self._redis.timeout
        while waiting:
            left = until - time.monotonic()
            if left <= 0:
                raise BackendUnavailable("Redis did not confirm the invalidation subscription in time")
            message = await pubsub.get_message(left, confirmations=True)
            if message is not None and message.kind == "subscribe":
                waiting.discard(message.channel)

    async def _listen(self, pubsub: PubSub) -> None:
        """Pass every message on; probe the subscription when it has been silent (see the module
        docstring). Returns only by raising."""
        heard = time.monotonic()
        probed: float | None = None
        probe_timeout = max(1.0, 2 * self._redis.timeout)
        while True:
            now = time.monotonic()
            wait = (heard + PROBE_INTERVAL - now) if probed is None else (probed + probe_timeout - now)
            message = await pubsub.get_message(max(0.0, wait))
            now = time.monotonic()
            if message is not None:
                heard, probed = now, None
                if message.channel == self.channel:
                    self._dispatch(message.data)
            elif probed is None and now - heard >= PROBE_INTERVAL:
                probed = now
                self.probes += 1
                await self._redis.publish(self.probe_channel, b"")
            elif probed is not None and now - probed >= probe_timeout:
                raise BackendUnavailable(f"no probe came back within {probe_timeout:g}s")

    def _dispatch(self, data: bytes) -> None:
        if data[:1] == _PUSHED:
            self._dispatch_pushed(data)
            return
        version_text, _, entry = data.partition(b" ")
        if version_text == _FLUSH:
            # ``flush <reason>`` (InvalidateTags): the changed keys are not known, every stream drops
            # everything.
            reason = entry.decode("utf-8", "replace")
            for watcher in self._watchers:
                watcher.flush(reason)
            return
        key: str | None = None
        try:
            version = int(version_text)
            key = self._keys.key_of(entry.decode())
        except ValueError:  # also UnicodeDecodeError
            pass
        if key is None:
            self._unreadable(data)
            return
        for watcher in self._watchers:
            if watcher.wants(key):
                watcher.invalidate(key, version)

    def _dispatch_pushed(self, data: bytes) -> None:
        """``=<version> <expiry ms> <compute time ms> <key length> <entry key><value>`` (set.lua)."""
        read = _read_pushed(data)
        key = self._keys.key_of(read[1]) if read is not None else None
        if read is None or key is None:
            self._unreadable(data)
            return
        version, _, pushed = read
        for watcher in self._watchers:
            if watcher.wants(key):
                watcher.invalidate(key, version, pushed)

    def _unreadable(self, data: bytes) -> None:
        # Every message here comes from a cache script; one that cannot be read may have been an
        # invalidation of anything: the streams drop everything rather than miss it. (Only its
        # length is logged: it may hold a cached value.)
        log.warning("unreadable cache invalidation (%d bytes); flushing the near caches", len(data))
        for watcher in self._watchers:
            watcher.flush(FLUSH_UNREADABLE)

    def _confirmed(self) -> None:
        """The subscription is confirmed: new streams are ready, older ones told they may have
        missed something (while the subscription was down)."""
        self.subscriptions += 1
        self.confirmed = True
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        for watcher in self._watchers:
            if watcher.started:
                watcher.flush(FLUSH_RESUBSCRIBED)
            else:
                watcher.ready()

    def _lost(self) -> None:
        if self.confirmed:  # once per loss: failed attempts to come back add nothing
            for watcher in self._watchers:
                watcher.flush(FLUSH_LOST)
        self.confirmed = False
        if self._grace is None:
            grace = LOST_GRACE * self._redis.timeout
            self._grace = asyncio.get_running_loop().call_later(grace, self._give_up, grace)

    def _give_up(self, grace: float) -> None:
        """The subscription did not come back in time: end the ready streams (their clients read from
        the server and reconnect); streams not ready yet keep waiting for it."""
        self._grace = None
        if self.confirmed:
            return
        error = BackendUnavailable(
            f"the cache invalidation subscription is lost and did not come back within {grace:g}s"
        )
        for watcher in self._watchers:
            if watcher.started:
                watcher.fail(error)
