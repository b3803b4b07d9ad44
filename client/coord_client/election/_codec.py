"""The Election service's calls as data: each function checks its arguments, builds the request and
says how the response reads (a :class:`~coord_client._call.Call`), or parses one stream message. No
I/O here: :mod:`.sync` and :mod:`.aio` send the same requests.

Bad arguments raise ValueError or TypeError here, before anything is sent. Values are bytes; a
``str`` is sent as UTF-8.
"""

from __future__ import annotations

import grpc

from coord.election.v1 import election_pb2

from .._call import Call
from .._convert import Seconds, seconds, to_duration, utc_or_none
from .models import (
    ChangeKind,
    EndReason,
    Leader,
    LeaderChange,
    LeaderState,
    ProclaimResult,
    ResignOutcome,
    ResignResult,
)

SERVICE = "coord.election.v1.ElectionService"

_KINDS = {
    election_pb2.CHANGE_KIND_CURRENT: ChangeKind.CURRENT,
    election_pb2.CHANGE_KIND_ELECTED: ChangeKind.ELECTED,
    election_pb2.CHANGE_KIND_PROCLAIMED: ChangeKind.PROCLAIMED,
    election_pb2.CHANGE_KIND_ENDED: ChangeKind.ENDED,
}
_END_REASONS = {
    election_pb2.END_REASON_RESIGNED: EndReason.RESIGNED,
    election_pb2.END_REASON_EXPIRED: EndReason.EXPIRED,
}
_RESIGN_OUTCOMES = {
    election_pb2.RESIGN_OUTCOME_RESIGNED: ResignOutcome.RESIGNED,
    election_pb2.RESIGN_OUTCOME_EXPIRED: ResignOutcome.EXPIRED,
    election_pb2.RESIGN_OUTCOME_NOT_LEADER: ResignOutcome.NOT_LEADER,
}
LOST_REASONS = {
    election_pb2.LOST_REASON_EXPIRED: "expired",
    election_pb2.LOST_REASON_ENDED: "ended",
    election_pb2.LOST_REASON_BACKEND_UNAVAILABLE: "backend_unavailable",
}
# Errors after which an Observe stream reconnects and resumes after its last revision.
RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

KEEP_ALIVE = election_pb2.CampaignRequest(keep_alive=election_pb2.CampaignKeepAlive())
RESIGN = election_pb2.CampaignRequest(resign=election_pb2.CampaignResign())


# ---------------------------------------------------------------- arguments


def name_of(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"an election name must be a str, not {type(name).__name__}")
    return name


def value_of(value: bytes | str, field: str = "value") -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{field} must be bytes or str, not {type(value).__name__}")


def term_of(term: int) -> int:
    if not isinstance(term, int) or isinstance(term, bool) or term <= 0:
        raise ValueError(f"term must be a positive int (got {term!r})")
    return term


def join(name: str, value: bytes | str, ttl: Seconds | None) -> election_pb2.CampaignRequest:
    """The first message of a Campaign stream; ``ttl`` None or 0: the server's default lease."""
    lease = seconds(ttl, "ttl")
    request = election_pb2.CampaignJoin(
        name=name_of(name), value=value_of(value), ttl=to_duration(lease or None)
    )
    return election_pb2.CampaignRequest(join=request)


# ---------------------------------------------------------------- the calls


def leader(name: str) -> Call[LeaderState]:
    request = election_pb2.LeaderRequest(name=name_of(name))
    return Call(
        "Leader", request, lambda r: LeaderState(leader_info(r.leader, r.HasField("leader")), r.revision)
    )


def proclaim(name: str, term: int, leader_token: str, value: bytes | str) -> Call[ProclaimResult]:
    request = election_pb2.ProclaimRequest(
        name=name_of(name), term=term_of(term), leader_token=leader_token, value=value_of(value)
    )
    return Call(
        "Proclaim",
        request,
        lambda r: ProclaimResult(r.proclaimed, leader_info(r.leader, r.HasField("leader")), r.revision),
    )


def resign(name: str, term: int, leader_token: str) -> Call[ResignResult]:
    request = election_pb2.ResignRequest(name=name_of(name), term=term_of(term), leader_token=leader_token)
    return Call(
        "Resign",
        request,
        lambda r: ResignResult(name, _RESIGN_OUTCOMES.get(r.outcome, ResignOutcome.NOT_LEADER)),
    )


def observe_request(name: str, after: str | None) -> election_pb2.ObserveRequest:
    if after is not None and not isinstance(after, str):
        raise TypeError(f"after must be a revision (str), not {type(after).__name__}")
    return election_pb2.ObserveRequest(name=name_of(name), after_revision=after or "")


# ---------------------------------------------------------------- parsers


def leader_info(pb: election_pb2.LeaderInfo, present: bool = True) -> Leader | None:
    if not present:
        return None
    return Leader(
        term=pb.term,
        value=pb.value,
        elect_time=utc_or_none(pb.elect_time, pb.HasField("elect_time")),
        update_time=utc_or_none(pb.update_time, pb.HasField("update_time")),
    )


def change(pb: election_pb2.ObserveResponse) -> LeaderChange:
    return LeaderChange(
        kind=_KINDS.get(pb.kind, ChangeKind.CURRENT),
        revision=pb.revision,
        leader=leader_info(pb.leader, pb.HasField("leader")),
        change_time=utc_or_none(pb.change_time, pb.HasField("change_time")),
        ended_term=pb.ended_term,
        end_reason=_END_REASONS.get(pb.end_reason),
        gap=pb.gap,
    )
