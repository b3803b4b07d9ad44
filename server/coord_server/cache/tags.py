"""Invalidation by tag: one generation per tag, stored with each tagged entry and checked on read.

A tag's generation is a small string key of its own, ``coord:<tenant>:cache:tag:{<tag>}`` (keys.py),
on the tag's own Cluster slot, so nothing here needs the entries and the tags on one node:

- **Set with tags.** The server first reads the generation of each tag (``tag_generation.lua``, one
  small script per tag, pipelined: one round trip, per node on a Cluster); a missing tag key is
  created then with the Redis time in microseconds, and every read renews its TTL. set.lua then
  stores the pairs ``tag -> generation`` in the entry's field ``t``.
- **Read.** get.lua (and get_or_lease.lua) return field ``t`` only for a tagged entry, so an untagged
  read costs what it did. For a tagged one the server reads its tags' current generations
  (``tag_check.lua``, pipelined) and answers a miss if any differs from the stored one, or if its
  tag key is missing. A read of a tagged entry is therefore two round trips to Redis.
- **InvalidateTags.** Each tag's generation becomes ``max(Redis TIME in us, current + 1)``
  (``tag_invalidate.lua``, pipelined): O(1) per tag, whatever the number of entries. Entries are not
  touched; they read as misses until rewritten or expired. Then ``flush`` is published on the
  tenant's invalidation channel: near caches cannot know which of their entries carried the tags.

**No stale hit once InvalidateTags has returned.** Redis runs the scripts on one tag key one at a
time, so a Set's read of the generation (R) comes either before the invalidation (I) or after it.
Before: the Set stores the old generation g, and I leaves a strictly greater one (generations only
grow while the key lives), so every read that starts after I returned finds g outdated: a miss,
whenever set.lua itself ran. After: the Set stores I's generation and is a hit — it is a write made
after the invalidation, which the invalidation is not about. A read that overlaps I may see either.
A tag key that is missing when an entry is read matches nothing: an expired or evicted tag key
turns its entries into misses, never into stale hits (generations are never 0, and a re-created key
starts from the clock, past every generation of the one that expired).

**TTLs.** A tag key lives ``COORD_MAX_TTL`` plus :data:`TTL_MARGIN_MS`, renewed by every Set that
tags an entry with it, so it outlives every entry stored with its generation (entries live at most
``COORD_MAX_TTL``, counted from a moment just after the read). Should it not (a server stalled
between the two steps for longer than the margin, or a Touch that extended a tagged entry), the entry
only reads as a miss. InvalidateTags does not create a missing tag key: no live entry can match it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..redis import RedisBackend, ScriptCall, ScriptSet
from .keys import FLUSH, CacheKeys

# A tag key outlives the longest entry TTL by this much (see the module docstring).
TTL_MARGIN_MS = 3_600_000
# The reason near caches are told when InvalidateTags flushes them.
FLUSH_REASON = "tags invalidated"
# Between a tag and its generation, and between pairs, in field t (keys and tags hold no newline).
_SEP = "\n"
# Field t also holds the generations of the key's invalidated prefixes (prefixes.py), each named by
# this mark and the prefix: a tag holds no NUL (validation.Limits.key), so no tag is ever one of them.
PREFIX_MARK = "\x00"


def pack(generations: Iterable[tuple[str, int]]) -> str:
    """Field ``t`` of a tagged entry: ``tag\\ngeneration`` pairs joined by newlines."""
    return _SEP.join(f"{tag}{_SEP}{generation}" for tag, generation in generations)


def unpack(field: bytes | str) -> list[tuple[str, int]]:
    """The ``(tag, generation)`` pairs of field ``t``."""
    text = field.decode("utf-8", "surrogatepass") if isinstance(field, bytes) else field
    parts = text.split(_SEP)
    return [(parts[i], int(parts[i + 1])) for i in range(0, len(parts) - 1, 2)]


class Tags:
    """One tenant's tag generations: read for a Set, checked for a read, advanced by InvalidateTags."""

    def __init__(
        self, redis: RedisBackend, scripts: ScriptSet, keys: CacheKeys, ttl_ms: int, channel: str
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = ttl_ms  # the TTL of a tag key: COORD_MAX_TTL plus TTL_MARGIN_MS
        self._channel = channel  # where the near caches are flushed ('' when invalidations are off)
        self._generation = scripts["tag_generation"]
        self._check = scripts["tag_check"]
        self._invalidate = scripts["tag_invalidate"]

    async def for_write(self, tags: Sequence[str]) -> dict[str, int]:
        """The current generation of each of ``tags`` (distinct), for a Set to store: one pipelined
        round trip that also creates missing tag keys and renews their TTLs (none for no tags)."""
        if not tags:
            return {}
        calls = [ScriptCall(self._generation, [self._keys.tag(t)], [self._ttl_ms]) for t in tags]
        replies = await self._redis.run_many(calls)
        return {tag: int(reply) for tag, reply in zip(tags, replies, strict=True)}

    async def stale(self, fields: Sequence[Any]) -> list[bool]:
        """For each tagged entry's field ``t``: whether one of its tags was invalidated since it was
        written (or its tag key is gone). One pipelined round trip for all their distinct tags."""
        stored = [[(t, g) for t, g in unpack(f) if not t.startswith(PREFIX_MARK)] for f in fields]
        distinct = list(dict.fromkeys(tag for pairs in stored for tag, _ in pairs))
        if not distinct:  # only prefix generations (prefixes.py checks those): no round trip
            return [False] * len(stored)
        calls = [ScriptCall(self._check, [self._keys.tag(t)], []) for t in distinct]
        current = {
            tag: None if reply is None else int(reply)
            for tag, reply in zip(distinct, await self._redis.run_many(calls), strict=True)
        }
        return [any(current[tag] != generation for tag, generation in pairs) for pairs in stored]

    async def invalidate(self, tags: Sequence[str]) -> None:
        """Advance the generation of each of ``tags`` (distinct), then flush the near caches."""
        calls = [ScriptCall(self._invalidate, [self._keys.tag(t)], [self._ttl_ms]) for t in tags]
        await self._redis.run_many(calls)
        if self._channel:
            # After the generations moved: a near cache that drops everything now reads from the
            # server, which already answers misses. A failure here fails the call (it may be retried:
            # invalidating again is harmless), so a caller never believes near caches were told.
            await self._redis.publish(self._channel, f"{FLUSH} {FLUSH_REASON}")


__all__ = ["FLUSH_REASON", "PREFIX_MARK", "TTL_MARGIN_MS", "Tags", "pack", "unpack"]
