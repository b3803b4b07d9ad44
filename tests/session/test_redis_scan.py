"""A scan of Redis after the scenarios the other files leave unscanned: no key without a TTL, no raw
token anywhere. And absolute expiry empties a subject's index with keyspace notifications off."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from coord.session.v1 import session_pb2 as pb

from .conftest import assert_clean, create, ms, reason_of, redis_contents, redis_now_ms, validate, wait_until

Scenario = Callable[[Any], list[str]]


def _limit_three_then_revoke_and_recreate(stub: Any) -> list[str]:
    request = pb.CreateRequest(subject="carol", max_sessions=3, limit_policy=pb.LIMIT_POLICY_REJECT)
    futures = [stub.Create.future(request) for _ in range(12)]
    made = []
    for f in futures:
        try:
            made.append(f.result().token)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(made) == 3
    stub.Revoke(pb.RevokeRequest(token=made[0]))
    return [*made, stub.Create(request).token]


def _concurrent_increments(stub: Any) -> list[str]:
    r = create(stub)
    futures = [stub.Update.future(pb.UpdateRequest(token=r.token, increment={"hits": 1})) for _ in range(50)]
    assert all(f.result().WhichOneof("result") == "updated" for f in futures)
    return [r.token]


def _concurrent_rotations(stub: Any) -> list[str]:
    r = create(stub, attributes={"a": b"1"})
    futures = [stub.Rotate.future(pb.RotateRequest(token=r.token, grace=ms(60_000))) for _ in range(10)]
    rotated = [x.rotated.token for x in (f.result() for f in futures) if x.WhichOneof("result") == "rotated"]
    assert len(rotated) == 1
    return [r.token, *rotated]


def _paginated_list_with_a_revoke_between_pages(stub: Any) -> list[str]:
    made = [create(stub) for _ in range(5)]
    page = stub.ListSessions(pb.ListSessionsRequest(subject="alice", page_size=2))
    stub.Revoke(pb.RevokeRequest(session_id=made[3].session.session_id))
    stub.ListSessions(pb.ListSessionsRequest(subject="alice", page_size=2, page_token=page.next_page_token))
    return [m.token for m in made]


def _throttled_touches(stub: Any) -> list[str]:
    r = create(stub, idle_timeout=ms(2000), absolute_timeout=ms(60_000))
    for _ in range(20):
        assert validate(stub, r.token, touch=True).WhichOneof("result") == "session"
    return [r.token]


def _conflicts_and_failed_increments(stub: Any) -> list[str]:
    r = create(stub, attributes={"text": b"abc"})
    assert stub.Update(pb.UpdateRequest(token=r.token, set={"a": b"2"}, if_version=1)).updated.version == 2
    stale = stub.Update(pb.UpdateRequest(token=r.token, set={"a": b"3"}, if_version=1))
    assert stale.WhichOneof("result") == "conflict"
    with pytest.raises(grpc.RpcError):
        stub.Update(pb.UpdateRequest(token=r.token, set={"x": b"1"}, increment={"text": 1}))
    return [r.token]


def _calls_with_tokens_never_issued(stub: Any) -> list[str]:
    # Well-formed tokens naming sessions that never existed: nothing may be written for them.
    made = create(stub)
    forged = made.token[:-43] + ("A" * 43 if not made.token.endswith("A" * 43) else "B" * 43)
    unknown = "cs1_" + made.token[4:7] + "q" * 22 + "z" * 43
    for token in (forged, unknown):
        assert reason_of(validate(stub, token, touch=True)) == pb.INVALID_REASON_UNKNOWN
        assert reason_of(stub.Update(pb.UpdateRequest(token=token, set={"a": b"1"}))) == (
            pb.INVALID_REASON_UNKNOWN
        )
        assert reason_of(stub.Rotate(pb.RotateRequest(token=token))) == pb.INVALID_REASON_UNKNOWN
        assert not stub.Revoke(pb.RevokeRequest(token=token)).revoked
    return [made.token, forged, unknown]


def _anonymous_and_revoke_all(stub: Any) -> list[str]:
    anonymous = create(stub, subject="", attributes={"cart": b"[]"})
    mine = [create(stub) for _ in range(3)]
    stub.RevokeAll(pb.RevokeAllRequest(subject="alice", except_session_id=mine[0].session.session_id))
    return [anonymous.token, *(m.token for m in mine)]


SCENARIOS: list[Scenario] = [
    _limit_three_then_revoke_and_recreate,
    _concurrent_increments,
    _concurrent_rotations,
    _paginated_list_with_a_revoke_between_pages,
    _throttled_touches,
    _conflicts_and_failed_increments,
    _calls_with_tokens_never_issued,
    _anonymous_and_revoke_all,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__.strip("_") for s in SCENARIOS])
def test_scan_after_scenario_finds_only_ttl_keys_and_no_token(coord, sessions, scenario):
    tokens = scenario(sessions)
    contents = redis_contents(coord)
    assert contents, "the scenario wrote nothing: the scan would prove nothing"
    assert_clean(coord, tokens)


def test_calls_with_unknown_tokens_write_nothing(coord, sessions):
    token = "cs1_" + "0ab" + "q" * 22 + "z" * 43
    validate(sessions, token, touch=True)
    sessions.Update(pb.UpdateRequest(token=token, set={"a": b"1"}, increment={"n": 1}))
    sessions.Rotate(pb.RotateRequest(token=token))
    sessions.Revoke(pb.RevokeRequest(token=token))
    assert redis_contents(coord) == []


def test_absolute_expiry_empties_the_index_by_ttl_alone_without_keyspace_notifications(coord, sessions):
    with coord.redis() as r:
        config = r.config_get("notify-keyspace-events")
    assert all(v in ("", b"") for v in (config.values() if isinstance(config, dict) else [])), config
    r = create(sessions, idle_timeout=ms(300), absolute_timeout=ms(900))
    other = create(sessions, subject="bob", idle_timeout=ms(60_000))
    absolute = r.session.absolute_expire_time.ToMilliseconds()
    while redis_now_ms(coord) < absolute - 300:  # active: touched well inside every idle timeout
        assert validate(sessions, r.token, touch=True).WhichOneof("result") == "session"
        time.sleep(0.05)
    with coord.redis() as redis:

        def index_keys() -> list[bytes]:
            return list(redis.scan_iter(match="*:u:alice", count=1000))

        assert index_keys(), "the index vanished while its session was alive"
        # No Coord call from here on: nothing but its own TTL (the latest absolute deadline of the
        # sessions it held) may remove the index.
        wait_until(lambda: not index_keys(), timeout=5, step=0.02)
        # The TTL, not something earlier, removed it: by Redis's clock the session's absolute
        # deadline (the latest of its subject's) had come.
        assert redis_now_ms(coord) >= absolute
    assert reason_of(validate(sessions, r.token)) == pb.INVALID_REASON_ABSOLUTE_EXPIRED
    assert list(sessions.ListSessions(pb.ListSessionsRequest(subject="alice")).sessions) == []
    assert len(sessions.ListSessions(pb.ListSessionsRequest(subject="bob")).sessions) == 1
    assert_clean(coord, [r.token, other.token])
