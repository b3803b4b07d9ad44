"""ListService against a Python list: generated sequences of pushes (either end, capped or not), pops
(either end, any count), ranges, removes, trims, lengths and deletes give the model's answers, on
single-node Redis and Redis Cluster."""

from __future__ import annotations

import itertools
from typing import TypeAlias

import grpc
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from coord.collections.v1 import collection_pb2 as cpb
from coord.collections.v1 import list_pb2 as pb

from ..conftest import CoordUnderTest
from .test_lists import Stub, whole

MODEL = settings(
    max_examples=25, stateful_step_count=30, deadline=None, derandomize=True, database=None, print_blob=False
)

VALUES = st.lists(st.sampled_from([b"a", b"b", b"c", b""]), min_size=1, max_size=5)
ENDS = st.sampled_from([pb.END_UNSPECIFIED, pb.END_FRONT, pb.END_BACK])
End: TypeAlias = pb.End.ValueType
POSITIONS = st.integers(min_value=-8, max_value=8)


def _front(end: End, default_front: bool) -> bool:
    return end == pb.END_FRONT or (end == pb.END_UNSPECIFIED and default_front)


def test_generated_sequences_match_a_python_list(coord: CoordUnderTest) -> None:
    names = itertools.count()  # a fresh list per example: the fixture flushes only per test

    with grpc.insecure_channel(coord.target) as channel:
        stub = Stub(channel)

        class ListMachine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.name = f"model-{next(names)}"
                self.model: list[bytes] = []
                self.version = 0

            def _state(self, state: cpb.CollectionState) -> None:
                """Every reply's state: the model's length, and a version that never goes back."""
                assert state.length == len(self.model)
                assert state.exists == bool(self.model)
                if self.model:
                    assert state.version >= self.version
                    self.version = state.version

            @rule(values=VALUES, end=ENDS, max_length=st.integers(min_value=0, max_value=6))
            def push(self, values: list[bytes], end: End, max_length: int) -> None:
                response = stub.Push(
                    pb.ListServicePushRequest(name=self.name, values=values, end=end, max_length=max_length)
                )
                before = len(self.model)
                if _front(end, default_front=False):
                    self.model = values[::-1] + self.model
                    if max_length and len(self.model) > max_length:
                        self.model = self.model[:max_length]
                else:
                    self.model = self.model + values
                    if max_length and len(self.model) > max_length:
                        self.model = self.model[-max_length:]
                assert response.applied
                assert response.trimmed == before + len(values) - len(self.model)
                self._state(response.collection)

            @rule(end=ENDS, count=st.integers(min_value=0, max_value=4))
            def pop(self, end: End, count: int) -> None:
                response = stub.Pop(pb.ListServicePopRequest(name=self.name, end=end, count=count))
                n = min(max(count, 1), len(self.model))
                if _front(end, default_front=True):
                    expected, self.model = self.model[:n], self.model[n:]
                else:
                    expected = self.model[len(self.model) - n :][::-1]
                    self.model = self.model[: len(self.model) - n]
                assert list(response.values) == expected
                self._state(response.collection)

            @rule(start=POSITIONS, stop=POSITIONS)
            def range(self, start: int, stop: int) -> None:
                response = stub.Range(pb.ListServiceRangeRequest(name=self.name, start=start, stop=stop))
                assert list(response.values) == _lrange(self.model, start, stop)
                assert not response.has_more
                self._state(response.collection)

            @rule(value=st.sampled_from([b"a", b"b", b"z"]), count=st.integers(min_value=-3, max_value=3))
            def remove(self, value: bytes, count: int) -> None:
                response = stub.Remove(pb.ListServiceRemoveRequest(name=self.name, value=value, count=count))
                removed = _lrem(self.model, value, count)
                assert response.removed == removed
                self._state(response.collection)

            @rule(start=POSITIONS, stop=POSITIONS)
            def trim(self, start: int, stop: int) -> None:
                response = stub.Trim(pb.ListServiceTrimRequest(name=self.name, start=start, stop=stop))
                kept = _lrange(self.model, start, stop)
                assert response.removed == len(self.model) - len(kept)
                self.model = kept
                self._state(response.collection)

            @rule()
            def length(self) -> None:
                self._state(stub.Length(pb.ListServiceLengthRequest(name=self.name)).collection)

            @rule()
            def delete(self) -> None:
                response = stub.Delete(pb.ListServiceDeleteRequest(name=self.name))
                assert response.deleted == bool(self.model)
                self.model = []
                self._state(response.collection)

            @invariant()
            def matches(self) -> None:
                assert whole(stub, self.name) == self.model

        run_state_machine_as_test(ListMachine, settings=MODEL)


def _lrange(model: list[bytes], start: int, stop: int) -> list[bytes]:
    """Redis LRANGE (and what LTRIM keeps): positions from the front, negative from the back, stop
    included, clamped to the list."""
    n = len(model)
    if start < 0:
        start = max(n + start, 0)
    if stop < 0:
        stop = n + stop
    stop = min(stop, n - 1)
    return model[start : stop + 1] if start <= stop else []


def _lrem(model: list[bytes], value: bytes, count: int) -> int:
    """Redis LREM on the model, in place: 0 all, n > 0 the first n from the front, n < 0 from the back."""
    positions = [i for i, v in enumerate(model) if v == value]
    if count < 0:
        positions = positions[::-1][:-count]
    elif count > 0:
        positions = positions[:count]
    for i in sorted(positions, reverse=True):
        del model[i]
    return len(positions)
