"""SessionService transport: proto -> validated dataclasses -> store -> proto. No Redis calls here.

Tokens are checked for shape only (the store hashes them); an error about a token names the field and
never repeats the token.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from coord.session.v1 import session_pb2, session_pb2_grpc

from .._grpc import rpc
from .._proto import timestamp_ms
from ..config import Settings
from ..errors import invalid
from ..metrics.services import SessionCounts
from ..tenancy import PerTenant
from ..validation import Limits, ttl_within
from .store import (
    AttributeChanges,
    ClientInfo,
    Conflict,
    Cursor,
    Invalid,
    LimitPolicy,
    Session,
    SessionSpec,
    SessionStore,
    attributes_too_large,
)
from .tokens import ParsedToken, parse_token, session_bucket

Ctx = grpc.aio.ServicerContext[Any, Any]

MAX_SAFE_INTEGER = (1 << 53) - 1
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_CLIENT_LIMITS = (("ip", 64), ("user_agent", 512), ("label", 256))


@dataclass(frozen=True)
class SessionLimits:
    """Session input limits and defaults, in ms and bytes, taken from Settings."""

    max_attributes_bytes: int
    default_idle_ms: int
    default_absolute_ms: int
    default_grace_ms: int
    max_grace_ms: int
    max_per_subject: int

    @classmethod
    def from_settings(cls, s: Settings) -> SessionLimits:
        return cls(
            max_attributes_bytes=s.session_max_attributes_bytes,
            default_idle_ms=round(s.session_default_idle * 1000),
            default_absolute_ms=round(s.session_default_absolute * 1000),
            default_grace_ms=round(s.session_default_grace * 1000),
            max_grace_ms=round(s.session_max_grace * 1000),
            max_per_subject=s.session_max_per_subject,
        )


class SessionServicer(session_pb2_grpc.SessionServiceServicer):
    # Every call reaches the store of the caller's tenant (tenancy.py): one lookup, no await.
    def __init__(
        self, stores: PerTenant[SessionStore], limits: Limits, session_limits: SessionLimits
    ) -> None:
        self._stores = stores
        self._limits = limits
        self._session = session_limits
        self.counts: SessionCounts | None = None  # sessions created and revoked, when metrics are on

    @rpc
    async def Create(self, request: session_pb2.CreateRequest, context: Ctx) -> session_pb2.CreateResponse:
        subject = self._limits.key("subject", request.subject) if request.subject else ""
        attributes = self._attributes("attributes", request.attributes)
        idle = self._limits.ttl("idle_timeout", request.idle_timeout, unset_ms=self._session.default_idle_ms)
        # Unset: the default, raised to the idle timeout; given: it must not be shorter than that.
        absolute = self._limits.ttl("absolute_timeout", request.absolute_timeout, unset_ms=0)
        if not absolute:
            absolute = max(self._session.default_absolute_ms, idle)
        elif absolute < idle:
            raise invalid(
                "absolute_timeout",
                f"must not be shorter than idle_timeout ({absolute} ms < {idle} ms)",
            )
        max_sessions = request.max_sessions
        if max_sessions > self._session.max_per_subject:
            raise invalid(
                "max_sessions",
                f"must be at most {self._session.max_per_subject} (got {max_sessions})",
                limit=str(self._session.max_per_subject),
            )
        policy = LimitPolicy.REJECT
        if request.limit_policy not in {0, *(int(p) for p in LimitPolicy)}:
            raise invalid("limit_policy", f"unknown value {request.limit_policy}")
        if max_sessions:
            if not subject:
                raise invalid("max_sessions", "needs a subject (anonymous sessions have no limit)")
            if request.limit_policy == session_pb2.LIMIT_POLICY_UNSPECIFIED:
                raise invalid("limit_policy", "must be set when max_sessions is set")
            policy = LimitPolicy(request.limit_policy)
        created = await self._stores.get().create(
            SessionSpec(
                subject, attributes, idle, absolute, max_sessions, policy, self._client(request.client)
            )
        )
        if self.counts is not None:
            self.counts.created.value += 1
            self.counts.revoked.value += len(created.evicted)  # ended to make room (EVICT_OLDEST)
        return session_pb2.CreateResponse(
            token=created.token,
            session=_session_pb(created.session),
            evicted_session_ids=created.evicted,
        )

    @rpc
    async def Validate(
        self, request: session_pb2.ValidateRequest, context: Ctx
    ) -> session_pb2.ValidateResponse:
        token = _token("token", request.token)
        names: list[str] | None = list(request.attribute_names)
        self._limits.batch("attribute_names", len(request.attribute_names), allow_empty=True)
        if names == ["*"]:
            names = None
        else:
            for i, name in enumerate(request.attribute_names):
                if name == "*":
                    raise invalid(f"attribute_names[{i}]", '"*" must be the only name when used')
                self._limits.key(f"attribute_names[{i}]", name)
        result = await self._stores.get().validate(token, touch=request.touch, names=names)
        if isinstance(result, Invalid):
            return session_pb2.ValidateResponse(invalid=_invalid_pb(result))
        return session_pb2.ValidateResponse(session=_session_pb(result))

    @rpc
    async def Update(self, request: session_pb2.UpdateRequest, context: Ctx) -> session_pb2.UpdateResponse:
        token = _token("token", request.token)
        changes = self._changes(request)
        result = await self._stores.get().update(token, changes)
        if isinstance(result, Invalid):
            return session_pb2.UpdateResponse(invalid=_invalid_pb(result))
        if isinstance(result, Conflict):
            return session_pb2.UpdateResponse(
                conflict=session_pb2.Conflict(current_version=result.current_version)
            )
        return session_pb2.UpdateResponse(
            updated=session_pb2.Updated(version=result.version, increment_results=dict(result.increments))
        )

    @rpc
    async def Rotate(self, request: session_pb2.RotateRequest, context: Ctx) -> session_pb2.RotateResponse:
        token = _token("token", request.token)
        grace = self._session.default_grace_ms
        if request.HasField("grace"):
            # Zero is a hard cut: the old token stops at once (rotation after login, against fixation).
            grace = ttl_within("grace", request.grace, 0, self._session.max_grace_ms)
        result = await self._stores.get().rotate(token, grace)
        if isinstance(result, Invalid):
            return session_pb2.RotateResponse(invalid=_invalid_pb(result))
        return session_pb2.RotateResponse(
            rotated=session_pb2.Rotated(
                token=result.token,
                session=_session_pb(result.session),
                old_token_expire_time=timestamp_ms(result.old_token_expire_ms),
            )
        )

    @rpc
    async def Revoke(self, request: session_pb2.RevokeRequest, context: Ctx) -> session_pb2.RevokeResponse:
        which = request.WhichOneof("target")
        if which == "token":
            token = _token("token", request.token)
            revoked = await self._stores.get().revoke(token.session_id, token.bucket, token.digest)
        elif which == "session_id":
            bucket = _session_id_bucket("session_id", request.session_id)
            revoked = await self._stores.get().revoke(request.session_id, bucket)
        else:
            raise invalid("target", "set either token or session_id")
        if revoked and self.counts is not None:
            self.counts.revoked.value += 1
        return session_pb2.RevokeResponse(revoked=revoked)

    @rpc
    async def ListSessions(
        self, request: session_pb2.ListSessionsRequest, context: Ctx
    ) -> session_pb2.ListSessionsResponse:
        subject = self._limits.key("subject", request.subject)
        if request.page_size < 0:
            raise invalid("page_size", "must not be negative")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_cursor(request.page_token) if request.page_token else None
        page = await self._stores.get().list(subject, size, after)
        return session_pb2.ListSessionsResponse(
            sessions=[_session_pb(s) for s in page.sessions],
            next_page_token=_encode_cursor(page.next) if page.next else "",
        )

    @rpc
    async def RevokeAll(
        self, request: session_pb2.RevokeAllRequest, context: Ctx
    ) -> session_pb2.RevokeAllResponse:
        subject = self._limits.key("subject", request.subject)
        if request.except_session_id:
            _session_id_bucket("except_session_id", request.except_session_id)
        count = await self._stores.get().revoke_all(subject, request.except_session_id)
        if self.counts is not None:
            self.counts.revoked.value += count
        return session_pb2.RevokeAllResponse(revoked_count=count)

    # -- request checks ----------------------------------------------------------------------------

    def _attributes(self, field_path: str, attributes: Mapping[str, bytes]) -> dict[str, bytes]:
        self._limits.batch(field_path, len(attributes), allow_empty=True)
        total = 0
        for name, value in attributes.items():
            self._limits.key(f"{field_path}[{name}]" if name else field_path, name)
            total += len(name.encode("utf-8", "surrogatepass")) + len(value)
        if total > self._session.max_attributes_bytes:
            raise attributes_too_large(field_path, total, self._session.max_attributes_bytes)
        return dict(attributes)

    def _names(self, field_path: str, names: Iterable[str]) -> list[str]:
        checked = []
        for i, name in enumerate(names):
            checked.append(self._limits.key(f"{field_path}[{i}]", name))
        return checked

    def _changes(self, request: session_pb2.UpdateRequest) -> AttributeChanges:
        to_set = self._attributes("set", request.set)
        self._limits.batch("remove", len(request.remove), allow_empty=True)
        to_remove = self._names("remove", request.remove)
        self._limits.batch("increment", len(request.increment), allow_empty=True)
        increments: dict[str, int] = {}
        for name, delta in request.increment.items():
            field_path = f"increment[{name}]" if name else "increment"
            self._limits.key(field_path, name)
            if abs(delta) > MAX_SAFE_INTEGER:
                raise invalid(field_path, f"must lie within +/-{MAX_SAFE_INTEGER} (got {delta})")
            increments[name] = delta
        if not (to_set or to_remove or increments):
            raise invalid("set", "an update must set, remove or increment at least one attribute")
        seen = set(to_set)
        for i, name in enumerate(to_remove):
            if name in seen:
                raise invalid(f"remove[{i}]", f"attribute {name!r} is also set or removed in this update")
            seen.add(name)
        for name in increments:
            if name in seen:
                raise invalid(
                    f"increment[{name}]", f"attribute {name!r} is also set or removed in this update"
                )
        if_version = None
        if request.HasField("if_version"):
            if request.if_version == 0:
                raise invalid("if_version", "must be at least 1 (versions start at 1)")
            if_version = request.if_version
        return AttributeChanges(to_set, tuple(to_remove), increments, if_version, request.touch)

    def _client(self, client: session_pb2.ClientInfo) -> ClientInfo:
        for name, limit in _CLIENT_LIMITS:
            size = len(getattr(client, name).encode("utf-8", "surrogatepass"))
            if size > limit:
                raise invalid(
                    f"client.{name}",
                    f"is {size} bytes; the limit is {limit} bytes",
                    limit=str(limit),
                    actual=str(size),
                )
        return ClientInfo(client.ip, client.user_agent, client.label)


def _token(field_path: str, token: str) -> ParsedToken:
    parsed = parse_token(token)
    if parsed is None:
        raise invalid(
            field_path,
            'is not a Coord session token ("cs1_" followed by 68 base64url characters)',
            reason="SESSION_TOKEN_MALFORMED",
        )
    return parsed


def _session_id_bucket(field_path: str, session_id: str) -> int:
    bucket = session_bucket(session_id)
    if bucket is None:
        raise invalid(field_path, "is not a session id (25 characters, as returned by Create)")
    return bucket


def _encode_cursor(cursor: Cursor) -> str:
    raw = f"{cursor.created_ms}:{cursor.session_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_cursor(token: str) -> Cursor:
    try:
        created, session_id = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii").split(":")
        if session_bucket(session_id) is None:
            raise ValueError(session_id)
        return Cursor(int(created), session_id)
    except (ValueError, UnicodeError, binascii.Error):
        raise invalid("page_token", "is not a page token returned by ListSessions") from None


def _invalid_pb(result: Invalid) -> session_pb2.Invalid:
    return session_pb2.Invalid(reason=int(result.reason))  # type: ignore[arg-type]


def _session_pb(view: Session) -> session_pb2.Session:
    return session_pb2.Session(
        session_id=view.session_id,
        subject=view.subject,
        version=view.version,
        create_time=timestamp_ms(view.created_ms),
        last_active_time=timestamp_ms(view.last_active_ms),
        idle_expire_time=timestamp_ms(view.idle_expire_ms),
        absolute_expire_time=timestamp_ms(view.absolute_expire_ms),
        client=session_pb2.ClientInfo(
            ip=view.client.ip, user_agent=view.client.user_agent, label=view.client.label
        ),
        attributes=dict(view.attributes),
    )
