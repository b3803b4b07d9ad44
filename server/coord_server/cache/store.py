"""Cache domain logic: calls the Lua scripts and returns dataclasses. No gRPC in here."""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import FailedPrecondition, FieldViolation, OutOfRange, TooLarge
from ..redis import RedisBackend, ScriptArg, ScriptCall, ScriptSet
from .keys import CacheKeys
from .leases import Leases, LeaseWaiting
from .prefixes import DEFAULT_RULES, Prefixes, PrefixRules
from .tags import TTL_MARGIN_MS, Tags, pack


class Condition(enum.IntEnum):
    """When a Set happens; the values are what set.lua expects in ARGV[3]."""

    ALWAYS = 0
    IF_ABSENT = 1
    IF_PRESENT = 2
    IF_VERSION = 3


class SetOutcome(enum.IntEnum):
    """set.lua's outcome codes."""

    STORED = 1
    ALREADY_EXISTS = 2
    NOT_FOUND = 3
    VERSION_MISMATCH = 4
    FENCED = 5
    LEASE_LOST = 6


class DeleteOutcome(enum.IntEnum):
    """delete.lua's outcome codes."""

    DELETED = 1
    NOT_FOUND = 2
    VERSION_MISMATCH = 3


@dataclass(frozen=True)
class Entry:
    key: str
    found: bool
    value: bytes = b""
    version: int = 0
    expire_ms: int = 0  # Unix time in ms by the Redis clock; 0 when unknown or absent
    compute_ms: int = 0  # how long its writer said the value took to compute (XFetch); 0 when not said


@dataclass(frozen=True)
class SetItem:
    key: str
    value: bytes
    ttl_ms: int
    condition: Condition = Condition.ALWAYS
    if_version: int = 0
    fence_lock: str = ""  # non-empty: a fenced write on behalf of a holder of this lock
    fencing_token: int = 0
    lease_token: str = ""  # non-empty: the fill of this fill lease (GetOrLease), stored only under it
    tags: tuple[str, ...] = ()  # distinct; InvalidateTags of any of them makes the entry a miss
    stale_grace_ms: int = 0  # how long past its TTL a GetOrLease serving stale values may return it
    compute_ms: int = 0  # how long the value took to compute, kept for early refreshes (XFetch)


@dataclass(frozen=True)
class SetResult:
    outcome: SetOutcome
    version: int
    expire_ms: int
    fencing_token: int = 0

    @property
    def stored(self) -> bool:
        return self.outcome is SetOutcome.STORED


@dataclass(frozen=True)
class KeyDeleteResult:
    key: str
    outcome: DeleteOutcome
    version: int


@dataclass(frozen=True)
class IncrementResult:
    value: int
    version: int
    created: bool
    expire_ms: int


@dataclass(frozen=True)
class TouchResult:
    found: bool
    expire_ms: int = 0


@dataclass(frozen=True)
class Leased:
    """A GetOrLease's answer: a hit (``entry.found``), the caller's fill lease (``token``, until
    ``expire_ms``), or neither; ``waited`` when the call waited for another caller's fill. A
    ``stale`` hit is an entry past its expiry served within its stale grace; it may come with the
    lease (the caller refreshes it)."""

    entry: Entry
    token: str = ""
    expire_ms: int = 0
    waited: bool = False
    stale: bool = False


# The lock's waiter defaults (COORD_LOCK_WAITER_TTL, _HEARTBEAT, COORD_LOCK_FALLBACK); add_to_server
# passes the configured ones.
DEFAULT_LEASE_WAITING = LeaseWaiting(waiter_ttl_ms=3000, heartbeat_interval=1.0, fallback=5.0)
# A tag key's TTL under the default COORD_MAX_TTL (30 days); add_to_server passes the configured one.
DEFAULT_TAG_TTL_MS = 30 * 86_400_000 + TTL_MARGIN_MS
# How many times a GetOrLease looks again after finding an entry whose tags were invalidated (each
# time a newer write of the key with invalidated tags, which only a Set racing InvalidateTags makes).
_STALE_ATTEMPTS = 3


class CacheStore:
    """Atomic cache operations on Redis. Inputs are already validated by the caller."""

    def __init__(
        self,
        redis: RedisBackend,
        scripts: ScriptSet,
        keys: CacheKeys,
        tombstone_ttl_ms: int,
        *,
        invalidations: bool = True,
        leases: LeaseWaiting = DEFAULT_LEASE_WAITING,
        tag_ttl_ms: int = DEFAULT_TAG_TTL_MS,
        prefix_rules: PrefixRules = DEFAULT_RULES,
        push_value_max: int = 0,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._tombstone_ttl_ms = tombstone_ttl_ms
        # Where writes publish their invalidations ('' when off: the scripts then publish nothing).
        self._channel = keys.invalidations() if invalidations else ""
        # Sets of values up to this size publish the entry with the invalidation (0: never).
        self._push_value_max = push_value_max if invalidations else 0
        self._get = scripts["get"]
        self._set = scripts["set"]
        self._delete = scripts["delete"]
        self._incr = scripts["incr"]
        self._touch = scripts["touch"]
        # Fill leases, and the wake-ups of their waiters that Set and Delete send (leases.py).
        self.leases = Leases(redis, scripts, keys, leases)
        # Tag generations (tags.py): a tagged Set reads them first, a tagged hit is checked against them.
        self.tags = Tags(redis, scripts, keys, tag_ttl_ms, self._channel)
        # Namespace generations (prefixes.py): read with every read of a key that has namespaces, and
        # by its Sets first; their keys live as long as tag keys.
        self.prefixes = Prefixes(
            redis, scripts, keys, rules=prefix_rules, ttl_ms=tag_ttl_ms, channel=self._channel
        )

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, key: str) -> Entry:
        read = self._redis.run(self._get, [self._keys.entry(key)], [])
        reply, generations = await self.prefixes.along([key], read)
        if int(reply[0]) == 1 and self.prefixes.stale(key, _tags_of(reply), generations):
            return Entry(key, False)
        if _tags_of(reply) is not None and (await self.tags.stale([reply[4]]))[0]:
            return Entry(key, False)
        return _entry(key, reply)

    async def get_many(
        self, keys: Sequence[str], *, max_bytes: int | None = None, per_entry: int = 0
    ) -> list[Entry]:
        """The entries of ``keys``, in their order; a key given several times is read once and
        answered each time.

        With ``max_bytes``, the answer must fit in it, each entry counted as ``per_entry`` plus its
        key's and its value's bytes, once per time its key was asked for; TooLarge when it cannot,
        raised before any value that does not fit has left Redis. Each key is asked for its value
        only if that is within an equal share of ``max_bytes``, else for its size, so the first round
        trip carries at most ``max_bytes`` of values; the longer values are fetched in a second one,
        only once the sizes show that the whole answer fits.
        """
        if not keys:
            return []
        distinct = list(dict.fromkeys(keys))
        if max_bytes is None:
            fetch = self._get_each(distinct)
        else:
            fetch = self._get_within(keys, distinct, max_bytes, per_entry)
        # With the generations of the keys' namespaces, read at the same time (prefixes.py).
        replies, generations = await self.prefixes.along(distinct, fetch)
        outdated = [
            k
            for k, r in replies.items()
            if int(r[0]) == 1 and self.prefixes.stale(k, _tags_of(r), generations)
        ]
        replies.update((k, _MISS) for k in outdated)
        tagged = [k for k, r in replies.items() if _tags_of(r) is not None]
        if tagged:  # their tags' generations, all in one more round trip
            stale = await self.tags.stale([replies[k][4] for k in tagged])
            replies.update((k, _MISS) for k, gone in zip(tagged, stale, strict=True) if gone)
        entries = {k: _entry(k, r) for k, r in replies.items()}
        return [entries[k] for k in keys]

    async def _get_each(self, keys: Sequence[str], *args: ScriptArg) -> dict[str, Any]:
        """get.lua's reply for each of ``keys`` (distinct), in one pipelined round trip."""
        calls = [ScriptCall(self._get, [self._keys.entry(k)], args) for k in keys]
        return dict(zip(keys, await self._redis.run_many(calls), strict=True))

    async def _get_within(
        self, keys: Sequence[str], distinct: Sequence[str], max_bytes: int, per_entry: int
    ) -> dict[str, Any]:
        times = Counter(keys)

        def total(replies: dict[str, Any]) -> int:
            return sum(times[k] * (per_entry + _utf8_size(k) + _value_size(r)) for k, r in replies.items())

        replies = await self._get_each(distinct, max_bytes // len(keys))
        needed = total(replies)
        longer = [k for k, r in replies.items() if int(r[0]) == _SIZE_ONLY]
        if longer and needed <= max_bytes:
            replies.update(await self._get_each(longer))
            needed = total(replies)  # a value may have changed since its size was read
        if needed > max_bytes:
            raise _reply_too_large(needed, max_bytes)
        return replies

    # -- writes ------------------------------------------------------------------------------------

    def _set_call(self, item: SetItem, tags: str = "") -> ScriptCall:
        args: list[ScriptArg] = [
            item.value,
            item.ttl_ms,
            int(item.condition),
            str(item.if_version),
            item.fence_lock,
            str(item.fencing_token),
            self._channel,
            item.lease_token,
        ]
        # Optional arguments, sent only up to the last one used: a plain write sends eight.
        extra: list[ScriptArg] = [tags, item.stale_grace_ms, item.compute_ms, self._push_limit(item)]
        while extra and not extra[-1]:
            extra.pop()
        args += extra
        return ScriptCall(self._set, self._keys.all(item.key), args)

    def _push_limit(self, item: SetItem) -> int:
        """The largest value set.lua publishes with the invalidation (0: none): never for a tagged
        entry or a key with namespaces, whose readers check generations that a Set racing with an
        invalidation of them may have missed (the near cache would keep what a Get calls a miss)."""
        if not self._push_value_max or item.tags or self.prefixes.rules.of(item.key):
            return 0
        return self._push_value_max

    async def _tag_fields(self, items: Sequence[SetItem]) -> list[str]:
        """Field t for each of ``items`` ('' when untagged): the current generations of their tags,
        read in one round trip before the writes (none for untagged items)."""
        wanted = list(dict.fromkeys(t for item in items for t in item.tags))
        keys = [item.key for item in items]
        if not wanted and not self.prefixes.of(keys):
            return [""] * len(items)
        # With the generations of the keys' namespaces (prefixes.py), in the same round trip.
        tags, namespaces = self.tags.for_write(wanted), self.prefixes.for_write(keys)
        generations, current = await asyncio.gather(tags, namespaces)
        return [
            pack([*((t, generations[t]) for t in item.tags), *self.prefixes.recorded(item.key, current)])
            for item in items
        ]

    async def set(self, item: SetItem) -> SetResult:
        """Write one entry; a stored write ends the key's fill lease and wakes its waiters."""
        call = self._set_call(item, (await self._tag_fields([item]))[0])  # '' at once when untagged
        reply = await self._redis.run(call.script, call.keys, call.args)
        await self.leases.notify(_set_wake(reply))
        return _set_result(reply)

    async def set_many(self, items: Sequence[SetItem]) -> list[SetResult]:
        fields = await self._tag_fields(items)
        replies = await self._redis.run_many(
            [self._set_call(i, f) for i, f in zip(items, fields, strict=True)]
        )
        await self.leases.notify([w for r in replies for w in _set_wake(r)])
        return [_set_result(r) for r in replies]

    async def delete(self, keys: Sequence[str], if_version: int = 0) -> list[KeyDeleteResult]:
        expected = str(if_version) if if_version else ""
        calls = [
            ScriptCall(self._delete, self._keys.all(k), [expected, self._tombstone_ttl_ms, self._channel])
            for k in keys
        ]
        if len(calls) == 1:
            replies = [await self._redis.run(calls[0].script, calls[0].keys, calls[0].args)]
        else:
            replies = await self._redis.run_many(calls)
        # Each Delete ended its key's fill lease: the first waiter takes a new one.
        await self.leases.notify([w for r in replies for w in r[2]])
        return [
            KeyDeleteResult(k, DeleteOutcome(int(r[0])), int(r[1]))
            for k, r in zip(keys, replies, strict=True)
        ]

    async def increment(self, key: str, delta: int, ttl_ms: int) -> IncrementResult:
        """Add ``delta`` to an integer entry; a stored Increment ends the key's fill lease and wakes
        its waiters, as a stored Set does."""
        namespaces = await self.prefixes.for_write([key])  # none read when the key has no namespace
        reply = await self._redis.run(self._incr, self._keys.all(key), [delta, ttl_ms, self._channel])
        code = int(reply[0])
        if code == -1:
            raise FailedPrecondition(
                f"key {key!r} holds a value that is not a 64-bit integer; it cannot be incremented",
                reason="VALUE_NOT_INTEGER",
                metadata={"key": key},
            )
        if code == -2:
            raise OutOfRange(
                f"incrementing key {key!r} by {delta} would overflow a signed 64-bit integer",
                reason="INTEGER_OVERFLOW",
                metadata={"key": key, "delta": str(delta)},
            )
        await self.leases.notify(reply[5])
        result = IncrementResult(int(reply[1]), int(reply[2]), bool(reply[3]), int(reply[4]))
        recorded = self.prefixes.recorded(key, namespaces)
        if result.created and recorded:
            return await self._record_namespaces(key, result, ttl_ms, pack(recorded))
        return result

    async def _record_namespaces(
        self, key: str, created: IncrementResult, ttl_ms: int, field: str
    ) -> IncrementResult:
        """An Increment that created its entry under an invalidated namespace: incr.lua records no
        generation, which would read as a miss, so the same value is written again with the
        generations read before the Increment (prefixes.py), unless the key changed meanwhile."""
        item = SetItem(key, str(created.value).encode(), ttl_ms, Condition.IF_VERSION, created.version)
        call = self._set_call(item, field)
        reply = await self._redis.run(call.script, call.keys, call.args)
        await self.leases.notify(_set_wake(reply))
        written = _set_result(reply)
        if not written.stored:
            return created
        return IncrementResult(created.value, written.version, True, written.expire_ms)

    async def touch(self, key: str, ttl_ms: int) -> TouchResult:
        touch = self._redis.run(self._touch, [self._keys.entry(key)], [ttl_ms, self._channel])
        reply = await self.prefixes.renewing(key, touch)  # namespaces' keys must outlive the entry
        return TouchResult(True, int(reply[1])) if int(reply[0]) else TouchResult(False)

    # -- fill leases -------------------------------------------------------------------------------

    async def get_or_lease(
        self, key: str, lease_ttl_ms: int, wait_s: float, *, serve_stale: bool = False
    ) -> Leased:
        """Read ``key``; on a miss take its fill lease, or wait up to ``wait_s`` for another caller's
        fill (see leases.py). With ``serve_stale``, an entry past its expiry but within its stale
        grace is answered at once (``stale``), with the lease to whichever caller finds it free.

        A hit on an entry whose tags or namespaces were invalidated is a miss: the call looks again,
        telling the script to take that version as missing, so it takes the lease (or waits) as for a
        miss. A stale hit that came with the lease is a miss under that lease at once.
        """
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + wait_s
        outdated, waited = 0, False
        for _ in range(_STALE_ATTEMPTS):
            left = max(0.0, ends_at - loop.time())
            lookup = self.leases.get_or_lease(
                key, lease_ttl_ms, left, stale_version=outdated, serve_stale=serve_stale
            )
            answer, generations = await self.prefixes.along([key], lookup)
            waited = waited or answer.waited
            hit = answer.hit
            if hit is None:
                return Leased(Entry(key, False), answer.token, answer.expire_ms, waited)
            tags = _tags_of(hit)
            fresh = not self.prefixes.stale(key, tags, generations)  # namespaces first: no round trip
            if fresh and (tags is None or not (await self.tags.stale([tags]))[0]):
                entry = _entry(key, hit)
                return Leased(entry, answer.token, answer.expire_ms, waited, stale=answer.stale)
            if answer.token:  # the caller holds the lease: a miss it fills
                return Leased(Entry(key, False), answer.token, answer.expire_ms, waited)
            outdated = int(hit[2])
        return Leased(Entry(key, False), waited=waited)

    # -- tags --------------------------------------------------------------------------------------

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        """Make every entry written with one of ``tags`` a miss (tags.py); returns how many distinct
        tags that was."""
        distinct = list(dict.fromkeys(tags))
        await self.tags.invalidate(distinct)
        return len(distinct)

    async def invalidate_prefix(self, prefix: str) -> int:
        """Make every entry under ``prefix`` (a namespace: PrefixRules.check) a miss (prefixes.py);
        returns its new generation."""
        return await self.prefixes.invalidate(prefix)


# get.lua's code for "the value is longer than asked for: here is only its size".
_SIZE_ONLY = 2
# get.lua's reply for a missing entry (also what a hit on an invalidated tagged entry becomes).
_MISS = (0,)


def _tags_of(reply: Any) -> Any | None:
    """Field t of a get.lua (or get_or_lease.lua) hit on a tagged entry (its fifth element); None for
    an untagged hit (Lua's false) and any other reply."""
    return reply[4] if len(reply) > 4 else None


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _value_size(reply: Any) -> int:
    """The value bytes a get.lua reply stands for: none when absent, its size when sent size only."""
    code = int(reply[0])
    if code == _SIZE_ONLY:
        return int(reply[1])
    return len(reply[1]) if code else 0


def _reply_too_large(needed: int, limit: int) -> TooLarge:
    description = f"the entries of these keys take {needed} bytes; one reply holds at most {limit} bytes"
    return TooLarge(
        message=f"keys: {description} (the max message size): read them in smaller batches",
        metadata={"field": "keys", "limit": str(limit), "actual": str(needed)},
        violations=(FieldViolation("keys", description),),
    )


def _entry(key: str, reply: Any) -> Entry:
    if not int(reply[0]):
        return Entry(key, False)
    return Entry(key, True, bytes(reply[1]), int(reply[2]), int(reply[3]), int(reply[5]))


def _set_wake(reply: Any) -> Sequence[Any]:
    """The waiters a stored Set woke (set.lua's fifth element); none for a write not made."""
    wake: Sequence[Any] = reply[4] if len(reply) > 4 else ()
    return wake


def _set_result(reply: Any) -> SetResult:
    return SetResult(SetOutcome(int(reply[0])), int(reply[1]), int(reply[2]), int(reply[3]))
