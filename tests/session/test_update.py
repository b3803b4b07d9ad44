"""Update semantics: set / remove / increment together, compare-and-set, limits, reported errors."""

from __future__ import annotations

import grpc
import pytest

from coord.session.v1 import session_pb2 as pb

from .conftest import assert_clean, create, error_info, validate


def test_set_remove_increment_in_one_update(coord, sessions):
    r = create(sessions, attributes={"a": b"1", "b": b"2", "n": b"40"})
    u = sessions.Update(
        pb.UpdateRequest(token=r.token, set={"c": b"3"}, remove=["a", "nope"], increment={"n": 2})
    )
    assert u.updated.version == 2 and dict(u.updated.increment_results) == {"n": 42}
    attrs = validate(sessions, r.token, attribute_names=["*"]).session.attributes
    assert dict(attrs) == {"b": b"2", "c": b"3", "n": b"42"}
    u = sessions.Update(pb.UpdateRequest(token=r.token, remove=["b", "c", "n"]))
    assert u.updated.version == 3
    assert dict(validate(sessions, r.token, attribute_names=["*"]).session.attributes) == {}
    assert_clean(coord, [r.token])


def test_if_version_compare_and_set(coord, sessions):
    r = create(sessions, attributes={"a": b"1"})
    ok = sessions.Update(pb.UpdateRequest(token=r.token, set={"a": b"2"}, if_version=1))
    assert ok.updated.version == 2
    stale = sessions.Update(pb.UpdateRequest(token=r.token, set={"a": b"3"}, if_version=1))
    assert stale.WhichOneof("result") == "conflict" and stale.conflict.current_version == 2
    assert validate(sessions, r.token, attribute_names=["a"]).session.attributes["a"] == b"2"
    assert validate(sessions, r.token).session.version == 2


def test_increment_errors_change_nothing(coord, sessions):
    r = create(sessions, attributes={"text": b"abc", "big": str(2**53 - 2).encode()})
    with pytest.raises(grpc.RpcError) as caught:
        sessions.Update(pb.UpdateRequest(token=r.token, set={"x": b"1"}, increment={"text": 1}))
    code, reason, metadata, _ = error_info(caught.value)
    assert (code, reason, metadata["attribute"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VALUE_NOT_INTEGER",
        "text",
    )
    with pytest.raises(grpc.RpcError) as caught:
        sessions.Update(pb.UpdateRequest(token=r.token, increment={"big": 2}))
    code, reason, metadata, _ = error_info(caught.value)
    assert (code, reason, metadata["attribute"]) == (grpc.StatusCode.OUT_OF_RANGE, "INTEGER_OVERFLOW", "big")
    session = validate(sessions, r.token, attribute_names=["*"]).session
    assert session.version == 1 and "x" not in session.attributes


def test_attribute_size_limit_counts_the_whole_session(start_coord, redis_factory):
    backing = redis_factory()
    server = start_coord(backing.url, session_max_attributes_bytes=1000)
    with grpc.insecure_channel(server.target) as channel:
        from coord.session.v1 import session_pb2_grpc

        stub = session_pb2_grpc.SessionServiceStub(channel)
        r = create(stub, attributes={"a": b"x" * 600})
        with pytest.raises(grpc.RpcError) as caught:
            stub.Update(pb.UpdateRequest(token=r.token, set={"b": b"y" * 600}))
        code, reason, metadata, fields = error_info(caught.value)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason == "SESSION_ATTRIBUTES_TOO_LARGE"
        assert metadata["limit"] == "1000" and metadata["actual"] == str(1 + 600 + 1 + 600)
        assert fields == ["set"]
        # Replacing the big one instead fits.
        assert stub.Update(pb.UpdateRequest(token=r.token, set={"b": b"y" * 600}, remove=["a"])).updated
        with pytest.raises(grpc.RpcError) as caught:
            create(stub, attributes={"a": b"x" * 1000})
        assert error_info(caught.value)[1:3] == (
            "SESSION_ATTRIBUTES_TOO_LARGE",
            {"field": "attributes", "limit": "1000", "actual": "1001"},
        )
