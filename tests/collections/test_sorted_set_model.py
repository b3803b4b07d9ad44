"""Generated SortedSetService call sequences (Hypothesis stateful testing) held to a Python model: a
dict of member -> score, ordered as Redis orders a sorted set (by score, then by member bytes).

Every example works on a fresh name, so examples never see each other's state. After every step the
length and existence match the model, and the version changes exactly when the model's members or
scores do.
"""

from __future__ import annotations

import itertools
import math

import grpc
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from coord.collections.v1 import collection_pb2 as cpb
from coord.collections.v1 import sorted_set_pb2 as pb
from coord.collections.v1 import sorted_set_pb2_grpc

from ..conftest import CoordUnderTest

RUNS = settings(
    max_examples=25, stateful_step_count=30, deadline=None, derandomize=True, database=None, print_blob=False
)
MEMBERS = st.sampled_from(["a", "b", "c", "d", "e", "B", "ü", "日本"])
SOME = st.lists(MEMBERS, min_size=1, max_size=5)
SCORES = st.sampled_from([-math.inf, -2.0, -1.0, -0.5, 0.0, 1.0, 1.5, 2.0, 3.0, math.inf])
DELTAS = st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
ORDERS = st.sampled_from([pb.ORDER_UNSPECIFIED, pb.ORDER_ASCENDING, pb.ORDER_DESCENDING])
CONDITIONS = st.sampled_from(
    [
        pb.PUT_CONDITION_UNSPECIFIED,
        pb.PUT_CONDITION_IF_NEW,
        pb.PUT_CONDITION_IF_EXISTS,
        pb.PUT_CONDITION_IF_HIGHER,
        pb.PUT_CONDITION_IF_LOWER,
    ]
)
BOUNDS = st.none() | st.tuples(SCORES, st.booleans())

Ranked = list[tuple[str, int, float]]

_names = itertools.count()


def admits(condition: int, old: float | None, new: float) -> bool:
    """Whether a Put under ``condition`` writes ``new`` over ``old`` (None: the member is new)."""
    if old is None:
        return condition != pb.PUT_CONDITION_IF_EXISTS
    if condition == pb.PUT_CONDITION_IF_NEW:
        return False
    if condition == pb.PUT_CONDITION_IF_HIGHER:
        return new > old
    if condition == pb.PUT_CONDITION_IF_LOWER:
        return new < old
    return True


def test_sorted_set_matches_the_model(coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        stub = sorted_set_pb2_grpc.SortedSetServiceStub(channel)

        class SortedSetMachine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.name = f"zset-model-{next(_names)}"
                self.model: dict[str, float] = {}
                self.version = 0

            def ordered(self, order: int) -> list[tuple[str, float]]:
                ascending = sorted(self.model.items(), key=lambda kv: (kv[1], kv[0].encode()))
                return ascending[::-1] if order == pb.ORDER_DESCENDING else ascending

            def _state(self, state: cpb.CollectionState, changed: bool) -> None:
                assert state.exists == bool(self.model) and state.length == len(self.model)
                if not self.model:
                    assert state.version == 0
                elif changed:
                    assert state.version > self.version
                else:
                    assert state.version == self.version
                self.version = state.version

            @rule(
                pairs=st.lists(st.tuples(MEMBERS, SCORES), min_size=1, max_size=5),
                condition=CONDITIONS,
            )
            def put(self, pairs: list[tuple[str, float]], condition: int) -> None:
                reply = stub.Put(
                    pb.SortedSetServicePutRequest(
                        name=self.name,
                        members=[pb.ScoredMember(member=m, score=s) for m, s in pairs],
                        condition=condition,  # type: ignore[arg-type]
                    )
                )
                added = updated = 0
                for member, score in dict(pairs).items():  # a repeated member: its last score
                    old = self.model.get(member)
                    if not admits(condition, old, score):
                        continue
                    if old is None:
                        added += 1
                    elif old != score:
                        updated += 1
                    self.model[member] = score
                assert reply.applied and (reply.added, reply.updated) == (added, updated)
                self._state(reply.collection, bool(added or updated))

            @rule(member=MEMBERS, delta=DELTAS)
            def increment(self, member: str, delta: float) -> None:
                reply = stub.Increment(
                    pb.SortedSetServiceIncrementRequest(name=self.name, member=member, delta=delta)
                )
                old = self.model.get(member)
                new = (old or 0.0) + delta
                self.model[member] = new
                assert reply.applied and reply.score == new
                self._state(reply.collection, old is None or old != new)

            @rule(members=SOME)
            def remove(self, members: list[str]) -> None:
                reply = stub.Remove(pb.SortedSetServiceRemoveRequest(name=self.name, members=members))
                gone = set(members) & set(self.model)
                for member in gone:
                    del self.model[member]
                assert reply.applied and reply.removed == len(gone)
                self._state(reply.collection, bool(gone))

            @rule(members=SOME)
            def get_score(self, members: list[str]) -> None:
                reply = stub.GetScore(pb.SortedSetServiceGetScoreRequest(name=self.name, members=members))
                got = [(s.member, s.score if s.found else None) for s in reply.scores]
                assert got == [(m, self.model.get(m)) for m in members]
                self._state(reply.collection, False)

            @rule(members=SOME, order=ORDERS)
            def get_rank(self, members: list[str], order: int) -> None:
                reply = stub.GetRank(
                    pb.SortedSetServiceGetRankRequest(name=self.name, members=members, order=order)  # type: ignore[arg-type]
                )
                rank_of = {m: (rank, s) for rank, (m, s) in enumerate(self.ordered(order))}
                got = [(r.member, (r.rank, r.score) if r.found else None) for r in reply.ranks]
                assert got == [(m, rank_of.get(m)) for m in members]
                self._state(reply.collection, False)

            @rule(start=st.integers(-7, 7), stop=st.integers(-7, 7), order=ORDERS)
            def range_by_rank(self, start: int, stop: int, order: int) -> None:
                reply = stub.RangeByRank(
                    pb.SortedSetServiceRangeByRankRequest(
                        name=self.name,
                        ranks=pb.RankWindow(start=start, stop=stop),
                        order=order,  # type: ignore[arg-type]
                    )
                )
                n = len(self.model)
                first = max(start + n if start < 0 else start, 0)
                last = min(stop + n if stop < 0 else stop, n - 1)
                expected = [(m, r, s) for r, (m, s) in enumerate(self.ordered(order)) if first <= r <= last]
                assert reply.found and ranked(reply) == expected
                self._state(reply.collection, False)

            @rule(member=MEMBERS, before=st.integers(0, 3), after=st.integers(0, 3), order=ORDERS)
            def around(self, member: str, before: int, after: int, order: int) -> None:
                reply = stub.RangeByRank(
                    pb.SortedSetServiceRangeByRankRequest(
                        name=self.name,
                        around=pb.Around(member=member, before=before, after=after),
                        order=order,  # type: ignore[arg-type]
                    )
                )
                ordered = self.ordered(order)
                if member not in self.model:
                    assert not reply.found and list(reply.members) == []
                else:
                    rank = [m for m, _ in ordered].index(member)
                    expected = [
                        (m, r, s) for r, (m, s) in enumerate(ordered) if rank - before <= r <= rank + after
                    ]
                    assert reply.found and ranked(reply) == expected
                self._state(reply.collection, False)

            @rule(
                low=BOUNDS,
                high=BOUNDS,
                order=ORDERS,
                offset=st.integers(0, 4),
                limit=st.integers(0, 4),
            )
            def range_by_score(
                self,
                low: tuple[float, bool] | None,
                high: tuple[float, bool] | None,
                order: int,
                offset: int,
                limit: int,
            ) -> None:
                request = pb.SortedSetServiceRangeByScoreRequest(
                    name=self.name,
                    order=order,  # type: ignore[arg-type]
                    offset=offset,
                    limit=limit,
                )
                if low is not None:
                    request.min.CopyFrom(pb.ScoreBound(score=low[0], exclusive=low[1]))
                if high is not None:
                    request.max.CopyFrom(pb.ScoreBound(score=high[0], exclusive=high[1]))
                reply = stub.RangeByScore(request)
                inside = [(m, s) for m, s in self.ordered(order) if within(s, low, high)]
                take = limit or 100
                assert [(m.member, m.score) for m in reply.members] == inside[offset : offset + take]
                assert reply.has_more == (len(inside) > offset + take)
                self._state(reply.collection, False)

            @rule()
            def delete(self) -> None:
                reply = stub.Delete(pb.SortedSetServiceDeleteRequest(name=self.name))
                assert reply.deleted == bool(self.model) and not reply.collection.exists
                self.model.clear()
                self.version = 0

            @invariant()
            def length(self) -> None:
                state = stub.Length(pb.SortedSetServiceLengthRequest(name=self.name)).collection
                self._state(state, False)

        run_state_machine_as_test(SortedSetMachine, settings=RUNS)


def ranked(reply: pb.SortedSetServiceRangeByRankResponse) -> Ranked:
    return [(m.member, m.rank, m.score) for m in reply.members]


def within(score: float, low: tuple[float, bool] | None, high: tuple[float, bool] | None) -> bool:
    if low is not None and not (score > low[0] if low[1] else score >= low[0]):
        return False
    return high is None or (score < high[0] if high[1] else score <= high[0])
