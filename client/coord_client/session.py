# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The Session service: :class:`SessionAPI` (sync) and :class:`AsyncSessionAPI` (asyncio).

Both share the request builders and response parsers below; only the sending differs. An invalid
token is a normal result (a falsy :class:`Validation` with a ``reason``), not an exception. Times are
timezone-aware ``datetime`` values in UTC; durations are seconds (``float``).

    with Client() as client:
        new = client.session.create("user:42", {"role": b"admin"}, idle=1800, absolute=12 * 3600)
        set_cookie(new.token)                       # the only time the token is available
        v = client.session.validate(new.token, attributes=["role"])
        if v:
            print(v.session.subject, v.session.attributes["role"])
        client.session.update(new.token, set={"cart": b"[]"}, increment={"visits": 1})
        rotated = client.session.rotate(new.token)  # after login: a new token, old one has a grace
        client.session.revoke(rotated.token)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf import duration_pb2, timestamp_pb2

from coord.session.v1 import session_pb2, session_pb2_grpc

from ._base import AsyncTransport, Transport, utc

SERVICE = "coord.session.v1.SessionService"
_M = f"/{SERVICE}/"

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

# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Session:
    """A live session. It never holds a token."""

    session_id: str
    subject: str
    version: int
    create_time: datetime | None
    last_active_time: datetime | None
    idle_expire_time: datetime | None
    absolute_expire_time: datetime | None
    ip: str = ""
    user_agent: str = ""
    label: str = ""
    attributes: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class NewSession:
    """What :meth:`SessionAPI.create` returns. ``token`` is shown only here; keep it secret."""

    token: str = field(repr=False)
    session: Session
    evicted_session_ids: list[str]


@dataclass(frozen=True)
class Validation:
    """A Validate result; truthy when the token is valid. ``reason`` says why not, otherwise None:
    ``unknown``, ``idle_expired``, ``absolute_expired``, ``revoked``, ``evicted`` or ``superseded``."""

    session: Session | None
    reason: str | None

    def __bool__(self) -> bool:
        return self.session is not None


@dataclass(frozen=True)
class UpdateResult:
    """An Update result; truthy when applied. When not: ``conflict_version`` is set on a version
    mismatch, ``reason`` when the token does not lead to a live session."""

    applied: bool
    version: int = 0
    increments: dict[str, int] = field(default_factory=dict)
    conflict_version: int | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.applied


@dataclass(frozen=True)
class Rotation:
    """A Rotate result; truthy when rotated. ``token`` is the new token (shown only here)."""

    token: str | None = field(repr=False)
    session: Session | None
    old_token_expire_time: datetime | None
    reason: str | None

    def __bool__(self) -> bool:
        return self.token is not None


@dataclass(frozen=True)
class SessionPage:
    sessions: list[Session]
    next_page_token: str


# ---------------------------------------------------------------- builders and parsers


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    if seconds < 0:
        raise ValueError(f"durations must not be negative (got {seconds})")
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _time(stamp: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    return utc(stamp) if present else None


def _session(pb: session_pb2.Session) -> Session:
    return Session(
        session_id=pb.session_id,
        subject=pb.subject,
        version=pb.version,
        create_time=_time(pb.create_time, pb.HasField("create_time")),
        last_active_time=_time(pb.last_active_time, pb.HasField("last_active_time")),
        idle_expire_time=_time(pb.idle_expire_time, pb.HasField("idle_expire_time")),
        absolute_expire_time=_time(pb.absolute_expire_time, pb.HasField("absolute_expire_time")),
        ip=pb.client.ip,
        user_agent=pb.client.user_agent,
        label=pb.client.label,
        attributes=dict(pb.attributes),
    )


def _reason(invalid: session_pb2.Invalid) -> str:
    return _REASONS.get(invalid.reason, "unknown")


def _create_request(
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
) -> session_pb2.CreateRequest:
    if on_limit not in LIMIT_POLICIES:
        raise ValueError(f"on_limit must be one of {', '.join(LIMIT_POLICIES)} (got {on_limit!r})")
    return session_pb2.CreateRequest(
        subject=subject,
        attributes=dict(attributes or {}),
        idle_timeout=_duration(idle),
        absolute_timeout=_duration(absolute),
        max_sessions=max_sessions,
        limit_policy=LIMIT_POLICIES[on_limit] if max_sessions else session_pb2.LIMIT_POLICY_UNSPECIFIED,
        client=session_pb2.ClientInfo(ip=ip, user_agent=user_agent, label=label),
    )


def _new_session(response: session_pb2.CreateResponse) -> NewSession:
    return NewSession(response.token, _session(response.session), list(response.evicted_session_ids))


def _validate_request(
    token: str, touch: bool, attributes: Iterable[str] | str
) -> session_pb2.ValidateRequest:
    names = ["*"] if attributes == "*" else list(attributes)
    return session_pb2.ValidateRequest(token=token, touch=touch, attribute_names=names)


def _validation(response: session_pb2.ValidateResponse) -> Validation:
    if response.WhichOneof("result") == "session":
        return Validation(_session(response.session), None)
    return Validation(None, _reason(response.invalid))


def _update_request(
    *,
    token: str,
    set: Mapping[str, bytes] | None,
    remove: Iterable[str],
    increment: Mapping[str, int] | None,
    if_version: int | None,
    touch: bool,
) -> session_pb2.UpdateRequest:
    return session_pb2.UpdateRequest(
        token=token,
        set=dict(set or {}),
        remove=list(remove),
        increment=dict(increment or {}),
        if_version=if_version,
        touch=touch,
    )


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
        expires = _time(r.old_token_expire_time, r.HasField("old_token_expire_time"))
        return Rotation(r.token, _session(r.session), expires, None)
    return Rotation(None, None, None, _reason(response.invalid))


def _revoke_request(token: str | None, session_id: str | None) -> session_pb2.RevokeRequest:
    if (token is None) == (session_id is None):
        raise ValueError("revoke needs exactly one of token= or session_id=")
    if token is not None:
        return session_pb2.RevokeRequest(token=token)
    assert session_id is not None
    return session_pb2.RevokeRequest(session_id=session_id)


def _page(response: session_pb2.ListSessionsResponse) -> SessionPage:
    return SessionPage([_session(s) for s in response.sessions], response.next_page_token)


# ---------------------------------------------------------------- sync


class SessionAPI:
    """Sync access to ``coord.session.v1.SessionService``; reached as ``Client(...).session``.

    Failures raise :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError before
    anything is sent. Tokens are never part of an exception message.
    """

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = session_pb2_grpc.SessionServiceStub(transport.channel)

    def create(
        self,
        subject: str = "",
        attributes: Mapping[str, bytes] | None = None,
        *,
        idle: float | None = None,
        absolute: float | None = None,
        max_sessions: int = 0,
        on_limit: str = "reject",
        ip: str = "",
        user_agent: str = "",
        label: str = "",
        timeout: float | None = None,
    ) -> NewSession:
        """Start a session; ``idle``/``absolute`` are timeouts in seconds (None: server defaults).

        With ``max_sessions``, ``on_limit="reject"`` raises ResourceExhausted (reason
        SESSION_LIMIT_REACHED) when the subject is full; ``"evict_oldest"`` revokes its oldest.
        """
        request = _create_request(
            subject=subject,
            attributes=attributes,
            idle=idle,
            absolute=absolute,
            max_sessions=max_sessions,
            on_limit=on_limit,
            ip=ip,
            user_agent=user_agent,
            label=label,
        )
        return _new_session(self._t.call(self._stub.Create, _M + "Create", request, timeout))

    def validate(
        self,
        token: str,
        *,
        touch: bool = True,
        attributes: Iterable[str] | str = (),
        timeout: float | None = None,
    ) -> Validation:
        """Check ``token``; ``attributes`` lists the names to return, or ``"*"`` for all."""
        request = _validate_request(token, touch, attributes)
        return _validation(self._t.call(self._stub.Validate, _M + "Validate", request, timeout))

    def update(
        self,
        token: str,
        *,
        set: Mapping[str, bytes] | None = None,
        remove: Iterable[str] = (),
        increment: Mapping[str, int] | None = None,
        if_version: int | None = None,
        touch: bool = False,
        timeout: float | None = None,
    ) -> UpdateResult:
        """Change individual attributes; other attributes (and concurrent updates of them) are kept."""
        request = _update_request(
            token=token, set=set, remove=remove, increment=increment, if_version=if_version, touch=touch
        )
        return _update_result(self._t.call(self._stub.Update, _M + "Update", request, timeout))

    def rotate(self, token: str, *, grace: float | None = None, timeout: float | None = None) -> Rotation:
        """Give the session a new token; the old one works for ``grace`` seconds more."""
        request = session_pb2.RotateRequest(token=token, grace=_duration(grace))
        return _rotation(self._t.call(self._stub.Rotate, _M + "Rotate", request, timeout))

    def revoke(
        self, token: str | None = None, *, session_id: str | None = None, timeout: float | None = None
    ) -> bool:
        """End one session (by token, or by id); True if a live session was ended."""
        request = _revoke_request(token, session_id)
        return self._t.call(self._stub.Revoke, _M + "Revoke", request, timeout).revoked

    def list(
        self, subject: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> SessionPage:
        """One page of ``subject``'s live sessions, oldest first."""
        request = session_pb2.ListSessionsRequest(subject=subject, page_size=page_size, page_token=page_token)
        return _page(self._t.call(self._stub.ListSessions, _M + "ListSessions", request, timeout))

    def iter_sessions(self, subject: str, *, page_size: int = 0) -> Iterator[Session]:
        """Every live session of ``subject``, fetching pages as needed."""
        token = ""
        while True:
            page = self.list(subject, page_size=page_size, page_token=token)
            yield from page.sessions
            token = page.next_page_token
            if not token:
                return

    def revoke_all(self, subject: str, *, except_session_id: str = "", timeout: float | None = None) -> int:
        """End all of ``subject``'s sessions except ``except_session_id``; returns how many ended."""
        request = session_pb2.RevokeAllRequest(subject=subject, except_session_id=except_session_id)
        return self._t.call(self._stub.RevokeAll, _M + "RevokeAll", request, timeout).revoked_count


# ---------------------------------------------------------------- async


class AsyncSessionAPI:
    """Asyncio access to ``coord.session.v1.SessionService``; reached as ``AsyncClient(...).session``.

    The same methods, arguments and results as :class:`SessionAPI`, as coroutines.
    """

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub = session_pb2_grpc.SessionServiceStub(transport.channel)

    async def create(
        self,
        subject: str = "",
        attributes: Mapping[str, bytes] | None = None,
        *,
        idle: float | None = None,
        absolute: float | None = None,
        max_sessions: int = 0,
        on_limit: str = "reject",
        ip: str = "",
        user_agent: str = "",
        label: str = "",
        timeout: float | None = None,
    ) -> NewSession:
        """Start a session (see :meth:`SessionAPI.create`)."""
        request = _create_request(
            subject=subject,
            attributes=attributes,
            idle=idle,
            absolute=absolute,
            max_sessions=max_sessions,
            on_limit=on_limit,
            ip=ip,
            user_agent=user_agent,
            label=label,
        )
        return _new_session(await self._t.call(self._stub.Create, _M + "Create", request, timeout))

    async def validate(
        self,
        token: str,
        *,
        touch: bool = True,
        attributes: Iterable[str] | str = (),
        timeout: float | None = None,
    ) -> Validation:
        """Check ``token`` (see :meth:`SessionAPI.validate`)."""
        request = _validate_request(token, touch, attributes)
        return _validation(await self._t.call(self._stub.Validate, _M + "Validate", request, timeout))

    async def update(
        self,
        token: str,
        *,
        set: Mapping[str, bytes] | None = None,
        remove: Iterable[str] = (),
        increment: Mapping[str, int] | None = None,
        if_version: int | None = None,
        touch: bool = False,
        timeout: float | None = None,
    ) -> UpdateResult:
        """Change individual attributes (see :meth:`SessionAPI.update`)."""
        request = _update_request(
            token=token, set=set, remove=remove, increment=increment, if_version=if_version, touch=touch
        )
        return _update_result(await self._t.call(self._stub.Update, _M + "Update", request, timeout))

    async def rotate(
        self, token: str, *, grace: float | None = None, timeout: float | None = None
    ) -> Rotation:
        """Give the session a new token (see :meth:`SessionAPI.rotate`)."""
        request = session_pb2.RotateRequest(token=token, grace=_duration(grace))
        return _rotation(await self._t.call(self._stub.Rotate, _M + "Rotate", request, timeout))

    async def revoke(
        self, token: str | None = None, *, session_id: str | None = None, timeout: float | None = None
    ) -> bool:
        """End one session (by token, or by id); True if a live session was ended."""
        request = _revoke_request(token, session_id)
        return (await self._t.call(self._stub.Revoke, _M + "Revoke", request, timeout)).revoked

    async def list(
        self, subject: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> SessionPage:
        """One page of ``subject``'s live sessions, oldest first."""
        request = session_pb2.ListSessionsRequest(subject=subject, page_size=page_size, page_token=page_token)
        return _page(await self._t.call(self._stub.ListSessions, _M + "ListSessions", request, timeout))

    async def iter_sessions(self, subject: str, *, page_size: int = 0) -> AsyncIterator[Session]:
        """Every live session of ``subject``, fetching pages as needed."""
        token = ""
        while True:
            page = await self.list(subject, page_size=page_size, page_token=token)
            for session in page.sessions:
                yield session
            token = page.next_page_token
            if not token:
                return

    async def revoke_all(
        self, subject: str, *, except_session_id: str = "", timeout: float | None = None
    ) -> int:
        """End all of ``subject``'s sessions except ``except_session_id``; returns how many ended."""
        request = session_pb2.RevokeAllRequest(subject=subject, except_session_id=except_session_id)
        return (await self._t.call(self._stub.RevokeAll, _M + "RevokeAll", request, timeout)).revoked_count


__all__ = [
    "LIMIT_POLICIES",
    "SERVICE",
    "AsyncSessionAPI",
    "NewSession",
    "Rotation",
    "Session",
    "SessionAPI",
    "SessionPage",
    "UpdateResult",
    "Validation",
]
