"""Races the anchors lose: max sessions per subject (spring-security #12867), lost attribute updates
(flask-session #71, spring-session #1471), resurrection by a late write (spring-session #2021)."""

from __future__ import annotations

import grpc

from coord.session.v1 import session_pb2 as pb

from .conftest import assert_clean, create, error_info, reason_of, validate


def _outcomes(futures):
    ok, failed = [], []
    for f in futures:
        try:
            ok.append(f.result())
        except grpc.RpcError as error:
            failed.append(error)
    return ok, failed


def test_concurrent_creates_with_limit_one_and_reject_leave_exactly_one(coord, sessions):
    request = pb.CreateRequest(subject="alice", max_sessions=1, limit_policy=pb.LIMIT_POLICY_REJECT)
    ok, failed = _outcomes([sessions.Create.future(request) for _ in range(20)])
    assert len(ok) == 1 and len(failed) == 19
    for error in failed:
        code, reason, metadata, _ = error_info(error)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason == "SESSION_LIMIT_REACHED"
        assert metadata == {"limit": "1", "active": "1"}
    listed = sessions.ListSessions(pb.ListSessionsRequest(subject="alice")).sessions
    assert [s.session_id for s in listed] == [ok[0].session.session_id]
    assert_clean(coord, [r.token for r in ok])


def test_concurrent_creates_with_limit_and_evict_keep_exactly_the_newest(coord, sessions):
    request = pb.CreateRequest(subject="alice", max_sessions=1, limit_policy=pb.LIMIT_POLICY_EVICT_OLDEST)
    ok, failed = _outcomes([sessions.Create.future(request) for _ in range(20)])
    assert not failed and len(ok) == 20
    listed = sessions.ListSessions(pb.ListSessionsRequest(subject="alice")).sessions
    assert len(listed) == 1
    survivor = listed[0].session_id
    evicted = [e for r in ok for e in r.evicted_session_ids]
    assert sorted(evicted) == sorted(r.session.session_id for r in ok if r.session.session_id != survivor)
    # Every Create but the first evicted exactly one, and nothing is newer than the survivor.
    assert sorted(len(r.evicted_session_ids) for r in ok) == [0] + [1] * 19
    created = {r.session.session_id: r.session.create_time.ToMilliseconds() for r in ok}
    assert created[survivor] == max(created.values())
    for r in ok:
        response = validate(sessions, r.token)
        if r.session.session_id == survivor:
            assert response.WhichOneof("result") == "session"
        else:
            assert reason_of(response) == pb.INVALID_REASON_EVICTED
    assert_clean(coord, [r.token for r in ok])


def test_concurrent_creates_with_limit_three_leave_exactly_three(coord, sessions):
    request = pb.CreateRequest(subject="carol", max_sessions=3, limit_policy=pb.LIMIT_POLICY_REJECT)
    ok, failed = _outcomes([sessions.Create.future(request) for _ in range(12)])
    assert len(ok) == 3 and len(failed) == 9
    assert len(sessions.ListSessions(pb.ListSessionsRequest(subject="carol")).sessions) == 3
    # A revoked session frees its slot at once.
    sessions.Revoke(pb.RevokeRequest(token=ok[0].token))
    again = sessions.Create(request)
    assert again.token


def test_200_concurrent_updates_of_different_attributes_all_survive(coord, sessions):
    r = create(sessions)
    futures = [
        sessions.Update.future(pb.UpdateRequest(token=r.token, set={f"k{i}": str(i).encode()}))
        for i in range(200)
    ]
    versions = sorted(f.result().updated.version for f in futures)
    assert versions == list(range(2, 202))  # every update applied, each exactly once
    attrs = validate(sessions, r.token, attribute_names=["*"]).session.attributes
    assert dict(attrs) == {f"k{i}": str(i).encode() for i in range(200)}
    assert_clean(coord, [r.token])


def test_concurrent_increments_of_one_attribute_are_all_counted(coord, sessions):
    r = create(sessions)
    futures = [
        sessions.Update.future(pb.UpdateRequest(token=r.token, increment={"hits": 1})) for _ in range(100)
    ]
    results = sorted(f.result().updated.increment_results["hits"] for f in futures)
    assert results == list(range(1, 101))
    assert validate(sessions, r.token, attribute_names=["hits"]).session.attributes["hits"] == b"100"


def test_revoke_racing_updates_never_resurrects(coord, sessions):
    r = create(sessions, attributes={"a": b"0"})
    updates = [
        sessions.Update.future(pb.UpdateRequest(token=r.token, set={f"k{i}": b"v"}, touch=True))
        for i in range(100)
    ]
    revoke = sessions.Revoke.future(pb.RevokeRequest(token=r.token))
    more = [sessions.Update.future(pb.UpdateRequest(token=r.token, set={f"m{i}": b"v"})) for i in range(100)]
    assert revoke.result().revoked
    applied = [f.result() for f in updates + more]
    kinds = {u.WhichOneof("result") for u in applied}
    assert kinds <= {"updated", "invalid"}
    for u in applied:
        if u.WhichOneof("result") == "invalid":
            assert u.invalid.reason == pb.INVALID_REASON_REVOKED
    assert reason_of(validate(sessions, r.token, touch=True)) == pb.INVALID_REASON_REVOKED
    late = sessions.Update(pb.UpdateRequest(token=r.token, set={"late": b"x"}))
    assert reason_of(late) == pb.INVALID_REASON_REVOKED
    with coord.redis() as redis:
        attrs = [k for k in redis.scan_iter(match="*:a", count=1000)]
        for key in attrs:
            assert redis.hget(key, r.session.session_id) is None  # attributes deleted with the revoke
    assert_clean(coord, [r.token])
