"""Events domain storage: topic streams, the topic registry and consumer groups on Redis. No gRPC.

Every multi-step write is one Lua script on one topic's slot (publish with dedup and retention,
group creation with its TTL, claims). Plain reads (XRANGE, XREAD, XINFO) and single commands (XACK,
XREADGROUP) are the backend's typed commands, bounded like scripts, so deadlines and outages map to
domain errors.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import FailedPrecondition
from ..redis import PubSub, RedisBackend, ReplyError, ScriptArg, ScriptCall, ScriptSet, StreamEntry, text
from .keys import EventsKeys
from .topics import ZERO_ID, StreamId, format_id, parse_id

T = TypeVar("T")

# Stream entry field names. Headers are stored one field each, as "h.<name>".
_DATA = b"d"
_CONTENT_TYPE = b"ct"
_HEADER = b"h."


@dataclass(frozen=True)
class Retention:
    max_length: int
    max_age_ms: int


@dataclass(frozen=True)
class PublishItem:
    topic: str
    data: bytes
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    dedup_id: str = ""


@dataclass(frozen=True)
class PublishResult:
    topic: str
    id: StreamId
    duplicate: bool


@dataclass(frozen=True)
class StoredEvent:
    """One event read from a topic stream. Shared, unmodified, by every subscriber it is sent to."""

    topic: str
    id: StreamId
    data: bytes
    content_type: str
    headers: Mapping[str, str]
    delivery_count: int = 0
    sequence: int = 0  # volatile events only


@dataclass(frozen=True)
class StreamPosition:
    """Where a topic stream stands: ``last_id`` is the newest id ever appended (ZERO_ID if none)."""

    exists: bool
    length: int = 0
    first_id: StreamId | None = None
    last_id: StreamId = ZERO_ID
    last_removed_id: StreamId | None = None  # None when Redis does not report it (before 7.0)
    entries_added: int | None = None  # None when Redis does not report it (before 7.0)


@dataclass(frozen=True)
class GroupRead:
    """What one read of a consumer group returned: new events for the consumer, and where the group
    stood just before (its last delivered id, and the oldest stored id then; None if none)."""

    events: list[StoredEvent]
    last_delivered: StreamId
    first_stored: StreamId | None
    lag: int | None = None  # entries added but not yet delivered to the group (None: Redis can't tell)
    length: int = 0  # the stream's length then


@dataclass(frozen=True)
class GroupInfo:
    name: str
    consumers: int
    pending: int
    last_delivered_id: StreamId
    lag: int | None


class EventsStore:
    """Topic streams and consumer groups. Inputs are already validated by the caller."""

    def __init__(
        self, redis: RedisBackend, scripts: ScriptSet, keys: EventsKeys, retention: Retention, dedup_ms: int
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.retention = retention
        self._dedup_ms = dedup_ms
        self._publish = scripts["publish"]
        self._register = scripts["register"]
        self._group_create = scripts["group_create"]
        self._claim = scripts["claim"]
        self._reclaim = scripts["reclaim"]
        self._leave = scripts["leave"]
        self._read_group = scripts["read_group"]
        self._publish_volatile = scripts["publish_volatile"]
        self.keys = keys

    @property
    def redis_timeout(self) -> float:
        """The longest one Redis call of this store waits (COORD_REDIS_TIMEOUT)."""
        return self._redis.timeout

    # -- publishing --------------------------------------------------------------------------------

    def _publish_call(self, item: PublishItem) -> ScriptCall:
        stream = self._keys.stream(item.topic)
        keys = [stream, self._keys.dedup(item.topic, item.dedup_id)] if item.dedup_id else [stream]
        args: list[ScriptArg] = [self.retention.max_length, self.retention.max_age_ms, self._dedup_ms]
        args += [_DATA, item.data]
        if item.content_type:
            args += [_CONTENT_TYPE, item.content_type]
        for name, value in item.headers.items():
            args += [_HEADER + name.encode(), value]
        return ScriptCall(self._publish, keys, args)

    async def publish(self, items: Sequence[PublishItem]) -> list[PublishResult]:
        """Append events in one pipelined round trip; each append is atomic, events of a topic in order.

        The registry write rides in the same pipeline (a separate key and slot, so not atomic with
        the appends): a topic may be readable a moment before ListTopics shows it.
        """
        topics = list(dict.fromkeys(item.topic for item in items))
        register = ScriptCall(self._register, [self._keys.registry()], [self.retention.max_age_ms, *topics])
        replies = await self._redis.run_many([*(self._publish_call(i) for i in items), register])
        results = []
        for item, reply in zip(items, replies, strict=False):
            stream_id = parse_id(text(reply[0]))
            assert stream_id is not None
            results.append(PublishResult(item.topic, stream_id, bool(int(reply[1]))))
        return results

    async def publish_volatile(self, items: Sequence[PublishItem]) -> list[tuple[int, int]]:
        """Send volatile events (Pub/Sub, numbered per topic); returns (sequence, receivers) each."""
        calls = [
            ScriptCall(
                self._publish_volatile,
                [self._keys.volatile_sequence(item.topic)],
                [self.retention.max_age_ms, self._keys.volatile_channel(item.topic), encode_volatile(item)],
            )
            for item in items
        ]
        return [(int(r[0]), int(r[1])) for r in await self._redis.run_many(calls)]

    # -- volatile channels (Pub/Sub) ---------------------------------------------------------------

    def open_listener(self) -> PubSub:
        """A Pub/Sub connection for this process's volatile reader (one, however many subscribers)."""
        return self._redis.pubsub()

    async def listen(self, listener: PubSub, topics: Sequence[str]) -> None:
        await listener.subscribe(*(self._keys.volatile_channel(t) for t in topics))

    async def unlisten(self, listener: PubSub, topics: Sequence[str]) -> None:
        await listener.unsubscribe(*(self._keys.volatile_channel(t) for t in topics))

    async def next_volatile(self, listener: PubSub, wait: float) -> tuple[str, bytes] | None:
        """The next (channel, message) of the listener, or None after ``wait`` seconds without one."""
        message = await listener.get_message(wait)
        if message is None:
            return None
        return message.channel, message.data

    # -- reading -----------------------------------------------------------------------------------

    async def position(self, topic: str) -> StreamPosition:
        info = await self._redis.xinfo_stream(self._keys.stream(topic))
        if info is None:
            return StreamPosition(exists=False)
        removed_id = parse_id(info.max_deleted_entry_id) if info.max_deleted_entry_id is not None else None
        return StreamPosition(
            exists=True,
            length=info.length,
            first_id=parse_id(info.first_id) if info.first_id is not None else None,
            last_id=parse_id(info.last_generated_id) or ZERO_ID,
            last_removed_id=removed_id if removed_id != ZERO_ID else None,
            entries_added=info.entries_added,
        )

    async def read_after(self, topic: str, after: StreamId, count: int) -> list[StoredEvent]:
        """Up to ``count`` stored events with ids greater than ``after``, oldest first."""
        entries = await self._redis.xrange(self._keys.stream(topic), "(" + format_id(after), "+", count)
        return _events(topic, entries)

    async def next_id(self, topic: str, after: StreamId, *, inclusive: bool = False) -> StreamId | None:
        """The id of the first stored event after ``after`` (or at it, if ``inclusive``); None if none."""
        start = format_id(after) if inclusive else "(" + format_id(after)
        entries = await self._redis.xrange(self._keys.stream(topic), start, "+", 1)
        return parse_id(text(entries[0][0])) if entries else None

    def stream_key(self, topic: str) -> str:
        """The Redis key of ``topic``'s stream, for the process's live readers (readers.py)."""
        return self._keys.stream(topic)

    def events_of(self, topic: str, entries: Sequence[StreamEntry]) -> list[StoredEvent]:
        """Entries a live reader read from ``topic``'s stream, as events."""
        return _events(topic, entries)

    async def redis_time_ms(self) -> int:
        seconds, micros = await self._redis.time()
        return seconds * 1000 + micros // 1000

    # -- the registry --------------------------------------------------------------------------------

    async def list_topics(self, after: str, limit: int, prefix: str = "") -> list[str]:
        """Topic names greater than ``after`` (and starting with ``prefix``), in order, at most ``limit``.

        Names whose stream has expired are pruned from the registry on the way.
        """
        registry = self._keys.registry()
        names: list[str] = []
        start = after
        if prefix and start < prefix:
            start = ""
        while len(names) < limit:
            low = b"(" + start.encode() if start else (b"[" + prefix.encode() if prefix else b"-")
            high = b"[" + prefix.encode() + b"\xff" if prefix else b"+"
            want = limit - len(names)
            raw = await self._redis.zrangebylex(registry, low, high, want)
            if not raw:
                break
            page = [text(n) for n in raw]
            alive = await self._alive(page)
            dead = [n for n, ok in zip(page, alive, strict=True) if not ok]
            if dead:
                await self._redis.zrem(registry, dead)
            names += [n for n, ok in zip(page, alive, strict=True) if ok]
            start = page[-1]
            if len(page) < want:
                break
        return names

    async def _alive(self, topics: Sequence[str]) -> list[bool]:
        return await self._redis.exists_each([self._keys.stream(topic) for topic in topics])

    # -- consumer groups ---------------------------------------------------------------------------

    async def create_group(self, topic: str, group: str, earliest: bool) -> bool:
        created = await self._redis.run_many(
            [
                ScriptCall(
                    self._group_create,
                    [self._keys.stream(topic)],
                    [group, "0" if earliest else "$", self.retention.max_age_ms],
                ),
                ScriptCall(self._register, [self._keys.registry()], [self.retention.max_age_ms, topic]),
            ]
        )
        return bool(int(created[0]))

    async def groups(self, topic: str) -> list[GroupInfo]:
        return [
            GroupInfo(
                name=g.name,
                consumers=g.consumers,
                pending=g.pending,
                last_delivered_id=parse_id(g.last_delivered_id) or ZERO_ID,
                lag=g.lag,
            )
            for g in await self._redis.xinfo_groups(self._keys.stream(topic))
        ]

    async def read_group(self, topic: str, group: str, consumer: str, count: int) -> GroupRead:
        """New events for ``consumer`` (XREADGROUP >, not blocking), each delivered for the first time,
        with where the group stood before the read (one script: nothing lands between the two)."""
        reply = await _in_group(
            group, self._redis.run(self._read_group, [self._keys.stream(topic)], [group, consumer, count])
        )
        raw_entries, last, first, lag, length = reply
        entries = [(entry[0], _pairs(entry[1])) for entry in raw_entries if entry[1]]
        return GroupRead(
            _events(topic, entries, 1),
            parse_id(text(last)) or ZERO_ID,
            parse_id(text(first)) if first else None,
            int(lag) if int(lag) >= 0 else None,
            int(length),
        )

    async def claim(
        self, topic: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[StoredEvent]:
        """Events of the group idle for at least ``min_idle_ms``, now delivered to ``consumer``."""
        entries, counts = await _in_group(
            group,
            self._redis.run(self._claim, [self._keys.stream(topic)], [group, consumer, min_idle_ms, count]),
        )
        return [
            _event(topic, entry[0], _pairs(entry[1]), int(n))
            for entry, n in zip(entries, counts, strict=True)
        ]

    async def ack(self, topic: str, group: str, ids: Sequence[StreamId]) -> int:
        stream = self._keys.stream(topic)
        return await _in_group(group, self._redis.xack(stream, group, [format_id(i) for i in ids]))

    async def set_idle(
        self, topic: str, group: str, consumer: str, ids: Sequence[StreamId], idle_ms: int
    ) -> int:
        """Set the idle time of those ``ids`` still pending with ``consumer``; returns how many were."""
        args: list[ScriptArg] = [group, consumer, idle_ms, *map(format_id, ids)]
        return int(await _in_group(group, self._redis.run(self._reclaim, [self._keys.stream(topic)], args)))

    async def leave(self, topic: str, group: str, consumer: str, idle_ms: int, others: int) -> int:
        """Take ``consumer`` out of its group if it holds nothing, with up to ``others`` consumers that
        hold nothing and were idle ``idle_ms``; returns how many were deleted."""
        args: list[ScriptArg] = [group, consumer, idle_ms, others]
        return int(await self._redis.run(self._leave, [self._keys.stream(topic)], args))


async def _in_group(group: str, awaitable: Awaitable[T]) -> T:
    """Await a consumer-group command; a group that vanished (its topic expired) is a domain error."""
    try:
        return await awaitable
    except ReplyError as exc:
        if "NOGROUP" in str(exc):
            raise FailedPrecondition(
                f"consumer group {group!r} no longer exists (its topic expired or was deleted); "
                "start a new Consume stream to recreate it",
                reason="EVENTS_GROUP_NOT_FOUND",
                metadata={"group": group},
            ) from None
        raise


def encode_volatile(item: PublishItem) -> bytes:
    """A volatile event on the wire: one JSON line (content type, headers), then the payload bytes."""
    head = json.dumps({"ct": item.content_type, "h": dict(item.headers)}, separators=(",", ":"))
    return head.encode() + b"\n" + item.data


def decode_volatile(topic: str, message: bytes) -> StoredEvent | None:
    """Parse ``<sequence>:<encoded event>``; None for a message that is not one."""
    number, _, rest = message.partition(b":")
    head, sep, data = rest.partition(b"\n")
    if not sep or not number.isdigit():
        return None
    try:
        meta = json.loads(head)
    except ValueError:
        return None
    return StoredEvent(topic, ZERO_ID, data, str(meta.get("ct", "")), dict(meta.get("h", {})), 0, int(number))


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _events(topic: str, entries: Sequence[StreamEntry], delivery_count: int = 0) -> list[StoredEvent]:
    return [_event(topic, raw_id, fields, delivery_count) for raw_id, fields in entries]


def _event(topic: str, raw_id: Any, fields: Mapping[bytes, bytes], delivery_count: int = 0) -> StoredEvent:
    stream_id = parse_id(text(raw_id))
    assert stream_id is not None
    headers = {
        k[len(_HEADER) :].decode("utf-8", "replace"): v.decode("utf-8", "replace")
        for k, v in fields.items()
        if k.startswith(_HEADER)
    }
    content_type = fields.get(_CONTENT_TYPE, b"").decode("utf-8", "replace")
    return StoredEvent(topic, stream_id, bytes(fields.get(_DATA, b"")), content_type, headers, delivery_count)
