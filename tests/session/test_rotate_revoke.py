"""Rotation with a grace period (spring-session #1270: concurrent id changes fail), revocation by token
or id, "log out my other devices" (flask-login #155) and a paginated device list."""

from __future__ import annotations

import time

from coord.session.v1 import session_pb2 as pb

from .conftest import assert_clean, create, ms, reason_of, validate, wait_until


def test_rotate_with_zero_grace_ends_the_old_token_at_once(coord, sessions):
    # Rotation after login against session fixation: the pre-login token must not work for a moment.
    r = create(sessions, attributes={"role": b"user"})
    rotated = sessions.Rotate(pb.RotateRequest(token=r.token, grace=ms(0))).rotated
    assert rotated.token != r.token
    assert reason_of(validate(sessions, r.token)) == pb.INVALID_REASON_SUPERSEDED
    assert validate(sessions, rotated.token).session.attributes == {}  # names not asked for
    assert validate(sessions, rotated.token, attribute_names=["*"]).session.attributes["role"] == b"user"
    assert_clean(coord, [r.token, rotated.token])


def test_rotate_under_concurrent_validations_with_the_old_token(coord, sessions):
    r = create(sessions, attributes={"role": b"user"})
    old = r.token
    before = [sessions.Validate.future(pb.ValidateRequest(token=old, touch=True)) for _ in range(25)]
    rotate = sessions.Rotate.future(pb.RotateRequest(token=old, grace=ms(1500)))
    after = [sessions.Validate.future(pb.ValidateRequest(token=old, touch=True)) for _ in range(25)]
    rotated = rotate.result().rotated
    new = rotated.token
    assert new != old and rotated.session.session_id == r.session.session_id
    for f in before + after:
        response = f.result()
        assert response.WhichOneof("result") == "session", response
        assert new.encode() not in response.SerializeToString()  # the old token never learns the new one
        assert new[-43:].encode() not in response.SerializeToString()
    assert validate(sessions, new).WhichOneof("result") == "session"
    grace_end = rotated.old_token_expire_time.ToMilliseconds()
    assert 1400 <= grace_end - rotated.session.last_active_time.ToMilliseconds() <= 1500
    wait_until(lambda: validate(sessions, old).WhichOneof("result") == "invalid", step=0.05)
    assert reason_of(validate(sessions, old)) == pb.INVALID_REASON_SUPERSEDED
    assert validate(sessions, new, attribute_names=["*"]).session.attributes["role"] == b"user"
    assert_clean(coord, [old, new])


def test_only_the_current_token_rotates(coord, sessions):
    r = create(sessions)
    first = sessions.Rotate(pb.RotateRequest(token=r.token, grace=ms(60_000))).rotated.token
    # The rotated-out token still validates and updates inside its grace, but cannot fork the session.
    assert validate(sessions, r.token).WhichOneof("result") == "session"
    assert sessions.Update(pb.UpdateRequest(token=r.token, set={"a": b"1"})).WhichOneof("result") == "updated"
    assert reason_of(sessions.Rotate(pb.RotateRequest(token=r.token))) == pb.INVALID_REASON_SUPERSEDED
    second = sessions.Rotate(pb.RotateRequest(token=first, grace=ms(60_000))).rotated.token
    # Rotating again ends the first token's grace at once: one previous token at most.
    assert reason_of(validate(sessions, r.token)) == pb.INVALID_REASON_UNKNOWN
    assert validate(sessions, first).WhichOneof("result") == "session"
    assert validate(sessions, second).WhichOneof("result") == "session"
    assert_clean(coord, [r.token, first, second])


def test_concurrent_rotations_yield_one_new_token(coord, sessions):
    r = create(sessions)
    futures = [sessions.Rotate.future(pb.RotateRequest(token=r.token)) for _ in range(10)]
    results = [f.result() for f in futures]
    rotated = [x for x in results if x.WhichOneof("result") == "rotated"]
    assert len(rotated) == 1
    assert all(x.invalid.reason == pb.INVALID_REASON_SUPERSEDED for x in results if x not in rotated)


def test_revoke_by_token_old_token_or_id(coord, sessions):
    a, b, c = create(sessions), create(sessions), create(sessions)
    assert sessions.Revoke(pb.RevokeRequest(token=a.token)).revoked
    assert not sessions.Revoke(pb.RevokeRequest(token=a.token)).revoked  # idempotent
    assert reason_of(validate(sessions, a.token)) == pb.INVALID_REASON_REVOKED
    assert sessions.Revoke(pb.RevokeRequest(session_id=b.session.session_id)).revoked
    assert reason_of(validate(sessions, b.token)) == pb.INVALID_REASON_REVOKED
    new = sessions.Rotate(pb.RotateRequest(token=c.token, grace=ms(60_000))).rotated.token
    assert sessions.Revoke(pb.RevokeRequest(token=c.token)).revoked  # the old token within its grace
    assert reason_of(validate(sessions, new)) == pb.INVALID_REASON_REVOKED
    assert reason_of(validate(sessions, c.token)) == pb.INVALID_REASON_REVOKED
    assert list(sessions.ListSessions(pb.ListSessionsRequest(subject="alice")).sessions) == []
    with coord.redis() as redis:
        assert list(redis.scan_iter(match="*:u:alice", count=1000)) == []  # index tidied at once
    assert_clean(coord, [a.token, b.token, c.token, new])


def test_revoke_all_except_one(coord, sessions):
    mine = [create(sessions, client=pb.ClientInfo(label=f"device {i}")) for i in range(4)]
    other = create(sessions, subject="bob")
    keep = mine[1]
    response = sessions.RevokeAll(
        pb.RevokeAllRequest(subject="alice", except_session_id=keep.session.session_id)
    )
    assert response.revoked_count == 3
    listed = sessions.ListSessions(pb.ListSessionsRequest(subject="alice")).sessions
    assert [s.session_id for s in listed] == [keep.session.session_id]
    assert listed[0].client.label == "device 1"
    for r in mine:
        result = validate(sessions, r.token)
        if r is keep:
            assert result.WhichOneof("result") == "session"
        else:
            assert reason_of(result) == pb.INVALID_REASON_REVOKED
    assert validate(sessions, other.token).WhichOneof("result") == "session"
    assert sessions.RevokeAll(pb.RevokeAllRequest(subject="alice")).revoked_count == 1
    assert sessions.RevokeAll(pb.RevokeAllRequest(subject="alice")).revoked_count == 0
    assert_clean(coord, [r.token for r in mine] + [other.token])


def test_list_sessions_paginates_oldest_first(coord, sessions):
    created = []
    for _ in range(7):
        created.append(create(sessions).session.session_id)
        time.sleep(0.002)  # distinct creation times, so the expected order is known
    create(sessions, subject="bob")
    seen, token, pages = [], "", 0
    while True:
        page = sessions.ListSessions(pb.ListSessionsRequest(subject="alice", page_size=3, page_token=token))
        pages += 1
        seen += [s.session_id for s in page.sessions]
        if pages == 1:
            # A session ending between pages neither breaks the cursor nor shows up later.
            sessions.Revoke(pb.RevokeRequest(session_id=created[4]))
        token = page.next_page_token
        if not token:
            break
    assert pages == 2  # 3 + 3: the last full page says there is no more
    assert seen == created[:4] + created[5:]
    everything = sessions.ListSessions(pb.ListSessionsRequest(subject="alice")).sessions
    assert [s.session_id for s in everything] == created[:4] + created[5:]
    assert all(not s.attributes for s in everything)
