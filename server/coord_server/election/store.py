"""Election domain logic: the lock's store on the election's keys, plus the election's own scripts.
No gRPC in here.

A campaign is the lock's Hold (``lock/hold.py``) on a :class:`CampaignLocks`: the lock's store,
unchanged but for the candidate's value sent with each attempt, and the election's record returned
with a grant. The election's scripts (``scripts/``) are the lock's, each run inside a wrapper that
records the change of leadership in the same step, so every grant, release and expiry the lock sees
is a change in the election's log.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..lock.store import AcquireResult, Grant, LockRequest, LockStore, ReleaseOutcome
from ..redis import RedisBackend, Script, ScriptArg, ScriptSet, text
from .keys import ElectionKeys

# Changes returned by one observe script call; a stream further behind reads the next page.
PAGE = 100


@dataclass(frozen=True)
class Candidacy(LockRequest):
    """A campaign's lock request (always EXCLUSIVE), with the value the candidate publishes."""

    value: bytes = b""


@dataclass(frozen=True)
class Elected(Grant):
    """The grant that made a candidate the leader: the lock's grant (its fencing token is the term)
    with the revision of the election and its time (ms, Redis clock)."""

    value: bytes = b""
    revision: str = ""
    elect_ms: int = 0


@dataclass(frozen=True)
class LeaderInfo:
    """A leadership as everyone sees it. ``expire_ms`` is its lease's end when read (0 in a change)."""

    term: int
    value: bytes
    elect_ms: int
    update_ms: int
    expire_ms: int = 0


class ChangeKind(enum.Enum):
    CURRENT = "CURRENT"
    ELECTED = "ELECTED"
    PROCLAIMED = "PROCLAIMED"
    ENDED = "ENDED"


class EndReason(enum.Enum):
    RESIGNED = "RESIGNED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Change:
    """One response of an Observe stream: a change of leadership, or the state (CURRENT)."""

    kind: ChangeKind
    revision: str
    at_ms: int
    leader: LeaderInfo | None = None
    ended_term: int = 0
    end_reason: EndReason | None = None
    gap: bool = False


@dataclass(frozen=True)
class Snapshot:
    """The state of an election: who leads at ``revision`` ('' when the election has no log)."""

    now_ms: int
    revision: str
    leader: LeaderInfo | None


@dataclass(frozen=True)
class Catchup:
    """What an observe call found: the state, and either the changes after the asked revision (the
    first :data:`PAGE` of them) or a gap (the log no longer has them all)."""

    state: Snapshot
    gap: bool
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Proclamation:
    proclaimed: bool
    revision: str
    leader: LeaderInfo | None


class ResignOutcome(enum.Enum):
    RESIGNED = "RESIGNED"
    EXPIRED = "EXPIRED"
    NOT_LEADER = "NOT_LEADER"


_RESIGNED = {
    ReleaseOutcome.RELEASED.value: ResignOutcome.RESIGNED,
    ReleaseOutcome.EXPIRED.value: ResignOutcome.EXPIRED,
}
_KINDS = {b"E": ChangeKind.ELECTED, b"P": ChangeKind.PROCLAIMED, b"N": ChangeKind.ENDED}
_REASONS = {b"R": EndReason.RESIGNED, b"E": EndReason.EXPIRED}


class CampaignLocks(LockStore):
    """The lock's store on an election's keys: its acquire script (the election's ``acquire.lua``)
    also takes the candidate's value, and a grant comes back as :class:`Elected`."""

    async def _attempt(self, request: LockRequest, token: str, wid: str, *, queue: bool) -> Any:
        value = request.value if isinstance(request, Candidacy) else b""
        args: list[ScriptArg] = [
            token,
            wid,
            request.mode.value,
            request.limit,
            request.ttl_ms,
            1 if queue else 0,
            self._waiter_ttl_ms,
            self.waiters.server_id,
            request.owner,
            value,
        ]
        return await self._run(self._acquire, request.name, args)

    async def _result(self, request: LockRequest, token: str, reply: Any) -> AcquireResult:
        result = await super()._result(request, token, reply)
        grant = result.grant
        if grant is None:
            return result
        value = request.value if isinstance(request, Candidacy) else b""
        elected = Elected(
            grant.name,
            grant.lock_token,
            grant.fencing_token,
            grant.mode,
            grant.expire_ms,
            grant.valid_for_ms,
            value=value,
            revision=text(reply[5]),
            elect_ms=int(reply[3]),
        )
        return AcquireResult(elected, None)


class ElectionStore:
    """One tenant's elections: ``locks`` runs the campaigns, the rest reads and changes leaderships."""

    def __init__(
        self,
        redis: RedisBackend,
        scripts: ScriptSet,
        keys: ElectionKeys,
        *,
        history_ms: int,
        waiter_ttl_ms: int,
        heartbeat_interval: float,
        fallback_max: float,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._history_ms = history_ms
        self.locks = CampaignLocks(
            redis,
            scripts,
            keys,
            history_ms=history_ms,
            waiter_ttl_ms=waiter_ttl_ms,
            heartbeat_interval=heartbeat_interval,
            fallback_max=fallback_max,
        )
        self._leader = scripts["leader"]
        self._proclaim = scripts["proclaim"]
        self._resign = scripts["resign"]
        self._observe = scripts["observe"]

    def log_key(self, name: str) -> str:
        return self._keys.log(name)

    async def _run(self, script: Script, name: str, args: Sequence[ScriptArg]) -> Any:
        return await self._redis.run(script, self._keys.all(name), [self._history_ms, *args])

    async def leader(self, name: str) -> Snapshot:
        """Who leads ``name`` now (an end noticed on the way is logged first)."""
        reply = await self._run(self._leader, name, [])
        return Snapshot(int(reply[0]), text(reply[1]), _leader(reply[2]))

    async def proclaim(self, name: str, term: int, token: str, value: bytes) -> Proclamation:
        reply = await self._run(self._proclaim, name, [str(term), token, value])
        return Proclamation(int(reply[0]) == 1, text(reply[1]), _leader(reply[3]))

    async def resign(self, name: str, token: str, term: int) -> ResignOutcome:
        reply = await self._run(self._resign, name, [token, str(term)])
        await self.locks.waiters.notify(reply[1])
        return _RESIGNED.get(text(reply[0]), ResignOutcome.NOT_LEADER)

    async def observe(self, name: str, after: str, count: int = PAGE) -> Catchup:
        """The state of ``name``, and (with ``after``) the changes after that revision."""
        reply = await self._run(self._observe, name, [after, count])
        state = Snapshot(int(reply[0]), text(reply[1]), _leader(reply[2]))
        changes = tuple(change(entry[0], _fields(entry[1])) for entry in reply[4])
        return Catchup(state, int(reply[3]) == 1, changes)


def change(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Change:
    """One entry of an election's log as a change (from XREAD or from the observe script)."""
    revision = text(entry_id)
    kind = _KINDS.get(fields.get(b"k", b""), ChangeKind.ENDED)
    at_ms = int(fields.get(b"at", b"0"))
    term = int(fields.get(b"t", b"0"))
    if kind is ChangeKind.ENDED:
        reason = _REASONS.get(fields.get(b"r", b""), EndReason.EXPIRED)
        return Change(kind, revision, at_ms, ended_term=term, end_reason=reason)
    elect_ms = int(fields.get(b"e", b"0"))
    leader = LeaderInfo(term, fields.get(b"v", b""), elect_ms, at_ms)
    return Change(kind, revision, at_ms, leader=leader)


def _fields(flat: Sequence[Any]) -> dict[bytes, bytes]:
    return {bytes(flat[i]): bytes(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _leader(row: Sequence[Any]) -> LeaderInfo | None:
    if not row:
        return None
    term, value, elect, update, expiry = row
    return LeaderInfo(int(term), bytes(value), int(elect), int(update), int(float(text(expiry))))
