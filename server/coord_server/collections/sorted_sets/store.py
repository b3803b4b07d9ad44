"""Sorted set domain logic: the sorted set scripts, returning dataclasses. No gRPC in here.

Scores travel as text both ways: Python's ``repr`` of a double and Redis's formatting of one both
read back exactly, where a Lua number in a script reply would be cut to an integer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ...errors import OutOfRange
from ...redis import ScriptArg, text
from ..common import DONE, SORTED_SET, CollectionStore, State, Write, Written, decode

# Refusals of the sorted set scripts beyond _coll.lua's.
_NOT_A_NUMBER = -3  # zset_increment.lua: the new score would be NaN
_TOO_WIDE = -3  # zset_range_rank.lua: the window holds more members than allowed


class Condition(Enum):
    """Which members a Put may add or change, as ZADD's flag."""

    ANY = ""
    IF_NEW = "NX"
    IF_EXISTS = "XX"
    IF_HIGHER = "GT"
    IF_LOWER = "LT"


@dataclass(frozen=True)
class Bound:
    """One end of a score range."""

    score: float
    exclusive: bool = False

    def arg(self) -> str:
        return ("(" if self.exclusive else "") + _score_arg(self.score)


@dataclass(frozen=True)
class Put:
    written: Written
    added: int
    updated: int


@dataclass(frozen=True)
class Ranked:
    member: str
    rank: int  # from 0, in the order asked for
    score: float


@dataclass(frozen=True)
class Window:
    state: State
    members: list[Ranked]
    found: bool = True  # False when the member an Around names is not there


@dataclass(frozen=True)
class ScoreRange:
    state: State
    members: list[tuple[str, float]]
    has_more: bool


class WindowTooWide(Exception):
    """A window of ranks, resolved against the sorted set's length, holds more members than allowed."""

    def __init__(self, count: int) -> None:
        super().__init__(f"the window holds {count} members")
        self.count = count


class SortedSetStore(CollectionStore):
    kind = SORTED_SET

    async def put(
        self, name: str, members: Sequence[tuple[str, float]], condition: Condition, write: Write
    ) -> Put:
        """Put ``members``: distinct members (the caller keeps the last score of a repeated one)."""
        args: list[ScriptArg] = [condition.value]
        for member, score in members:
            args += [_score_arg(score), member]
        written, rest = await self._write("zset_put", name, write, args)
        if not written.applied:
            return Put(written, 0, 0)
        return Put(written, int(rest[0]), int(rest[1]))

    async def increment(self, name: str, member: str, delta: float, write: Write) -> tuple[Written, float]:
        args = [*write.args(self._max_elements), member, _score_arg(delta)]
        reply = await self._redis.run(self._scripts["zset_increment"], self._keys.both(name), args)
        if int(reply[0]) == _NOT_A_NUMBER:
            raise OutOfRange(
                f"incrementing member {member!r} of sorted set {name!r} by {delta} would make its "
                "score NaN: nothing was changed",
                reason="INTEGER_OVERFLOW",
                metadata={"name": name, "member": member, "delta": repr(delta)},
            )
        code, state, rest = decode(name, self.kind, reply, self._max_elements)
        if code != DONE:
            return Written(False, state), 0.0
        return Written(True, state), _score(rest[0])

    async def remove(self, name: str, members: Sequence[str], write: Write) -> tuple[Written, int]:
        written, rest = await self._write("zset_remove", name, write, list(members))
        return written, int(rest[0]) if written.applied else 0

    async def scores(self, name: str, members: Sequence[str]) -> tuple[State, list[float | None]]:
        _, state, scores = await self._call("zset_score", name, list(members))
        return state, [None if s is None else _score(s) for s in scores]

    async def ranks(
        self, name: str, members: Sequence[str], descending: bool
    ) -> tuple[State, list[tuple[int, float] | None]]:
        _, state, flat = await self._call("zset_rank", name, [_order(descending), *members])
        pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        return state, [None if rank is None else (int(rank), _score(score)) for rank, score in pairs]

    async def range_by_rank(
        self, name: str, start: int, stop: int, descending: bool, max_members: int
    ) -> Window:
        args: list[ScriptArg] = [_order(descending), str(start), str(stop), max_members]
        reply = await self._redis.run(self._scripts["zset_range_rank"], self._keys.both(name), args)
        if int(reply[0]) == _TOO_WIDE:
            raise WindowTooWide(int(reply[1]))
        _, state, rest = decode(name, self.kind, reply, self._max_elements)
        return Window(state, _ranked(int(rest[0]), rest[1:]))

    async def around(self, name: str, member: str, before: int, after: int, descending: bool) -> Window:
        args: list[ScriptArg] = [_order(descending), member, before, after]
        _, state, rest = await self._call("zset_around", name, args)
        first = int(rest[0])
        if first < 0:
            return Window(state, [], found=False)
        return Window(state, _ranked(first, rest[1:]))

    async def range_by_score(
        self,
        name: str,
        low: Bound | None,
        high: Bound | None,
        descending: bool,
        *,
        offset: int,
        limit: int,
    ) -> ScoreRange:
        """Up to ``limit`` members from ``offset`` on; reads one more to tell whether there are more."""
        args: list[ScriptArg] = [
            _order(descending),
            low.arg() if low else "-inf",
            high.arg() if high else "+inf",
            str(offset),
            limit + 1,
        ]
        _, state, flat = await self._call("zset_range_score", name, args)
        members = [(text(flat[i]), _score(flat[i + 1])) for i in range(0, len(flat), 2)]
        return ScoreRange(state, members[:limit], len(members) > limit)


def _order(descending: bool) -> str:
    return "desc" if descending else "asc"


def _score_arg(score: float) -> str:
    """A score as Redis parses it (``repr`` is exact; ``inf`` and ``-inf`` included)."""
    return repr(float(score))


def _score(raw: Any) -> float:
    return float(text(raw))


def _ranked(first: int, flat: list[Any]) -> list[Ranked]:
    return [Ranked(text(flat[i]), first + i // 2, _score(flat[i + 1])) for i in range(0, len(flat), 2)]
