"""Every bad request is refused with INVALID_ARGUMENT (or the documented code) naming the field, and
no error ever repeats a token."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2

from coord.session.v1 import session_pb2 as pb

from .conftest import error_info, ms

GOOD_ID = "000" + "a" * 22
GOOD_TOKEN = "cs1_" + GOOD_ID + "b" * 43
INVALID = grpc.StatusCode.INVALID_ARGUMENT

CASES = [
    # (rpc, request, field, reason)
    (
        "Create",
        pb.CreateRequest(idle_timeout=ms(2000), absolute_timeout=ms(1000)),
        "absolute_timeout",
        "INVALID_FIELD",
    ),
    (
        "Create",
        pb.CreateRequest(idle_timeout=duration_pb2.Duration(seconds=-1)),
        "idle_timeout",
        "TTL_OUT_OF_RANGE",
    ),
    ("Create", pb.CreateRequest(idle_timeout=ms(31 * 86400 * 1000)), "idle_timeout", "TTL_OUT_OF_RANGE"),
    (
        "Create",
        pb.CreateRequest(absolute_timeout=ms(31 * 86400 * 1000)),
        "absolute_timeout",
        "TTL_OUT_OF_RANGE",
    ),
    ("Create", pb.CreateRequest(subject="a\nb"), "subject", "INVALID_FIELD"),
    ("Create", pb.CreateRequest(subject="x" * 1025), "subject", "KEY_TOO_LONG"),
    ("Create", pb.CreateRequest(attributes={"": b"v"}), "attributes", "INVALID_FIELD"),
    (
        "Create",
        pb.CreateRequest(max_sessions=1, limit_policy=pb.LIMIT_POLICY_REJECT),
        "max_sessions",
        "INVALID_FIELD",
    ),
    ("Create", pb.CreateRequest(subject="a", max_sessions=1), "limit_policy", "INVALID_FIELD"),
    (
        "Create",
        pb.CreateRequest(subject="a", max_sessions=1001, limit_policy=1),
        "max_sessions",
        "INVALID_FIELD",
    ),
    (
        "Create",
        pb.CreateRequest(subject="a", max_sessions=1, limit_policy=9),
        "limit_policy",
        "INVALID_FIELD",
    ),
    ("Create", pb.CreateRequest(client=pb.ClientInfo(ip="1" * 65)), "client.ip", "INVALID_FIELD"),
    (
        "Create",
        pb.CreateRequest(client=pb.ClientInfo(user_agent="u" * 513)),
        "client.user_agent",
        "INVALID_FIELD",
    ),
    ("Create", pb.CreateRequest(client=pb.ClientInfo(label="l" * 257)), "client.label", "INVALID_FIELD"),
    ("Validate", pb.ValidateRequest(token=""), "token", "SESSION_TOKEN_MALFORMED"),
    ("Validate", pb.ValidateRequest(token="cs2_" + GOOD_TOKEN[4:]), "token", "SESSION_TOKEN_MALFORMED"),
    ("Validate", pb.ValidateRequest(token=GOOD_TOKEN[:-1]), "token", "SESSION_TOKEN_MALFORMED"),
    ("Validate", pb.ValidateRequest(token=GOOD_TOKEN + "c"), "token", "SESSION_TOKEN_MALFORMED"),
    ("Validate", pb.ValidateRequest(token="cs1_fff" + GOOD_TOKEN[7:]), "token", "SESSION_TOKEN_MALFORMED"),
    ("Validate", pb.ValidateRequest(token=GOOD_TOKEN[:-1] + "!"), "token", "SESSION_TOKEN_MALFORMED"),
    (
        "Validate",
        pb.ValidateRequest(token=GOOD_TOKEN, attribute_names=["*", "a"]),
        "attribute_names[0]",
        "INVALID_FIELD",
    ),
    (
        "Validate",
        pb.ValidateRequest(token=GOOD_TOKEN, attribute_names=[""]),
        "attribute_names[0]",
        "INVALID_FIELD",
    ),
    ("Update", pb.UpdateRequest(token=GOOD_TOKEN), "set", "INVALID_FIELD"),
    ("Update", pb.UpdateRequest(token="nope", set={"a": b"1"}), "token", "SESSION_TOKEN_MALFORMED"),
    (
        "Update",
        pb.UpdateRequest(token=GOOD_TOKEN, set={"a": b"1"}, remove=["a"]),
        "remove[0]",
        "INVALID_FIELD",
    ),
    (
        "Update",
        pb.UpdateRequest(token=GOOD_TOKEN, remove=["a"], increment={"a": 1}),
        "increment[a]",
        "INVALID_FIELD",
    ),
    ("Update", pb.UpdateRequest(token=GOOD_TOKEN, increment={"a": 2**53}), "increment[a]", "INVALID_FIELD"),
    (
        "Update",
        pb.UpdateRequest(token=GOOD_TOKEN, set={"a": b"1"}, if_version=0),
        "if_version",
        "INVALID_FIELD",
    ),
    ("Update", pb.UpdateRequest(token=GOOD_TOKEN, remove=[""]), "remove[0]", "INVALID_FIELD"),
    ("Rotate", pb.RotateRequest(token=GOOD_TOKEN, grace=ms(-1)), "grace", "TTL_OUT_OF_RANGE"),
    ("Rotate", pb.RotateRequest(token=GOOD_TOKEN, grace=ms(301_000)), "grace", "TTL_OUT_OF_RANGE"),
    ("Rotate", pb.RotateRequest(token="cs1_short"), "token", "SESSION_TOKEN_MALFORMED"),
    ("Revoke", pb.RevokeRequest(), "target", "INVALID_FIELD"),
    ("Revoke", pb.RevokeRequest(session_id="abc"), "session_id", "INVALID_FIELD"),
    ("Revoke", pb.RevokeRequest(token=GOOD_ID), "token", "SESSION_TOKEN_MALFORMED"),
    ("ListSessions", pb.ListSessionsRequest(), "subject", "INVALID_FIELD"),
    ("ListSessions", pb.ListSessionsRequest(subject="a", page_size=-1), "page_size", "INVALID_FIELD"),
    ("ListSessions", pb.ListSessionsRequest(subject="a", page_token="!!"), "page_token", "INVALID_FIELD"),
    (
        "ListSessions",
        pb.ListSessionsRequest(subject="a", page_token="MTIzOng="),
        "page_token",
        "INVALID_FIELD",
    ),
    ("RevokeAll", pb.RevokeAllRequest(), "subject", "INVALID_FIELD"),
    (
        "RevokeAll",
        pb.RevokeAllRequest(subject="a", except_session_id="x"),
        "except_session_id",
        "INVALID_FIELD",
    ),
]


@pytest.mark.parametrize(
    ("method", "request_", "field", "reason"), CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_bad_request_names_the_field(coord_single, method, request_, field, reason):
    from coord.session.v1 import session_pb2_grpc

    with grpc.insecure_channel(coord_single.target) as channel:
        stub = session_pb2_grpc.SessionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, method)(request_)
    code, got_reason, metadata, fields = error_info(caught.value)
    assert (code, got_reason, metadata.get("field"), fields) == (INVALID, reason, field, [field])
    token = getattr(request_, "token", "")
    if len(token) > 8:
        assert token not in caught.value.details()
        assert token[-20:] not in str(metadata)
