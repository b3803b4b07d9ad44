"""Set domain logic: the set scripts, returning dataclasses. No gRPC in here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...redis import text
from ..common import SET, CollectionStore, State, Write, Written


@dataclass(frozen=True)
class Page:
    state: State
    members: list[str]
    cursor: str  # Redis's next cursor: "0" when the scan is complete


class SetStore(CollectionStore):
    kind = SET

    async def add(self, name: str, members: Sequence[str], write: Write) -> tuple[Written, int]:
        written, rest = await self._write("set_add", name, write, list(members))
        return written, int(rest[0]) if written.applied else 0

    async def remove(self, name: str, members: Sequence[str], write: Write) -> tuple[Written, int]:
        written, rest = await self._write("set_remove", name, write, list(members))
        return written, int(rest[0]) if written.applied else 0

    async def contains(self, name: str, members: Sequence[str]) -> tuple[State, list[bool]]:
        _, state, found = await self._call("set_contains", name, list(members))
        return state, [int(f) == 1 for f in found]

    async def members(self, name: str, cursor: str, page_size: int) -> Page:
        _, state, rest = await self._call("set_members", name, [cursor, page_size])
        return Page(state, [text(m) for m in rest[1:]], text(rest[0]))

    async def pop(self, name: str, count: int, write: Write) -> tuple[Written, list[str]]:
        written, rest = await self._write("set_pop", name, write, [count])
        return written, [text(m) for m in rest] if written.applied else []
