"""Generated SetService call sequences (Hypothesis stateful testing) held to a Python set.

Every example works on a fresh set name, so examples never see each other's state. After every step
the set's length and existence match the model, and the collection's version changes exactly when
the model's members do.
"""

from __future__ import annotations

import itertools

import grpc
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from coord.collections.v1 import collection_pb2 as cpb
from coord.collections.v1 import set_pb2 as pb
from coord.collections.v1 import set_pb2_grpc

from ..conftest import CoordUnderTest

RUNS = settings(
    max_examples=25, stateful_step_count=30, deadline=None, derandomize=True, database=None, print_blob=False
)
MEMBERS = st.sampled_from(["a", "b", "c", "d", "e", "f", "ü", "日本"])
SOME = st.lists(MEMBERS, min_size=1, max_size=6)

_names = itertools.count()


def test_set_matches_the_model(coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        stub = set_pb2_grpc.SetServiceStub(channel)

        class SetMachine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.name = f"set-model-{next(_names)}"
                self.model: set[str] = set()
                self.version = 0

            def _state(self, state: cpb.CollectionState, changed: bool) -> None:
                assert state.exists == bool(self.model) and state.length == len(self.model)
                if not self.model:
                    assert state.version == 0
                elif changed:
                    assert state.version > self.version
                else:
                    assert state.version == self.version
                self.version = state.version

            @rule(members=SOME)
            def add(self, members: list[str]) -> None:
                reply = stub.Add(pb.SetServiceAddRequest(name=self.name, members=members))
                new = set(members) - self.model
                assert reply.applied and reply.added == len(new)
                self.model |= new
                self._state(reply.collection, bool(new))

            @rule(members=SOME)
            def remove(self, members: list[str]) -> None:
                reply = stub.Remove(pb.SetServiceRemoveRequest(name=self.name, members=members))
                gone = set(members) & self.model
                assert reply.applied and reply.removed == len(gone)
                self.model -= gone
                self._state(reply.collection, bool(gone))

            @rule(members=SOME)
            def contains(self, members: list[str]) -> None:
                reply = stub.Contains(pb.SetServiceContainsRequest(name=self.name, members=members))
                assert list(reply.contains) == [m in self.model for m in members]
                self._state(reply.collection, False)

            @rule(count=st.integers(0, 4))
            def pop(self, count: int) -> None:
                reply = stub.Pop(pb.SetServicePopRequest(name=self.name, count=count))
                taken = list(reply.members)
                assert reply.applied and len(taken) == min(max(count, 1), len(self.model))
                assert len(set(taken)) == len(taken) and set(taken) <= self.model
                self.model -= set(taken)
                self._state(reply.collection, bool(taken))
                if taken:
                    found = stub.Contains(pb.SetServiceContainsRequest(name=self.name, members=taken))
                    assert not any(found.contains)

            @rule(page_size=st.integers(0, 4))
            def members(self, page_size: int) -> None:
                seen: list[str] = []
                cursor = ""
                while True:
                    page = stub.Members(
                        pb.SetServiceMembersRequest(name=self.name, cursor=cursor, page_size=page_size)
                    )
                    seen += page.members
                    self._state(page.collection, False)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                assert set(seen) == self.model

            @rule()
            def delete(self) -> None:
                reply = stub.Delete(pb.SetServiceDeleteRequest(name=self.name))
                assert reply.deleted == bool(self.model) and not reply.collection.exists
                self.model.clear()
                self.version = 0

            @invariant()
            def length(self) -> None:
                state = stub.Length(pb.SetServiceLengthRequest(name=self.name)).collection
                self._state(state, False)

        run_state_machine_as_test(SetMachine, settings=RUNS)
