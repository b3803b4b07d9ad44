"""Script-level guarantees: one Redis Cluster slot per operation, recovery after SCRIPT FLUSH."""

from __future__ import annotations

from redis.crc import key_slot

from coord.session.v1 import session_pb2 as pb
from coord_server.session.keys import SessionKeys, subject_bucket
from coord_server.session.tokens import parse_token

from .conftest import create, validate


def test_every_key_of_a_subject_shares_one_slot():
    keys = SessionKeys("default")
    for subject in ["alice", "bob", "{x}", "}{", "%7B", "ümlaut", "a" * 1024]:
        bucket = subject_bucket(subject)
        names = [*keys.bucket(bucket), keys.subject(bucket, subject)]
        assert len({key_slot(n.encode()) for n in names}) == 1, names


def test_token_names_the_subjects_bucket(coord, sessions):
    r = create(sessions, subject="dave")
    parsed = parse_token(r.token)
    assert parsed is not None and parsed.bucket == subject_bucket("dave")
    assert "cs1_" not in repr(parsed) and r.token not in repr(parsed)


def test_scripts_reload_after_script_flush(coord_single):
    import grpc

    from coord.session.v1 import session_pb2_grpc

    with grpc.insecure_channel(coord_single.target) as channel:
        stub = session_pb2_grpc.SessionServiceStub(channel)
        r = create(stub)
        with coord_single.redis() as redis:
            redis.script_flush()
        assert validate(stub, r.token, touch=True).WhichOneof("result") == "session"
        assert stub.Update(pb.UpdateRequest(token=r.token, set={"a": b"1"})).updated.version == 2
        assert stub.ListSessions(pb.ListSessionsRequest(subject="alice")).sessions
