"""Cache domain logic: calls the Lua scripts and returns dataclasses. No gRPC in here."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import FailedPrecondition, FieldViolation, OutOfRange, TooLarge
from ..redis import RedisBackend, ScriptArg, ScriptCall, ScriptSet
from .keys import CacheKeys


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


@dataclass(frozen=True)
class SetItem:
    key: str
    value: bytes
    ttl_ms: int
    condition: Condition = Condition.ALWAYS
    if_version: int = 0
    fence_lock: str = ""  # non-empty: a fenced write on behalf of a holder of this lock
    fencing_token: int = 0


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


class CacheStore:
    """Atomic cache operations on Redis. Inputs are already validated by the caller."""

    def __init__(
        self, redis: RedisBackend, scripts: ScriptSet, keys: CacheKeys, tombstone_ttl_ms: int
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._tombstone_ttl_ms = tombstone_ttl_ms
        self._get = scripts["get"]
        self._set = scripts["set"]
        self._delete = scripts["delete"]
        self._incr = scripts["incr"]
        self._touch = scripts["touch"]

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, key: str) -> Entry:
        return _entry(key, await self._redis.run(self._get, [self._keys.entry(key)], []))

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
            replies = await self._get_each(distinct)
        else:
            replies = await self._get_within(keys, distinct, max_bytes, per_entry)
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

    def _set_call(self, item: SetItem) -> ScriptCall:
        args: list[ScriptArg] = [
            item.value,
            item.ttl_ms,
            int(item.condition),
            str(item.if_version),
            item.fence_lock,
            str(item.fencing_token),
        ]
        return ScriptCall(self._set, self._keys.both(item.key), args)

    async def set(self, item: SetItem) -> SetResult:
        call = self._set_call(item)
        return _set_result(await self._redis.run(call.script, call.keys, call.args))

    async def set_many(self, items: Sequence[SetItem]) -> list[SetResult]:
        replies = await self._redis.run_many([self._set_call(i) for i in items])
        return [_set_result(r) for r in replies]

    async def delete(self, keys: Sequence[str], if_version: int = 0) -> list[KeyDeleteResult]:
        expected = str(if_version) if if_version else ""
        calls = [
            ScriptCall(self._delete, self._keys.both(k), [expected, self._tombstone_ttl_ms]) for k in keys
        ]
        if len(calls) == 1:
            replies = [await self._redis.run(calls[0].script, calls[0].keys, calls[0].args)]
        else:
            replies = await self._redis.run_many(calls)
        return [
            KeyDeleteResult(k, DeleteOutcome(int(r[0])), int(r[1]))
            for k, r in zip(keys, replies, strict=True)
        ]

    async def increment(self, key: str, delta: int, ttl_ms: int) -> IncrementResult:
        reply = await self._redis.run(self._incr, self._keys.both(key), [delta, ttl_ms])
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
        return IncrementResult(int(reply[1]), int(reply[2]), bool(reply[3]), int(reply[4]))

    async def touch(self, key: str, ttl_ms: int) -> TouchResult:
        reply = await self._redis.run(self._touch, [self._keys.entry(key)], [ttl_ms])
        return TouchResult(True, int(reply[1])) if int(reply[0]) else TouchResult(False)


# get.lua's code for "the value is longer than asked for: here is only its size".
_SIZE_ONLY = 2


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
    return Entry(key, True, bytes(reply[1]), int(reply[2]), int(reply[3]))


def _set_result(reply: Any) -> SetResult:
    return SetResult(SetOutcome(int(reply[0])), int(reply[1]), int(reply[2]), int(reply[3]))
