"""The Session service's calls as data: each function checks its arguments, builds the request and
says how the response reads (a :class:`~coord_client._call.Call`). No I/O here: :mod:`.sync` and
:mod:`.aio` send the same calls.

Durations are seconds, zero or more (None: the server's default); bad arguments raise ValueError
before anything is sent. Tokens are never part of an exception message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf import duration_pb2

from coord.session.v1 import session_pb2

from .._call import Call
from .._convert import duration_field, utc_or_none
from .models import NewSession, Rotation, Session, SessionPage, UpdateResult, Validation

SERVICE = "coord.session.v1.SessionService"

LIMIT_POLICIES = {
    "reject": session_pb2.LIMIT_POLICY_REJECT,
    "evict_oldest": session_pb2.LIMIT_POLICY_EVICT_OLDEST,
}
_REASONS = {
    session_pb2.INVALID_REASON_UNKNOWN: "unknown",
    session_pb2.INVALID_REASON_IDLE_EXPIRED: "idle_expired",
    session_pb2.INVALID_REASON_ABSOLUTE_EXPIRED: "absolute_expired",
    session_pb2.INVALID_REASON_REVOKED: "revoked",
    session_pb2.INVALID_REASON_EVICTED: "evicted",
    session_pb2.INVALID_REASON_SUPERSEDED: "superseded",
}

# ---------------------------------------------------------------- the calls


def create(
    *,
    subject: str,
    attributes: Mapping[str, bytes] | None,
    idle: float | None,
    absolute: float | None,
    max_sessions: int,
    on_limit: str,
    ip: str,
    user_agent: str,
    label: str,
) -> Call[NewSession]:
    if on_limit not in LIMIT_POLICIES:
        raise ValueError(f"on_limit must be one of {', '.join(LIMIT_POLICIES)} (got {on_limit!r})")
    request = session_pb2.CreateRequest(
        subject=subject,
        attributes=dict(attributes or {}),
        idle_timeout=_duration(idle, "idle"),
        absolute_timeout=_duration(absolute, "absolute"),
        max_sessions=max_sessions,
        limit_policy=LIMIT_POLICIES[on_limit] if max_sessions else session_pb2.LIMIT_POLICY_UNSPECIFIED,
        client=session_pb2.ClientInfo(ip=ip, user_agent=user_agent, label=label),
    )
    return Call("Create", request, _new_session)


def validate(token: str, touch: bool, attributes: Iterable[str] | str) -> Call[Validation]:
    names = ["*"] if attributes == "*" else list(attributes)
    request = session_pb2.ValidateRequest(token=token, touch=touch, attribute_names=names)
    return Call("Validate", request, _validation)


def update(
    *,
    token: str,
    set: Mapping[str, bytes] | None,
    remove: Iterable[str],
    increment: Mapping[str, int] | None,
    if_version: int | None,
    touch: bool,
) -> Call[UpdateResult]:
    request = session_pb2.UpdateRequest(
        token=token,
        set=dict(set or {}),
        remove=list(remove),
        increment=dict(increment or {}),
        if_version=if_version,
        touch=touch,
    )
    return Call("Update", request, _update_result)


def rotate(token: str, grace: float | None) -> Call[Rotation]:
    request = session_pb2.RotateRequest(token=token, grace=_duration(grace, "grace"))
    return Call("Rotate", request, _rotation)


def revoke(token: str | None, session_id: str | None) -> Call[bool]:
    if (token is None) == (session_id is None):
        raise ValueError("revoke needs exactly one of token= or session_id=")
    if token is not None:
        request = session_pb2.RevokeRequest(token=token)
    else:
        assert session_id is not None
        request = session_pb2.RevokeRequest(session_id=session_id)
    return Call("Revoke", request, lambda r: bool(r.revoked))


def list_sessions(subject: str, page_size: int, page_token: str) -> Call[SessionPage]:
    request = session_pb2.ListSessionsRequest(subject=subject, page_size=page_size, page_token=page_token)
    return Call("ListSessions", request, _page)


def revoke_all(subject: str, except_session_id: str) -> Call[int]:
    request = session_pb2.RevokeAllRequest(subject=subject, except_session_id=except_session_id)
    return Call("RevokeAll", request, lambda r: int(r.revoked_count))


# ---------------------------------------------------------------- argument checks and parsers


def _duration(seconds: float | None, name: str) -> duration_pb2.Duration | None:
    # Zero goes to the server, which decides: the default for idle and absolute, refused for grace.
    return duration_field(seconds, name, allow_zero=True)


def _session(pb: session_pb2.Session) -> Session:
    return Session(
        session_id=pb.session_id,
        subject=pb.subject,
        version=pb.version,
        create_time=utc_or_none(pb.create_time, pb.HasField("create_time")),
        last_active_time=utc_or_none(pb.last_active_time, pb.HasField("last_active_time")),
        idle_expire_time=utc_or_none(pb.idle_expire_time, pb.HasField("idle_expire_time")),
        absolute_expire_time=utc_or_none(pb.absolute_expire_time, pb.HasField("absolute_expire_time")),
        ip=pb.client.ip,
        user_agent=pb.client.user_agent,
        label=pb.client.label,
        attributes=dict(pb.attributes),
    )


def _reason(invalid: session_pb2.Invalid) -> str:
    return _REASONS.get(invalid.reason, "unknown")


def _new_session(response: session_pb2.CreateResponse) -> NewSession:
    return NewSession(response.token, _session(response.session), list(response.evicted_session_ids))


def _validation(response: session_pb2.ValidateResponse) -> Validation:
    if response.WhichOneof("result") == "session":
        return Validation(_session(response.session), None)
    return Validation(None, _reason(response.invalid))


def _update_result(response: session_pb2.UpdateResponse) -> UpdateResult:
    which = response.WhichOneof("result")
    if which == "updated":
        return UpdateResult(True, response.updated.version, dict(response.updated.increment_results))
    if which == "conflict":
        return UpdateResult(False, conflict_version=response.conflict.current_version)
    return UpdateResult(False, reason=_reason(response.invalid))


def _rotation(response: session_pb2.RotateResponse) -> Rotation:
    if response.WhichOneof("result") == "rotated":
        r = response.rotated
        expires = utc_or_none(r.old_token_expire_time, r.HasField("old_token_expire_time"))
        return Rotation(r.token, _session(r.session), expires, None)
    return Rotation(None, None, None, _reason(response.invalid))


def _page(response: session_pb2.ListSessionsResponse) -> SessionPage:
    return SessionPage([_session(s) for s in response.sessions], response.next_page_token)
