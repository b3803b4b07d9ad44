"""SortedSetService's calls as data, shared by :class:`~.sync.SortedSet` and
:class:`~.aio.AsyncSortedSet`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from coord.collections.v1 import sorted_set_pb2 as pb

from .._call import Call
from . import _codec as c
from .models import Incremented, Put, PutCondition, Ranked, Removed

SERVICE = "coord.collections.v1.SortedSetService"
KIND = c.Kind(
    SERVICE,
    pb.SortedSetServiceLengthRequest,
    pb.SortedSetServiceDeleteRequest,
    pb.SortedSetServiceTouchRequest,
)

# The most members one RangeByScore page asks for when the caller gave a limit (the server's default
# per-call maximum); without a limit, pages are the server's default size.
PAGE_MAX = 1000

_CONDITIONS = {
    None: pb.PUT_CONDITION_UNSPECIFIED,
    PutCondition.IF_NEW: pb.PUT_CONDITION_IF_NEW,
    PutCondition.IF_EXISTS: pb.PUT_CONDITION_IF_EXISTS,
    PutCondition.IF_HIGHER: pb.PUT_CONDITION_IF_HIGHER,
    PutCondition.IF_LOWER: pb.PUT_CONDITION_IF_LOWER,
}


def _order(descending: bool) -> pb.Order.ValueType:
    if not isinstance(descending, bool):
        raise TypeError(f"descending must be a bool, not {type(descending).__name__}")
    return pb.ORDER_DESCENDING if descending else pb.ORDER_ASCENDING


def _condition(condition: PutCondition | str | None) -> pb.PutCondition.ValueType:
    try:
        return _CONDITIONS[None if condition is None else PutCondition(condition)]
    except ValueError:
        choices = ", ".join(repr(str(c)) for c in PutCondition)
        raise ValueError(f"condition must be one of {choices} or None, not {condition!r}") from None


def put(
    name: str,
    scores: Mapping[str, float] | None,
    more: Mapping[str, float],
    condition: PutCondition | str | None,
    options: c.Options,
) -> Call[Put]:
    merged: dict[str, float] = {}
    if scores is not None:
        if not isinstance(scores, Mapping):
            raise TypeError(f"scores must be a mapping of member to score, not {type(scores).__name__}")
        merged.update(scores)
    merged.update(more)
    members = [
        pb.ScoredMember(member=c.text(m, "member"), score=c.number(s, f"score of {m!r}", finite=False))
        for m, s in merged.items()
    ]
    request = pb.SortedSetServicePutRequest(
        name=c.name(name),
        members=c.required(members, "put", "member"),
        condition=_condition(condition),
        options=options,
    )
    return Call("Put", request, lambda r: Put(**c.written(r), added=r.added, updated=r.updated))


def increment(name: str, member: str, delta: float, options: c.Options) -> Call[Incremented[float]]:
    request = pb.SortedSetServiceIncrementRequest(
        name=c.name(name),
        member=c.text(member, "member"),
        delta=c.number(delta, "delta"),
        options=options,
    )
    return Call(
        "Increment", request, lambda r: Incremented(**c.written(r), value=r.score if r.applied else None)
    )


def remove(name: str, members: tuple[str, ...], options: c.Options) -> Call[Removed]:
    request = pb.SortedSetServiceRemoveRequest(
        name=c.name(name),
        members=c.required(c.texts(members, "members"), "remove", "member"),
        options=options,
    )
    return Call("Remove", request, lambda r: Removed(**c.written(r), removed=r.removed))


def score(name: str, member: str) -> Call[float | None]:
    request = pb.SortedSetServiceGetScoreRequest(name=c.name(name), members=[c.text(member, "member")])
    return Call("GetScore", request, lambda r: r.scores[0].score if r.scores[0].found else None)


def score_many(name: str, members: Iterable[str]) -> Call[dict[str, float]]:
    request = pb.SortedSetServiceGetScoreRequest(name=c.name(name), members=c.texts(members, "members"))
    if not request.members:
        return Call.answered({})
    return Call("GetScore", request, lambda r: {s.member: s.score for s in r.scores if s.found})


def rank(name: str, member: str, descending: bool) -> Call[Ranked | None]:
    request = pb.SortedSetServiceGetRankRequest(
        name=c.name(name), members=[c.text(member, "member")], order=_order(descending)
    )
    return Call("GetRank", request, lambda r: _ranks(r).get(r.ranks[0].member))


def rank_many(name: str, members: Iterable[str], descending: bool) -> Call[dict[str, Ranked]]:
    request = pb.SortedSetServiceGetRankRequest(
        name=c.name(name), members=c.texts(members, "members"), order=_order(descending)
    )
    if not request.members:
        return Call.answered({})
    return Call("GetRank", request, _ranks)


def _ranks(r: pb.SortedSetServiceGetRankResponse) -> dict[str, Ranked]:
    return {x.member: Ranked(x.member, x.rank, x.score) for x in r.ranks if x.found}


def range_by_rank(name: str, start: int, stop: int, descending: bool) -> Call[list[Ranked]]:
    request = pb.SortedSetServiceRangeByRankRequest(
        name=c.name(name),
        ranks=pb.RankWindow(start=c.integer(start, "start"), stop=c.integer(stop, "stop")),
        order=_order(descending),
    )
    return Call("RangeByRank", request, _window)


def around(name: str, member: str, before: int, after: int, descending: bool) -> Call[list[Ranked]]:
    window = pb.Around(
        member=c.text(member, "member"),
        before=c.integer(before, "before", low=0),
        after=c.integer(after, "after", low=0),
    )
    request = pb.SortedSetServiceRangeByRankRequest(
        name=c.name(name), around=window, order=_order(descending)
    )
    return Call("RangeByRank", request, _window)


def _window(r: pb.SortedSetServiceRangeByRankResponse) -> list[Ranked]:
    return [Ranked(m.member, m.rank, m.score) for m in r.members]


def range_by_score(
    name: str,
    *,
    low: float | None,
    high: float | None,
    low_exclusive: bool,
    high_exclusive: bool,
    descending: bool,
    offset: int,
    limit: int | None,
) -> c.Paged[tuple[str, float], list[tuple[str, float]]]:
    checked, order = c.name(name), _order(descending)
    bounds = {"min": _bound(low, low_exclusive, "min"), "max": _bound(high, high_exclusive, "max")}
    if limit is not None:
        c.integer(limit, "limit", low=0)

    def page(skip: int, remaining: int | None) -> Call[c.Page[tuple[str, float]]]:
        size = 0 if remaining is None else min(remaining, PAGE_MAX)
        request = pb.SortedSetServiceRangeByScoreRequest(
            name=checked, order=order, offset=skip, limit=size, **bounds
        )
        return Call("RangeByScore", request, lambda r: _scored(skip, r))

    return c.Paged(page, c.integer(offset, "offset", low=0), list, limit=limit)


def _bound(score: float | None, exclusive: bool, what: str) -> pb.ScoreBound | None:
    """One end of a score range; None (unset) for no bound."""
    if not isinstance(exclusive, bool):
        raise TypeError(f"{what}_exclusive must be a bool, not {type(exclusive).__name__}")
    if score is None:
        return None
    return pb.ScoreBound(score=c.number(score, what, finite=False), exclusive=exclusive)


def _scored(skip: int, r: pb.SortedSetServiceRangeByScoreResponse) -> c.Page[tuple[str, float]]:
    items = [(m.member, m.score) for m in r.members]
    return c.Page(r.collection.version, items, skip + len(items) if r.has_more else None)
