"""Tokens: 256-bit secrets with a recognisable prefix; Redis holds only their SHA-256 (anchors store
bearer tokens in clear as the Redis key: Spring Session, Flask-Session, Django)."""

from __future__ import annotations

import hashlib
import re

from coord.session.v1 import session_pb2 as pb
from coord_server.session.keys import BUCKETS
from coord_server.session.tokens import new_session_id, new_token, parse_token, session_bucket, token_digest

from .conftest import assert_clean, create, ms, reason_of, redis_contents, validate

TOKEN = re.compile(r"^cs1_[0-9a-f]{3}[A-Za-z0-9_-]{22}[A-Za-z0-9_-]{43}$")


def test_tokens_are_prefixed_unique_and_never_stored(coord, sessions):
    tokens = []
    for i in range(10):
        r = create(sessions, subject=f"user-{i % 3}", attributes={"role": b"admin", "n": b"1"})
        assert TOKEN.match(r.token)
        assert r.token[4:29] == r.session.session_id  # the token names its session
        tokens.append(r.token)
    anonymous = create(sessions, subject="", attributes={"cart": b"[]"})
    tokens.append(anonymous.token)
    assert anonymous.session.subject == ""
    rotated = sessions.Rotate(pb.RotateRequest(token=tokens[0])).rotated
    tokens.append(rotated.token)
    sessions.Update(pb.UpdateRequest(token=rotated.token, set={"x": b"y"}))
    assert len(set(tokens)) == len(tokens)

    assert_clean(coord, tokens)
    # What Redis does hold: the SHA-256 of each token.
    dump = b"".join(b"".join(parts) for _, _, parts in redis_contents(coord))
    for token in tokens[1:]:
        assert hashlib.sha256(token.encode()).hexdigest().encode() in dump


def test_minted_ids_and_tokens_parse_back_to_their_bucket_and_digest() -> None:
    session_id = new_session_id(BUCKETS - 1)
    assert session_bucket(session_id) == BUCKETS - 1
    token = new_token(session_id)
    assert TOKEN.match(token)
    parsed = parse_token(token)
    assert parsed is not None
    assert (parsed.session_id, parsed.bucket) == (session_id, BUCKETS - 1)
    assert parsed.digest == token_digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(parsed)  # only the session id is ever printed
    beyond = f"{BUCKETS:03x}" + session_id[3:]  # a well-shaped id outside the bucket range
    assert session_bucket(beyond) is None and parse_token(new_token(beyond)) is None
    assert parse_token(token[:-1]) is None and parse_token("cs2_" + token[4:]) is None


def test_a_token_with_a_real_session_id_but_wrong_secret_is_unknown(coord, sessions):
    r = create(sessions)
    forged = r.token[:-43] + ("A" * 43 if r.token[-43:] != "A" * 43 else "B" * 43)
    assert reason_of(validate(sessions, forged)) == pb.INVALID_REASON_UNKNOWN
    # Even a revoked session answers UNKNOWN to a forged token: no oracle for guessed tokens.
    sessions.Revoke(pb.RevokeRequest(session_id=r.session.session_id))
    assert reason_of(validate(sessions, forged)) == pb.INVALID_REASON_UNKNOWN
    assert reason_of(validate(sessions, r.token)) == pb.INVALID_REASON_REVOKED
    never_issued = "cs1_000" + "a" * 22 + "b" * 43
    assert reason_of(validate(sessions, never_issued)) == pb.INVALID_REASON_UNKNOWN
    assert_clean(coord, [r.token])


def test_validate_returns_requested_attributes_only(coord, sessions):
    r = create(
        sessions,
        attributes={"a": b"\x00\xff binary", "b": b"2", "c": b""},
        client=pb.ClientInfo(ip="10.0.0.1", user_agent="ua/1", label="laptop"),
        idle_timeout=ms(60_000),
        absolute_timeout=ms(120_000),
    )
    full = validate(sessions, r.token, attribute_names=["*"]).session
    assert dict(full.attributes) == {"a": b"\x00\xff binary", "b": b"2", "c": b""}
    some = validate(sessions, r.token, attribute_names=["b", "missing"]).session
    assert dict(some.attributes) == {"b": b"2"}
    none = validate(sessions, r.token).session
    assert dict(none.attributes) == {}
    assert none.subject == "alice" and none.version == 1
    assert (none.client.ip, none.client.user_agent, none.client.label) == ("10.0.0.1", "ua/1", "laptop")
    created = r.session.create_time.ToMilliseconds()
    assert none.absolute_expire_time.ToMilliseconds() == created + 120_000
    assert none.idle_expire_time.ToMilliseconds() == created + 60_000
    assert_clean(coord, [r.token])
