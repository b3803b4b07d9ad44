"""The few commands Coord sends besides its scripts: stream reads, consumer groups, the topic
registry, the Redis clock and Pub/Sub, as typed methods of the backend. (Blocking stream reads hold
a connection of their own: ``blocking.py``.)

They go through redis-py (its reply parsing, and on a cluster its routing by key), each bounded like a
script call; stores call these and never see a redis-py client. Multi-step writes are never here:
they are scripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from .executor import Client, ReplyError, text
from .pubsub import Bounded, PubSub

# One stream entry: its id and its field/value pairs.
StreamEntry: TypeAlias = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True)
class XinfoStream:
    """What XINFO STREAM tells of a stream. Ids as text; None where Redis does not report it (6.2)."""

    length: int
    first_id: str | None  # None when the stream is empty
    last_generated_id: str
    max_deleted_entry_id: str | None
    entries_added: int | None


@dataclass(frozen=True)
class XinfoGroup:
    """One consumer group as XINFO GROUPS reports it (``lag`` is None before Redis 7 or when unknown)."""

    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    lag: int | None


class _Backend(Bounded, Protocol):
    """What the commands need of the backend they are methods of."""

    _client: Client


class Commands:
    """Typed non-script commands; a base of :class:`~.backend.RedisBackend`."""

    async def ping(self: _Backend) -> bool:
        await self.bounded(self._client.ping())
        return True

    async def time(self: _Backend) -> tuple[int, int]:
        """Redis's clock (TIME): Unix seconds and microseconds."""
        seconds, micros = await self.bounded(self._client.time())
        return int(seconds), int(micros)

    # -- streams -----------------------------------------------------------------------------------

    async def xrange(self: _Backend, key: str, start: str, end: str, count: int) -> list[StreamEntry]:
        """Up to ``count`` entries of stream ``key`` from ``start`` to ``end`` (XRANGE syntax: ``-``,
        ``+``, ``(id`` for exclusive), oldest first."""
        # redis-py's stubs allow str and None too; Coord's client returns bytes, and XRANGE no holes.
        entries: Any = await self.bounded(self._client.xrange(key, start, end, count))
        return list(entries)

    async def xinfo_stream(self: _Backend, key: str) -> XinfoStream | None:
        """XINFO STREAM of ``key``; None when the stream does not exist."""
        try:
            info = await self.bounded(self._client.xinfo_stream(key))
        except ReplyError as exc:
            if "no such key" in str(exc).lower():
                return None
            raise
        first = info.get("first-entry")
        removed = info.get("max-deleted-entry-id")
        return XinfoStream(
            length=int(info["length"]),
            first_id=text(first[0]) if first else None,
            last_generated_id=text(info["last-generated-id"]),
            max_deleted_entry_id=text(removed) if removed is not None else None,
            entries_added=int(info["entries-added"]) if "entries-added" in info else None,
        )

    # -- consumer groups ---------------------------------------------------------------------------

    async def xinfo_groups(self: _Backend, key: str) -> list[XinfoGroup]:
        """The consumer groups of stream ``key`` (XINFO GROUPS); [] when the stream does not exist."""
        try:
            raw = await self.bounded(self._client.xinfo_groups(key))
        except ReplyError as exc:
            if "no such key" in str(exc).lower():
                return []
            raise
        return [
            XinfoGroup(
                name=text(g["name"]),
                consumers=int(g["consumers"]),
                pending=int(g["pending"]),
                last_delivered_id=text(g["last-delivered-id"]),
                lag=int(g["lag"]) if g.get("lag") is not None else None,
            )
            for g in raw
        ]

    async def xreadgroup(
        self: _Backend, group: str, consumer: str, key: str, count: int
    ) -> list[StreamEntry]:
        """Up to ``count`` entries of ``key`` never delivered to ``group``, now delivered to
        ``consumer`` (XREADGROUP ... >, not blocking). A missing group raises its NOGROUP ReplyError."""
        reply: Any = await self.bounded(self._client.xreadgroup(group, consumer, {key: ">"}, count))
        return [
            (entry_id, fields)
            for _, entries in reply or ()
            for entry_id, fields in entries
            if fields is not None
        ]

    async def xack(self: _Backend, key: str, group: str, ids: Sequence[str]) -> int:
        """Acknowledge ``ids`` in ``group`` (XACK); how many were pending. NOGROUP raises ReplyError."""
        return int(await self.bounded(self._client.xack(key, group, *ids)))

    # -- sorted sets and keys ----------------------------------------------------------------------

    async def zrangebylex(self: _Backend, key: str, low: bytes, high: bytes, count: int) -> list[bytes]:
        """Up to ``count`` members of ``key`` between ``low`` and ``high`` (ZRANGEBYLEX syntax)."""
        members: Any = await self.bounded(self._client.zrangebylex(key, low, high, 0, count))
        return list(members)

    async def zrem(self: _Backend, key: str, members: Sequence[str]) -> int:
        """Remove ``members`` from ``key``; how many were there."""
        return int(await self.bounded(self._client.zrem(key, *members)))

    async def exists_each(self: _Backend, keys: Sequence[str]) -> list[bool]:
        """Whether each of ``keys`` exists: one EXISTS per key, pipelined (per node on a cluster)."""
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.exists(key)
        return [bool(n) for n in await self.bounded(pipe.execute())]

    # -- Pub/Sub -----------------------------------------------------------------------------------

    async def publish(self: _Backend, channel: str, message: str | bytes) -> int:
        """PUBLISH ``message`` on ``channel``; how many connections received it."""
        return int(await self.bounded(self._client.publish(channel, message)))

    def pubsub(self: _Backend) -> PubSub:
        """A Pub/Sub connection of its own (opened by its first subscribe); the caller closes it.

        On a cluster, a plain PUBLISH reaches every node, so one subscription on any node hears it.
        """
        return PubSub(self._client.pubsub(), self)
