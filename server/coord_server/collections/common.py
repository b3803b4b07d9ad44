"""What every collection store shares: the state a script reports, write options, the generic
scripts (Delete, Touch, Length) and the refusals every script may answer. No gRPC in here."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import FailedPrecondition, FieldViolation, LimitReached, TooLarge
from ..redis import RedisBackend, ScriptArg, ScriptSet, text
from .keys import CollectionKeys

#: The kinds of collection, as scripts store them (``t`` in the meta hash) and errors name them.
MAP, LIST, SET, SORTED_SET = "map", "list", "set", "sorted_set"


@functools.cache
def scripts() -> ScriptSet:
    """The Lua scripts of every collection service (``collections/scripts``), loaded once."""
    return ScriptSet("coord_server.collections")


# _coll.lua's reply codes, and a read's "the answer would not fit in one reply".
DONE, NOT_APPLIED, WRONG_KIND, TOO_LARGE, REPLY_TOO_LARGE = 1, 0, -1, -2, -3

#: Bytes of a reply kept for what is not elements (the collection's state, message framing).
REPLY_MARGIN = 1024


@dataclass(frozen=True)
class State:
    """A collection as of a call: version 0 means there is none."""

    version: int = 0
    expire_ms: int = 0  # Unix ms by the Redis clock; 0 when there is no collection
    length: int = 0

    @property
    def exists(self) -> bool:
        return self.version > 0


@dataclass(frozen=True)
class Write:
    """The options of every write (validated): the TTL, its policy and the version condition."""

    ttl_ms: int
    keep_ttl: bool = False  # keep an existing collection's expiry (a new one gets ttl_ms)
    if_version: int = 0  # 0: unconditional

    def args(self, max_elements: int) -> list[ScriptArg]:
        """ARGV[1..4] of every write script (_coll.lua)."""
        return [
            self.ttl_ms,
            1 if self.keep_ttl else 0,
            str(self.if_version) if self.if_version else "",
            max_elements,
        ]


@dataclass(frozen=True)
class Written:
    """What a write reports besides its own results: whether it applied, and the state after it."""

    applied: bool
    state: State


@dataclass(frozen=True)
class Deleted:
    deleted: bool
    state: State  # before the call when nothing was deleted


class CollectionStore:
    """One tenant's collections of one kind: runs scripts and decodes the shared part of replies.

    Subclasses add the kind's own operations; inputs are validated by the caller.
    """

    kind: str = ""

    def __init__(
        self, redis: RedisBackend, scripts: ScriptSet, keys: CollectionKeys, max_elements: int
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._max_elements = max_elements

    async def _call(self, script: str, name: str, args: Sequence[ScriptArg]) -> tuple[int, State, list[Any]]:
        """Run ``script`` on collection ``name``: its code, state and own results, or the refusal
        every collection script may answer raised as the error it stands for."""
        reply = await self._redis.run(self._scripts[script], self._keys.both(name), list(args))
        return decode(name, self.kind, reply, self._max_elements)

    async def _write(
        self, script: str, name: str, write: Write, args: Sequence[ScriptArg]
    ) -> tuple[Written, list[Any]]:
        code, state, rest = await self._call(script, name, [*write.args(self._max_elements), *args])
        return Written(code == DONE, state), rest

    async def length(self, name: str) -> State:
        return (await self._call("length", name, [self.kind]))[1]

    async def touch(self, name: str, ttl_ms: int) -> State:
        return (await self._call("touch", name, [self.kind, ttl_ms]))[1]

    async def delete(self, name: str, if_version: int = 0) -> Deleted:
        code, state, _ = await self._call("delete", name, [self.kind, str(if_version) if if_version else ""])
        return Deleted(code == DONE, state)


def decode(name: str, kind: str, reply: Any, max_elements: int) -> tuple[int, State, list[Any]]:
    """Split a collection script's reply (_coll.lua) into its code, state and own results."""
    code = int(reply[0])
    if code == WRONG_KIND:
        raise wrong_kind(name, kind, text(reply[1]))
    if code == TOO_LARGE:
        raise too_large(name, max_elements, int(reply[1]))
    if code == REPLY_TOO_LARGE:  # the caller knows what to say: it gets the bytes needed
        return code, State(), [int(reply[1])]
    return code, State(int(reply[1]), int(reply[2]), int(reply[3])), list(reply[4:])


def reply_too_large(field: str, needed: int, limit: int, advice: str) -> TooLarge:
    """RESOURCE_EXHAUSTED for a read whose answer would not fit in one reply (COORD_MAX_MESSAGE_SIZE),
    refused before any element left Redis."""
    description = f"the answer would take {needed} bytes; one reply holds at most {limit} bytes"
    return TooLarge(
        message=f"{field}: {description} (the max message size): {advice}",
        metadata={"field": field, "limit": str(limit), "actual": str(needed)},
        violations=(FieldViolation(field, description),),
    )


def wrong_kind(name: str, expected: str, actual: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{name!r} holds a {actual.replace('_', ' ')}, not a {expected.replace('_', ' ')}: use the "
        f"{actual.replace('_', ' ')} service for it, or another name",
        reason="COLLECTION_WRONG_TYPE",
        metadata={"name": name, "expected": expected, "actual": actual},
    )


def too_large(name: str, limit: int, would: int) -> LimitReached:
    return LimitReached(
        f"{name!r} would hold {would} elements; a collection holds at most {limit} "
        "(COORD_COLLECTION_MAX_ELEMENTS): nothing was changed",
        reason="COLLECTION_TOO_LARGE",
        metadata={"name": name, "limit": str(limit), "actual": str(would)},
    )
