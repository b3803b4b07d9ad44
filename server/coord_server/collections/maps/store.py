"""Map domain logic: the map scripts, returning dataclasses. No gRPC in here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import FailedPrecondition, OutOfRange
from ...redis import ScriptArg, text
from ..common import (
    DONE,
    MAP,
    REPLY_TOO_LARGE,
    CollectionStore,
    State,
    Write,
    Written,
    decode,
    reply_too_large,
)

# map_increment.lua's refusals.
_NOT_INTEGER, _OVERFLOW, _NOT_NUMBER = -3, -4, -5


@dataclass(frozen=True)
class Page:
    state: State
    fields: list[tuple[str, bytes]]
    cursor: str  # Redis's next cursor: "0" when the scan is complete


@dataclass(frozen=True)
class Incremented:
    written: Written
    value: int | float | None  # None when not applied


class MapStore(CollectionStore):
    kind = MAP

    async def set(self, name: str, fields: Sequence[tuple[str, bytes]], write: Write) -> tuple[Written, int]:
        args: list[ScriptArg] = [part for pair in fields for part in pair]
        written, rest = await self._write("map_set", name, write, args)
        return written, int(rest[0]) if written.applied else 0

    async def get(self, name: str, fields: Sequence[str], max_bytes: int) -> tuple[State, list[bytes | None]]:
        """The values of ``fields``; TooLarge, before any value leaves Redis, when they would take more
        than ``max_bytes``."""
        code, state, values = await self._call("map_get", name, [max_bytes, *fields])
        if code == REPLY_TOO_LARGE:
            raise reply_too_large("fields", values[0], max_bytes, "read fewer fields per call")
        return state, [None if v is None else bytes(v) for v in values]

    async def get_all(self, name: str, cursor: str, page_size: int, max_bytes: int) -> Page:
        """One HSCAN page; TooLarge when it would take more than ``max_bytes`` (big values: a smaller
        page size reads them)."""
        code, state, rest = await self._call("map_get_all", name, [cursor, page_size, max_bytes])
        if code == REPLY_TOO_LARGE:
            advice = "read this map with a smaller page_size"
            raise reply_too_large("page_size", rest[0], max_bytes, advice)
        flat = rest[1:]
        fields = [(text(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]
        return Page(state, fields, text(rest[0]))

    async def remove(self, name: str, fields: Sequence[str], write: Write) -> tuple[Written, int]:
        written, rest = await self._write("map_remove", name, write, list(fields))
        return written, int(rest[0]) if written.applied else 0

    async def increment(self, name: str, field: str, delta: int | float, write: Write) -> Incremented:
        is_float = isinstance(delta, float)
        args: list[ScriptArg] = [field, "f" if is_float else "i", repr(delta) if is_float else str(delta)]
        reply = await self._redis.run(
            self._scripts["map_increment"], self._keys.both(name), [*write.args(self._max_elements), *args]
        )
        code = int(reply[0])
        if code == _NOT_INTEGER:
            raise FailedPrecondition(
                f"field {field!r} of map {name!r} holds a value that is not a 64-bit integer; "
                "it cannot be incremented by an integer",
                reason="VALUE_NOT_INTEGER",
                metadata={"name": name, "field": field},
            )
        if code == _NOT_NUMBER:
            raise FailedPrecondition(
                f"field {field!r} of map {name!r} holds a value that is not a number; "
                "it cannot be incremented by a float",
                reason="COLLECTION_VALUE_NOT_NUMBER",
                metadata={"name": name, "field": field},
            )
        if code == _OVERFLOW:
            kind = "a finite double" if is_float else "a signed 64-bit integer"
            raise OutOfRange(
                f"incrementing field {field!r} of map {name!r} by {delta} would not leave {kind}",
                reason="INTEGER_OVERFLOW",
                metadata={"name": name, "field": field, "delta": str(delta)},
            )
        code, state, rest = decode(name, self.kind, reply, self._max_elements)
        if code != DONE:
            return Incremented(Written(False, state), None)
        raw = text(rest[0])
        return Incremented(Written(True, state), float(raw) if is_float else int(raw))
