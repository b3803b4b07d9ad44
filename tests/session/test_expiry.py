"""Idle and absolute expiry by the Redis clock, and an exact per-subject index without keyspace
notifications (Spring Session #922 has no absolute timeout; #1118/#2230 leak the principal index)."""

from __future__ import annotations

import time

from coord.session.v1 import session_pb2 as pb

from .conftest import assert_clean, create, ms, reason_of, redis_now_ms, validate, wait_until


def _notifications_off(coord):
    with coord.redis() as r:
        config = r.config_get("notify-keyspace-events")
    values = config.values() if isinstance(config, dict) else []
    assert all(v in ("", b"") for v in values), config


def test_idle_expiry_then_index_empty_without_keyspace_notifications(coord, sessions):
    _notifications_off(coord)
    r = create(sessions, idle_timeout=ms(300), absolute_timeout=ms(60_000))
    other = create(sessions, subject="bob", idle_timeout=ms(60_000))
    idle_expiry = r.session.idle_expire_time.ToMilliseconds()
    assert idle_expiry == r.session.create_time.ToMilliseconds() + 300  # both by Redis's clock
    assert validate(sessions, r.token).WhichOneof("result") == "session"
    wait_until(lambda: validate(sessions, r.token).WhichOneof("result") == "invalid")
    assert redis_now_ms(coord) >= idle_expiry  # expired by Redis's clock, not sooner
    assert reason_of(validate(sessions, r.token)) == pb.INVALID_REASON_IDLE_EXPIRED
    assert list(sessions.ListSessions(pb.ListSessionsRequest(subject="alice")).sessions) == []
    # Nothing fired a notification: the scripts themselves pruned the index, and dropped it when empty.
    with coord.redis() as redis:
        index_keys = [k for k in redis.scan_iter(match="*:u:alice", count=1000)]
    assert index_keys == []
    assert len(sessions.ListSessions(pb.ListSessionsRequest(subject="bob")).sessions) == 1
    assert_clean(coord, [r.token, other.token])


def test_touch_slides_idle_expiry(coord, sessions):
    r = create(sessions, idle_timeout=ms(400), absolute_timeout=ms(60_000))
    first_deadline = r.session.idle_expire_time.ToMilliseconds()
    end = time.monotonic() + 1.2  # three idle timeouts
    while time.monotonic() < end:
        response = validate(sessions, r.token, touch=True)
        assert response.WhichOneof("result") == "session", response
        time.sleep(0.05)
    later = validate(sessions, r.token).session
    assert later.idle_expire_time.ToMilliseconds() > first_deadline + 700
    assert later.last_active_time.ToMilliseconds() > r.session.create_time.ToMilliseconds()
    assert_clean(coord, [r.token])


def test_absolute_timeout_enforced_even_when_active(coord, sessions):
    r = create(sessions, idle_timeout=ms(400), absolute_timeout=ms(1000))
    absolute = r.session.absolute_expire_time.ToMilliseconds()
    assert absolute == r.session.create_time.ToMilliseconds() + 1000

    def ended():
        response = validate(sessions, r.token, touch=True)
        return response if response.WhichOneof("result") == "invalid" else None

    response = wait_until(ended, step=0.05)
    assert response.invalid.reason == pb.INVALID_REASON_ABSOLUTE_EXPIRED
    # The idle deadline reported while alive never went past the absolute one.
    assert_clean(coord, [r.token])


def test_idle_deadline_never_passes_absolute(coord, sessions):
    r = create(sessions, idle_timeout=ms(5000), absolute_timeout=ms(5000))
    assert r.session.idle_expire_time == r.session.absolute_expire_time
    s = validate(sessions, r.token, touch=True).session
    assert s.idle_expire_time.ToMilliseconds() <= s.absolute_expire_time.ToMilliseconds()


def test_touch_is_throttled(coord, sessions):
    # idle 2 s: a touch writes at most every min(60 s, 2 s / 20) = 100 ms.
    r = create(sessions, idle_timeout=ms(2000), absolute_timeout=ms(60_000))
    with coord.redis() as redis:
        records = next(k for k in redis.scan_iter(match="*:m", count=1000))

        def record():
            return redis.hget(records, r.session.session_id)

        before = record()
        a = validate(sessions, r.token, touch=True).session
        b = validate(sessions, r.token, touch=True).session
        if b.last_active_time == r.session.last_active_time:
            assert record() == before  # inside the throttle window: no write at all
        time.sleep(0.15)
        c = validate(sessions, r.token, touch=True).session
        assert c.last_active_time.ToMilliseconds() > max(
            a.last_active_time.ToMilliseconds(), r.session.create_time.ToMilliseconds()
        )
        assert record() != before


def test_update_never_resurrects_an_expired_session(coord, sessions):
    r = create(sessions, idle_timeout=ms(200), absolute_timeout=ms(60_000), attributes={"a": b"1"})
    wait_until(lambda: validate(sessions, r.token).WhichOneof("result") == "invalid")
    u = sessions.Update(pb.UpdateRequest(token=r.token, set={"a": b"2"}, touch=True))
    assert reason_of(u) == pb.INVALID_REASON_IDLE_EXPIRED
    assert reason_of(validate(sessions, r.token, touch=True)) == pb.INVALID_REASON_IDLE_EXPIRED
    rotated = sessions.Rotate(pb.RotateRequest(token=r.token))
    assert reason_of(rotated) == pb.INVALID_REASON_IDLE_EXPIRED
    assert not sessions.Revoke(pb.RevokeRequest(token=r.token)).revoked
    assert_clean(coord, [r.token])


def test_ended_sessions_are_purged_after_the_tombstone_ttl(start_coord, redis_factory):
    import grpc

    from coord.session.v1 import session_pb2_grpc

    backing = redis_factory()
    server = start_coord(backing.url, session_tombstone_ttl=0.2)
    with grpc.insecure_channel(server.target) as channel:
        stub = session_pb2_grpc.SessionServiceStub(channel)
        short = create(stub, idle_timeout=ms(100), absolute_timeout=ms(300))
        revoked = create(stub, subject="bob")
        stub.Revoke(pb.RevokeRequest(token=revoked.token))
        assert reason_of(validate(stub, revoked.token)) == pb.INVALID_REASON_REVOKED
        with backing.client() as r:
            # Every key expires on its own: the bucket keys once the last session ended plus the
            # tombstone TTL, a subject index at its sessions' latest absolute deadline (or, as for
            # the revoked one, as soon as a script finds it empty).
            wait_until(lambda: r.dbsize() == 0, timeout=5)
        assert reason_of(validate(stub, short.token)) == pb.INVALID_REASON_UNKNOWN
        assert reason_of(validate(stub, revoked.token)) == pb.INVALID_REASON_UNKNOWN
