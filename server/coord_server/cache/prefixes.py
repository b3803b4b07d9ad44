"""Invalidation by prefix: a key's namespaces, one generation per namespace, checked on every read.

**Namespaces.** A key's namespaces are its prefixes that end with the delimiter
(``COORD_CACHE_PREFIX_DELIMITER``, ``:`` by default): ``user:`` and ``user:42:`` of ``user:42:name``.
Only its first ``COORD_CACHE_PREFIX_DEPTH`` delimiters end one (what a read checks is bounded), and a
prefix shorter than ``COORD_CACHE_MIN_PREFIX`` characters is none (so ``a:`` cannot empty a tenant's
cache by a slip). InvalidatePrefix takes exactly these: a prefix is invalidated for the keys whose
namespace it is, which are the keys that start with it.

**Generations.** A namespace's generation is a small key of its own,
``coord:<tenant>:cache:prefix:{<prefix>}`` (keys.py), on its own Cluster slot, made by its first
InvalidatePrefix and never by a Set: a namespace never invalidated costs no key and has generation 0.

- **InvalidatePrefix.** The generation becomes ``max(Redis TIME in us, current + 1)``
  (``prefix_invalidate.lua``): O(1) whatever the number of entries, which are not touched. Then
  ``flush`` is published on the tenant's invalidation channel, as for InvalidateTags.
- **Set** (and an Increment that creates its entry). The server first reads the generations of the
  key's namespaces (``prefix_generation.lua``, pipelined: one more round trip, per node on a
  Cluster), which renews the TTL of those that exist, and stores the ones that are not 0 with the
  entry, in field ``t`` beside its tags, each named :data:`~.tags.PREFIX_MARK` and the prefix: no
  tag holds a NUL, so none is ever taken for a prefix, nor a prefix for a tag.
- **Read** (Get, BatchGet, GetStream, GetOrLease). The server reads the current generations of the
  key's namespaces (``prefix_check.lua``) at the same time as the entry, in the same pipelined round
  trip, and answers a miss if any differs from the one the entry recorded (0 when it recorded none;
  a missing key is 0 too). Unlike a tag, a namespace cannot be known from the entry alone: the first
  InvalidatePrefix of ``user:42:`` must turn entries written before it, which recorded nothing for
  it, into misses. So every read of a key that has namespaces reads their generations.

**No stale hit once InvalidatePrefix has returned.** Redis runs the scripts on one prefix key one at
a time, so a Set's read of a generation (R) comes before an invalidation (I) or after it. Before: the
Set records g (0 when there was no key) and I leaves a strictly greater one, so every read that
starts after I returned finds another generation than the recorded one: a miss, whenever the entry
itself was written. After: the Set records I's generation or a later one, and is a hit: it is a
write made after the invalidation. The two parts of a read (the entry and the generations, on
different slots) may run in either order: both run after I returned, so the generations they see are
I's or later, and the entry's recorded ones are I's or later only if its Set read them after I. A read
that overlaps I may see either.

**TTLs.** A prefix key lives ``COORD_MAX_TTL`` plus :data:`~.tags.TTL_MARGIN_MS` from its last
InvalidatePrefix, renewed by every Set or Increment that reads it and by every Touch of a key under
it, so it outlives every entry written before its last invalidation (an entry lives at most
``COORD_MAX_TTL`` from its last write or Touch) and every entry that recorded its generation. An
expired or evicted prefix key reads as 0: entries that recorded a generation of it become misses,
never stale hits; a new InvalidatePrefix starts again from the clock, past all its old generations.

**Settings.** Every Coord server on one Redis must use the same delimiter, minimum and depth: a
server with another depth checks other namespaces, and one with no delimiter checks none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import FailedPrecondition, invalid
from ..redis import RedisBackend, Script, ScriptArg, ScriptCall, ScriptSet
from ..validation import Limits
from .keys import FLUSH, CacheKeys
from .tags import PREFIX_MARK, unpack

T = TypeVar("T")

# The reason near caches are told when InvalidatePrefix flushes them.
FLUSH_REASON = "prefix invalidated"
# The ErrorInfo reason of an InvalidatePrefix on a server with no delimiter (coord.common.v1).
OFF_REASON = "CACHE_PREFIX_INVALIDATION_OFF"


@dataclass(frozen=True)
class PrefixRules:
    """Which prefixes of a key are namespaces (the three COORD_CACHE_PREFIX settings)."""

    delimiter: str = ":"  # one character, or '' for none: prefix invalidation is off
    min_length: int = 3  # in characters, the delimiter included
    depth: int = 4  # the most delimiters a namespace holds

    def of(self, key: str) -> tuple[str, ...]:
        """The namespaces of ``key``, shortest first (none when the delimiter is off)."""
        d = self.delimiter
        if not d or d not in key:
            return ()
        found: list[str] = []
        at = key.find(d)
        for _ in range(self.depth):
            if at < 0:
                break
            if at + 1 >= self.min_length:
                found.append(key[: at + 1])
            at = key.find(d, at + 1)
        return tuple(found)

    def check(self, field: str, prefix: str, limits: Limits) -> str:
        """An InvalidatePrefix's prefix, or FailedPrecondition (off) or InvalidArgument naming ``field``."""
        d = self.delimiter
        if not d:
            raise FailedPrecondition(
                "prefix invalidation is off on this server (COORD_CACHE_PREFIX_DELIMITER is empty): "
                "keys have no namespaces there; invalidate by tag instead (InvalidateTags)",
                reason=OFF_REASON,
                metadata={"setting": "COORD_CACHE_PREFIX_DELIMITER"},
            )
        prefix = limits.key(field, prefix)
        if not prefix.endswith(d):
            raise invalid(
                field, f"must end with the delimiter {d!r}, as in 'user{d}42{d}' (a whole namespace)"
            )
        if len(prefix) < self.min_length:
            description = (
                f"is {len(prefix)} characters; a prefix needs at least {self.min_length}, the delimiter "
                "included (COORD_CACHE_MIN_PREFIX)"
            )
            raise invalid(field, description, limit=str(self.min_length), actual=str(len(prefix)))
        depth = prefix.count(d)
        if depth > self.depth:
            description = (
                f"holds {depth} delimiters {d!r}; namespaces are at most {self.depth} deep "
                "(COORD_CACHE_PREFIX_DEPTH): invalidate a shorter prefix"
            )
            raise invalid(field, description, limit=str(self.depth), actual=str(depth))
        return prefix


# The settings' defaults; add_to_server passes the configured rules.
DEFAULT_RULES = PrefixRules()


class Prefixes:
    """One tenant's namespace generations: read for a write, checked for a read, advanced by
    InvalidatePrefix."""

    def __init__(
        self,
        redis: RedisBackend,
        scripts: ScriptSet,
        keys: CacheKeys,
        *,
        rules: PrefixRules,
        ttl_ms: int,
        channel: str,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.rules = rules
        self._ttl_ms = ttl_ms  # the TTL of a prefix key: COORD_MAX_TTL plus TTL_MARGIN_MS
        self._channel = channel  # where the near caches are flushed ('' when invalidations are off)
        self._generation = scripts["prefix_generation"]
        self._check = scripts["prefix_check"]
        self._invalidate = scripts["prefix_invalidate"]

    def of(self, keys: Iterable[str]) -> list[str]:
        """The distinct namespaces of ``keys``."""
        return list(dict.fromkeys(p for key in keys for p in self.rules.of(key)))

    async def for_write(self, keys: Sequence[str]) -> dict[str, int]:
        """The current generation of each namespace of ``keys`` (0: none), for writes to record: one
        pipelined round trip (none when they have no namespace) that renews the existing ones."""
        return await self._read(self._generation, self.of(keys), [self._ttl_ms])

    def recorded(self, key: str, generations: Mapping[str, int]) -> list[tuple[str, int]]:
        """The pairs of field t that record ``key``'s namespaces' ``generations`` (those not 0)."""
        return [(PREFIX_MARK + p, generations[p]) for p in self.rules.of(key) if generations[p]]

    async def along(self, keys: Sequence[str], read: Awaitable[T]) -> tuple[T, dict[str, int]]:
        """``read`` (of the entries of ``keys``) and the current generations of their namespaces,
        read at the same time: one pipelined round trip. Without namespaces, ``read`` alone."""
        names = self.of(keys)
        if not names:
            return await read, {}
        check = self._read(self._check, names, [])
        done, generations = await asyncio.gather(read, check)
        return done, generations

    def stale(self, key: str, field: Any, current: Mapping[str, int]) -> bool:
        """Whether a hit on ``key``, whose field t is ``field`` (None: untagged), was written before an
        invalidation of one of its namespaces; ``current`` holds their generations (:meth:`along`)."""
        names = self.rules.of(key)
        if not names:
            return False
        recorded: dict[str, int] = {}
        if field:
            recorded = {t[1:]: g for t, g in unpack(field) if t.startswith(PREFIX_MARK)}
        return any(current.get(p, 0) != recorded.get(p, 0) for p in names)

    async def renewing(self, key: str, write: Awaitable[T]) -> T:
        """``write`` (a Touch of ``key``, which extends its entry), renewing the TTL of the key's
        invalidated namespaces at the same time, so that they outlive the entry."""
        if not self.rules.of(key):
            return await write
        done, _ = await asyncio.gather(write, self.for_write([key]))
        return done

    async def invalidate(self, prefix: str) -> int:
        """Advance ``prefix``'s generation, then flush the near caches; returns the new generation."""
        call = ScriptCall(self._invalidate, [self._keys.namespace(prefix)], [self._ttl_ms])
        generation = int(await self._redis.run(call.script, call.keys, call.args))
        if self._channel:
            # After the generation moved, as InvalidateTags does (tags.py): a failure here fails the
            # call, which may be retried (invalidating again is harmless).
            await self._redis.publish(self._channel, f"{FLUSH} {FLUSH_REASON}")
        return generation

    async def _read(self, script: Script, names: Sequence[str], args: list[ScriptArg]) -> dict[str, int]:
        if not names:
            return {}
        calls = [ScriptCall(script, [self._keys.namespace(p)], args) for p in names]
        replies = await self._redis.run_many(calls)
        return {p: int(r) if r is not None else 0 for p, r in zip(names, replies, strict=True)}


__all__ = ["DEFAULT_RULES", "FLUSH_REASON", "OFF_REASON", "PrefixRules", "Prefixes"]
