"""SortedSetService transport: proto -> validated values -> store -> proto. No Redis calls here.

RangeByRank windows hold at most COORD_MAX_BATCH members; a wider one is refused (INVALID_ARGUMENT,
reason BATCH_TOO_LARGE, naming ``ranks`` or ``around``), never cut short in silence. A window whose
ends have the same sign is checked here, from its width alone; one that mixes signs (``0`` to ``-1``:
everything) depends on the length, so the script resolves it and refuses it when it holds more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import grpc

from coord.collections.v1 import sorted_set_pb2 as pb
from coord.collections.v1 import sorted_set_pb2_grpc

from ..._grpc import rpc
from ...errors import InvalidArgument, invalid
from ...tenancy import PerTenant
from ...validation import Limits
from .._transport import name_of, page_of, state_pb, ttl_of, write_of
from .store import Bound, Condition, Ranked, SortedSetStore, WindowTooWide

Ctx = grpc.aio.ServicerContext[Any, Any]

_CONDITIONS = {
    pb.PUT_CONDITION_UNSPECIFIED: Condition.ANY,
    pb.PUT_CONDITION_IF_NEW: Condition.IF_NEW,
    pb.PUT_CONDITION_IF_EXISTS: Condition.IF_EXISTS,
    pb.PUT_CONDITION_IF_HIGHER: Condition.IF_HIGHER,
    pb.PUT_CONDITION_IF_LOWER: Condition.IF_LOWER,
}
_DESCENDING = {pb.ORDER_UNSPECIFIED: False, pb.ORDER_ASCENDING: False, pb.ORDER_DESCENDING: True}


class SortedSetServicer(sorted_set_pb2_grpc.SortedSetServiceServicer):
    def __init__(self, stores: PerTenant[SortedSetStore], limits: Limits) -> None:
        self._stores = stores
        self._limits = limits

    @rpc
    async def Put(
        self, request: pb.SortedSetServicePutRequest, context: Ctx
    ) -> pb.SortedSetServicePutResponse:
        name = name_of(self._limits, request.name)
        self._limits.batch("members", len(request.members))
        scores: dict[str, float] = {}  # a member given twice takes its last score
        for i, m in enumerate(request.members):
            member = self._limits.key(f"members[{i}].member", m.member)
            scores[member] = _not_nan(f"members[{i}].score", m.score)
        if request.condition not in _CONDITIONS:
            raise invalid("condition", f"unknown PutCondition {request.condition}")
        write = write_of(self._limits, request.options)
        put = await self._stores.get().put(name, list(scores.items()), _CONDITIONS[request.condition], write)
        return pb.SortedSetServicePutResponse(
            collection=state_pb(put.written.state),
            applied=put.written.applied,
            added=put.added,
            updated=put.updated,
        )

    @rpc
    async def Increment(
        self, request: pb.SortedSetServiceIncrementRequest, context: Ctx
    ) -> pb.SortedSetServiceIncrementResponse:
        name = name_of(self._limits, request.name)
        member = self._limits.key("member", request.member)
        if not math.isfinite(request.delta):
            raise invalid("delta", f"must be a finite number (got {request.delta})")
        write = write_of(self._limits, request.options)
        written, score = await self._stores.get().increment(name, member, request.delta, write)
        return pb.SortedSetServiceIncrementResponse(
            collection=state_pb(written.state), applied=written.applied, score=score
        )

    @rpc
    async def Remove(
        self, request: pb.SortedSetServiceRemoveRequest, context: Ctx
    ) -> pb.SortedSetServiceRemoveResponse:
        name = name_of(self._limits, request.name)
        members = self._members(request.members)
        write = write_of(self._limits, request.options)
        written, removed = await self._stores.get().remove(name, members, write)
        return pb.SortedSetServiceRemoveResponse(
            collection=state_pb(written.state), applied=written.applied, removed=removed
        )

    @rpc
    async def GetScore(
        self, request: pb.SortedSetServiceGetScoreRequest, context: Ctx
    ) -> pb.SortedSetServiceGetScoreResponse:
        name = name_of(self._limits, request.name)
        members = self._members(request.members)
        state, scores = await self._stores.get().scores(name, members)
        return pb.SortedSetServiceGetScoreResponse(
            collection=state_pb(state),
            scores=[
                pb.MemberScore(member=m, found=False)
                if s is None
                else pb.MemberScore(member=m, found=True, score=s)
                for m, s in zip(members, scores, strict=True)
            ],
        )

    @rpc
    async def GetRank(
        self, request: pb.SortedSetServiceGetRankRequest, context: Ctx
    ) -> pb.SortedSetServiceGetRankResponse:
        name = name_of(self._limits, request.name)
        members = self._members(request.members)
        descending = _descending(request.order)
        state, ranks = await self._stores.get().ranks(name, members, descending)
        return pb.SortedSetServiceGetRankResponse(
            collection=state_pb(state),
            ranks=[
                pb.MemberRank(member=m, found=False)
                if r is None
                else pb.MemberRank(member=m, found=True, rank=r[0], score=r[1])
                for m, r in zip(members, ranks, strict=True)
            ],
        )

    @rpc
    async def RangeByRank(
        self, request: pb.SortedSetServiceRangeByRankRequest, context: Ctx
    ) -> pb.SortedSetServiceRangeByRankResponse:
        name = name_of(self._limits, request.name)
        descending = _descending(request.order)
        store, most = self._stores.get(), self._limits.max_batch
        which = request.WhichOneof("window")
        if which == "ranks":
            start, stop = request.ranks.start, request.ranks.stop
            if (start < 0) == (stop < 0) and stop - start + 1 > most:
                raise _too_wide("ranks", stop - start + 1, most)
            try:
                window = await store.range_by_rank(name, start, stop, descending, most)
            except WindowTooWide as e:
                raise _too_wide("ranks", e.count, most) from None
        elif which == "around":
            around = request.around
            member = self._limits.key("around.member", around.member)
            for field, n in (("around.before", around.before), ("around.after", around.after)):
                if n < 0:
                    raise invalid(field, f"must not be negative (got {n})")
            if around.before + around.after + 1 > most:
                raise _too_wide("around", around.before + around.after + 1, most)
            window = await store.around(name, member, around.before, around.after, descending)
        else:
            raise invalid("window", "give ranks (a window of ranks) or around (a member and its neighbours)")
        return pb.SortedSetServiceRangeByRankResponse(
            collection=state_pb(window.state), members=_ranked_pb(window.members), found=window.found
        )

    @rpc
    async def RangeByScore(
        self, request: pb.SortedSetServiceRangeByScoreRequest, context: Ctx
    ) -> pb.SortedSetServiceRangeByScoreResponse:
        name = name_of(self._limits, request.name)
        low = _bound("min", request.min) if request.HasField("min") else None
        high = _bound("max", request.max) if request.HasField("max") else None
        descending = _descending(request.order)
        if request.offset < 0:
            raise invalid("offset", f"must not be negative (got {request.offset})")
        limit = page_of(self._limits, "limit", request.limit)
        found = await self._stores.get().range_by_score(
            name, low, high, descending, offset=request.offset, limit=limit
        )
        return pb.SortedSetServiceRangeByScoreResponse(
            collection=state_pb(found.state),
            members=[pb.ScoredMember(member=m, score=s) for m, s in found.members],
            has_more=found.has_more,
        )

    @rpc
    async def Length(
        self, request: pb.SortedSetServiceLengthRequest, context: Ctx
    ) -> pb.SortedSetServiceLengthResponse:
        state = await self._stores.get().length(name_of(self._limits, request.name))
        return pb.SortedSetServiceLengthResponse(collection=state_pb(state))

    @rpc
    async def Delete(
        self, request: pb.SortedSetServiceDeleteRequest, context: Ctx
    ) -> pb.SortedSetServiceDeleteResponse:
        result = await self._stores.get().delete(name_of(self._limits, request.name), request.if_version)
        return pb.SortedSetServiceDeleteResponse(deleted=result.deleted, collection=state_pb(result.state))

    @rpc
    async def Touch(
        self, request: pb.SortedSetServiceTouchRequest, context: Ctx
    ) -> pb.SortedSetServiceTouchResponse:
        name = name_of(self._limits, request.name)
        state = await self._stores.get().touch(name, ttl_of(self._limits, "ttl", request.ttl))
        return pb.SortedSetServiceTouchResponse(collection=state_pb(state))

    def _members(self, members: Sequence[str]) -> list[str]:
        self._limits.batch("members", len(members))
        return [self._limits.key(f"members[{i}]", m) for i, m in enumerate(members)]


def _not_nan(field: str, score: float) -> float:
    if math.isnan(score):
        raise invalid(field, "must be a number, not NaN (infinities are allowed)")
    return score


def _bound(field: str, bound: pb.ScoreBound) -> Bound:
    return Bound(_not_nan(f"{field}.score", bound.score), bound.exclusive)


def _descending(order: pb.Order.ValueType) -> bool:
    if order not in _DESCENDING:
        raise invalid("order", f"unknown Order {order}")
    return _DESCENDING[order]


def _too_wide(field: str, count: int, most: int) -> InvalidArgument:
    return invalid(
        field,
        f"the window holds {count} members; the limit is {most} (read it in windows of at most {most})",
        reason="BATCH_TOO_LARGE",
        limit=str(most),
        actual=str(count),
    )


def _ranked_pb(members: list[Ranked]) -> list[pb.RankedMember]:
    return [pb.RankedMember(member=m.member, rank=m.rank, score=m.score) for m in members]
