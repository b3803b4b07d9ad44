"""Generated sequences of map calls (Hypothesis stateful testing) held to a Python dict.

Each example works on a fresh map name; after every step the whole map (GetAll over pages), its
length and its version agree with the model: the version grows exactly when the fields change.
"""

from __future__ import annotations

import itertools

import grpc
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from coord.collections.v1 import collection_pb2 as cpb
from coord.collections.v1 import map_pb2 as pb
from coord.collections.v1 import map_pb2_grpc
from tests.conftest import CoordUnderTest

MACHINE = settings(
    max_examples=20, stateful_step_count=25, deadline=None, derandomize=True, database=None, print_blob=False
)
NAMES = st.sampled_from(["a", "b", "c", "d", "e", "{x}", "é"])
VALUES = st.binary(max_size=8)
_ids = itertools.count()


def run(stub: map_pb2_grpc.MapServiceStub) -> None:
    class MapMachine(RuleBasedStateMachine):
        @initialize()
        def fresh(self) -> None:
            self.name = f"model:{next(_ids)}"
            self.model: dict[str, bytes] = {}
            self.version = 0

        def _seen(self, state: cpb.CollectionState, changed: bool) -> None:
            assert state.exists == bool(self.model)
            assert state.length == len(self.model)
            if not self.model:
                assert state.version == 0
            elif changed:
                assert state.version > self.version
            else:
                assert state.version == self.version
            self.version = state.version

        @rule(items=st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=4))
        def set(self, items: list[tuple[str, bytes]]) -> None:
            reply = stub.Set(
                pb.MapServiceSetRequest(
                    name=self.name, fields=[pb.MapField(field=f, value=v) for f, v in items]
                )
            )
            added = len({f for f, _ in items} - self.model.keys())
            self.model.update(dict(items))
            assert reply.applied and reply.added == added
            self._seen(reply.collection, True)

        @rule(fields=st.lists(NAMES, min_size=1, max_size=3))
        def remove(self, fields: list[str]) -> None:
            reply = stub.Remove(pb.MapServiceRemoveRequest(name=self.name, fields=fields))
            gone = {f for f in fields if f in self.model}
            for field in gone:
                del self.model[field]
            assert reply.removed == len(gone)
            self._seen(reply.collection, bool(gone))

        @rule(field=NAMES, delta=st.integers(-(10**6), 10**6))
        def increment(self, field: str, delta: int) -> None:
            current = self.model.get(field, b"0")
            try:
                number = int(current)
            except ValueError:
                number = None
            if number is None or current != str(number).encode():
                with pytest.raises(grpc.RpcError) as raised:
                    stub.Increment(pb.MapServiceIncrementRequest(name=self.name, field=field, delta=delta))
                assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                return
            reply = stub.Increment(pb.MapServiceIncrementRequest(name=self.name, field=field, delta=delta))
            self.model[field] = str(number + delta).encode()
            assert reply.int_value == number + delta
            self._seen(reply.collection, True)

        @rule(fields=st.lists(NAMES, min_size=1, max_size=4))
        def get(self, fields: list[str]) -> None:
            reply = stub.Get(pb.MapServiceGetRequest(name=self.name, fields=fields))
            assert [(v.field, v.found, v.value) for v in reply.values] == [
                (f, f in self.model, self.model.get(f, b"")) for f in fields
            ]
            self._seen(reply.collection, False)

        @rule(if_match=st.booleans())
        def delete(self, if_match: bool) -> None:
            expected = self.version if if_match else self.version + 1
            reply = stub.Delete(pb.MapServiceDeleteRequest(name=self.name, if_version=expected))
            assert reply.deleted == (bool(self.model) and if_match)
            if reply.deleted:
                self.model.clear()
                self.version = 0

        @invariant()
        def whole_map(self) -> None:
            if not hasattr(self, "name"):
                return
            seen: dict[str, bytes] = {}
            cursor = ""
            while True:
                page = stub.GetAll(pb.MapServiceGetAllRequest(name=self.name, cursor=cursor, page_size=2))
                seen.update({f.field: f.value for f in page.fields})
                cursor = page.next_cursor
                if not cursor:
                    break
            assert seen == self.model
            self._seen(stub.Length(pb.MapServiceLengthRequest(name=self.name)).collection, False)

    run_state_machine_as_test(MapMachine, settings=MACHINE)


def test_map_model(coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        run(map_pb2_grpc.MapServiceStub(channel))
