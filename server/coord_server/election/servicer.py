"""ElectionService transport: proto -> validated dataclasses -> store / Hold / observe -> proto.
No Redis calls here.

A Campaign stream is the lock's Hold (``lock/hold.py``) on the election's lock, with the election's
messages: join is the acquire (EXCLUSIVE, waiting as long as the stream lives), keep_alive the
heartbeat, resign the release.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from coord.election.v1 import election_pb2, election_pb2_grpc

from .._grpc import rpc, stream_rpc
from .._proto import duration_of_ms, timestamp_ms
from ..errors import CoordError, DeadlineExceeded, invalid
from ..events.topics import parse_id
from ..lock import hold
from ..lock.store import Mode
from ..tenancy import PerTenant
from ..validation import Limits
from .observe import Feeds, observe
from .store import Candidacy, Change, ChangeKind, Elected, ElectionStore, LeaderInfo, ResignOutcome

log = logging.getLogger("coord_server.rpc")

# The end-of-stream marker of context.read() (missing from grpc's type stubs).
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]

Ctx = grpc.aio.ServicerContext[Any, Any]

MAX_TOKEN_CHARS = 128
# Revisions are below 2^53 (terms are Redis TIME in microseconds), which the scripts compare exactly.
MAX_REVISION_PART = 1 << 53

_LOST = {
    hold.LostReason.EXPIRED: election_pb2.LOST_REASON_EXPIRED,
    hold.LostReason.NOT_HELD: election_pb2.LOST_REASON_ENDED,
    hold.LostReason.BACKEND_UNAVAILABLE: election_pb2.LOST_REASON_BACKEND_UNAVAILABLE,
}
_LOST_MESSAGES = {
    hold.LostReason.EXPIRED: "no keep-alive renewed the lease before it ran out",
    hold.LostReason.NOT_HELD: "the leadership was ended outside this stream (resigned with its term)",
    hold.LostReason.BACKEND_UNAVAILABLE: "Redis could not be reached to renew the lease in time",
}
_KINDS = {kind: election_pb2.ChangeKind.Value("CHANGE_KIND_" + kind.value) for kind in ChangeKind}
_RESIGN = {
    outcome: election_pb2.ResignOutcome.Value("RESIGN_OUTCOME_" + outcome.value) for outcome in ResignOutcome
}


@dataclass(frozen=True)
class Tenant:
    """One tenant's elections: the store and the live feeds of its Observe streams."""

    store: ElectionStore
    feeds: Feeds


@dataclass(frozen=True)
class ElectionLimits:
    """Input limits of the Election service: the shared ones plus the default lease (the lock's)."""

    common: Limits
    default_ttl_ms: int


class ElectionServicer(election_pb2_grpc.ElectionServiceServicer):
    # Every call reaches the elections of the caller's tenant (tenancy.py). A Campaign keeps the store
    # it started with, so its release after the stream ends is the same tenant's.
    def __init__(self, tenants: PerTenant[Tenant], limits: ElectionLimits) -> None:
        self._tenants = tenants
        self._limits = limits

    # -- Campaign ----------------------------------------------------------------------------------

    # Campaign reads and writes through the context (not an iterator): it must read while it waits.
    @rpc
    async def Campaign(self, request_iterator: Any, context: Ctx) -> None:  # type: ignore[override]
        first = await context.read()
        if first is EOF:
            return
        assert isinstance(first, election_pb2.CampaignRequest)
        if first.WhichOneof("kind") != "join":
            raise invalid("join", "the first message of a Campaign stream must be join")
        candidacy = self._candidacy(first.join)
        store = self._tenants.get().store
        # No wait limit: a candidate waits as long as its stream lives (the RPC deadline, if any).
        session = hold.Hold(store.locks, candidacy, math.inf, self._campaign_requests(context))
        async with contextlib.aclosing(session.outcomes()) as outcomes:
            async for outcome in outcomes:
                await context.write(_campaign_pb(outcome))

    async def _campaign_requests(self, context: Ctx) -> AsyncIterator[hold.Request]:
        """The client's messages after the first; ends when the stream is closed or broken."""
        while True:
            try:
                message = await context.read()
            except CoordError as error:  # bytes that are not a CampaignRequest (_decoding.py)
                yield hold.Unreadable(error)
                return
            except Exception:
                log.debug("Campaign stream read failed", exc_info=True)
                return
            if message is EOF:
                return
            yield self._campaign_request(message)

    def _campaign_request(self, message: election_pb2.CampaignRequest) -> hold.Request:
        kind = message.WhichOneof("kind")
        if kind == "resign":
            return hold.Release()
        if kind == "join":
            return hold.Refused(invalid("join", "only the first message of a Campaign stream may be join"))
        try:
            # Unset or zero: 0, which keeps the TTL of the join message.
            ttl_ms = self._limits.common.ttl("keep_alive.ttl", message.keep_alive.ttl, unset_ms=0)
            return hold.Heartbeat(ttl_ms)
        except CoordError as error:
            return hold.Refused(error)

    def _candidacy(self, join: election_pb2.CampaignJoin) -> Candidacy:
        name = self._limits.common.key("join.name", join.name)
        value = self._limits.common.value("join.value", join.value)
        ttl_ms = self._limits.common.ttl("join.ttl", join.ttl, unset_ms=self._limits.default_ttl_ms)
        return Candidacy(name, Mode.EXCLUSIVE, 0, ttl_ms, value=value)

    # -- unary RPCs --------------------------------------------------------------------------------

    @rpc
    async def Proclaim(
        self, request: election_pb2.ProclaimRequest, context: Ctx
    ) -> election_pb2.ProclaimResponse:
        name = self._limits.common.key("name", request.name)
        term = _term(request.term)
        token = _token(request.leader_token)
        value = self._limits.common.value("value", request.value)
        result = await self._tenants.get().store.proclaim(name, term, token, value)
        return election_pb2.ProclaimResponse(
            proclaimed=result.proclaimed, leader=_leader_pb(result.leader), revision=result.revision
        )

    @rpc
    async def Leader(self, request: election_pb2.LeaderRequest, context: Ctx) -> election_pb2.LeaderResponse:
        name = self._limits.common.key("name", request.name)
        state = await self._tenants.get().store.leader(name)
        return election_pb2.LeaderResponse(leader=_leader_pb(state.leader), revision=state.revision)

    @rpc
    async def Resign(self, request: election_pb2.ResignRequest, context: Ctx) -> election_pb2.ResignResponse:
        name = self._limits.common.key("name", request.name)
        term = _term(request.term)
        token = _token(request.leader_token)
        outcome = await self._tenants.get().store.resign(name, token, term)
        return election_pb2.ResignResponse(outcome=_RESIGN[outcome])

    # -- Observe -----------------------------------------------------------------------------------

    @stream_rpc
    async def Observe(
        self, request: election_pb2.ObserveRequest, context: Ctx
    ) -> AsyncIterator[election_pb2.ObserveResponse]:
        name = self._limits.common.key("name", request.name)
        after = _revision("after_revision", request.after_revision)
        changes = observe(self._tenants.get().feeds, name, after)
        async with contextlib.aclosing(changes):
            async for found in changes:
                yield _change_pb(found)


# -- validation ------------------------------------------------------------------------------------


def _term(term: int) -> int:
    if term <= 0:
        raise invalid("term", "must be the term of a leadership (above 0)")
    return term


def _token(token: str) -> str:
    if not token:
        raise invalid("leader_token", "must not be empty")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise invalid("leader_token", "is not a leader token given by Campaign")
    return token


def _revision(field: str, revision: str) -> str:
    """A revision to resume after ('' to start with the current state), checked."""
    if not revision:
        return ""
    parsed = parse_id(revision) if "-" in revision else None
    if parsed is None or max(parsed) >= MAX_REVISION_PART:
        raise invalid(field, 'must be a revision given by this service ("<a>-<b>") or empty')
    return f"{parsed[0]}-{parsed[1]}"


# -- responses -------------------------------------------------------------------------------------


def _leader_pb(leader: LeaderInfo | None) -> election_pb2.LeaderInfo | None:
    if leader is None:
        return None
    return election_pb2.LeaderInfo(
        term=leader.term,
        value=leader.value,
        elect_time=timestamp_ms(leader.elect_ms),
        update_time=timestamp_ms(leader.update_ms),
    )


def _leadership_pb(grant: Elected) -> election_pb2.Leadership:
    return election_pb2.Leadership(
        name=grant.name,
        term=grant.fencing_token,
        leader_token=grant.lock_token,
        value=grant.value,
        elect_time=timestamp_ms(grant.elect_ms),
        expire_time=timestamp_ms(grant.expire_ms),
        valid_for=duration_of_ms(grant.valid_for_ms),
        revision=grant.revision,
    )


def _campaign_pb(outcome: hold.Outcome) -> election_pb2.CampaignResponse:
    match outcome:
        case hold.Queued(denial):
            term = denial.holders[0].fencing_token if denial.holders else 0
            return election_pb2.CampaignResponse(
                queued=election_pb2.CampaignQueued(position=denial.queue_position, leader_term=term)
            )
        case hold.NotAcquired(None):  # the client resigned while queued
            return election_pb2.CampaignResponse(resigned=election_pb2.CampaignResigned(was_leader=False))
        case hold.NotAcquired(_):  # the wait reached the RPC deadline
            raise DeadlineExceeded("the Campaign's deadline came before it was elected")
        case hold.Granted(grant):
            assert isinstance(grant, Elected)
            return election_pb2.CampaignResponse(elected=_leadership_pb(grant))
        case hold.Renewed(result):
            return election_pb2.CampaignResponse(
                renewed=election_pb2.CampaignRenewed(
                    expire_time=timestamp_ms(result.expire_ms),
                    valid_for=duration_of_ms(result.valid_for_ms),
                    term=result.fencing_token,
                )
            )
        case hold.Released(_):
            return election_pb2.CampaignResponse(resigned=election_pb2.CampaignResigned(was_leader=True))
        case hold.Lost(reason):
            return election_pb2.CampaignResponse(
                lost=election_pb2.CampaignLost(reason=_LOST[reason], message=_LOST_MESSAGES[reason])
            )
    raise AssertionError(f"unexpected Hold outcome {outcome!r}")


def _change_pb(found: Change) -> election_pb2.ObserveResponse:
    return election_pb2.ObserveResponse(
        kind=_KINDS[found.kind],
        revision=found.revision,
        leader=_leader_pb(found.leader),
        ended_term=found.ended_term,
        end_reason=(
            election_pb2.EndReason.Value("END_REASON_" + found.end_reason.value)
            if found.end_reason is not None
            else election_pb2.END_REASON_UNSPECIFIED
        ),
        change_time=timestamp_ms(found.at_ms),
        gap=found.gap,
    )
