"""Session domain logic: mints tokens, calls the Lua scripts, returns dataclasses. No gRPC in here.

Tokens exist in this module only long enough to be hashed (and, for Create and Rotate, returned to
the caller once). They are never logged, never put into an exception and never sent to Redis.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import FailedPrecondition, FieldViolation, LimitReached, OutOfRange, TooLarge
from ..redis import RedisBackend, ScriptArg, ScriptSet, text
from .keys import BUCKETS, SessionKeys, subject_bucket
from .tokens import ParsedToken, new_session_id, new_token, token_digest


class InvalidReason(enum.IntEnum):
    """Why a token does not lead to a live session; the values are the scripts' and the proto's."""

    UNKNOWN = 1
    IDLE_EXPIRED = 2
    ABSOLUTE_EXPIRED = 3
    REVOKED = 4
    EVICTED = 5
    SUPERSEDED = 6


class LimitPolicy(enum.IntEnum):
    REJECT = 1
    EVICT_OLDEST = 2


@dataclass(frozen=True)
class ClientInfo:
    ip: str = ""
    user_agent: str = ""
    label: str = ""


@dataclass(frozen=True)
class Session:
    """A live session as read. Times are Unix ms by the Redis clock."""

    session_id: str
    subject: str
    version: int
    created_ms: int
    last_active_ms: int
    idle_ms: int
    absolute_expire_ms: int
    client: ClientInfo
    attributes: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def idle_expire_ms(self) -> int:
        return min(self.last_active_ms + self.idle_ms, self.absolute_expire_ms)


@dataclass(frozen=True)
class Invalid:
    reason: InvalidReason


@dataclass(frozen=True)
class SessionSpec:
    """What Create asks for: the session to make, and what to do when its subject is full."""

    subject: str
    attributes: Mapping[str, bytes]
    idle_ms: int
    absolute_ms: int
    max_sessions: int = 0
    policy: LimitPolicy = LimitPolicy.REJECT
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True)
class NewSession:
    token: str = field(repr=False)
    session: Session
    evicted: tuple[str, ...]


@dataclass(frozen=True)
class AttributeChanges:
    set: Mapping[str, bytes] = field(default_factory=dict)
    remove: Sequence[str] = ()
    increment: Mapping[str, int] = field(default_factory=dict)
    if_version: int | None = None
    touch: bool = False


@dataclass(frozen=True)
class Updated:
    version: int
    increments: Mapping[str, int]


@dataclass(frozen=True)
class Conflict:
    current_version: int


@dataclass(frozen=True)
class Rotation:
    token: str = field(repr=False)
    session: Session
    old_token_expire_ms: int


@dataclass(frozen=True)
class Cursor:
    """Where a ListSessions page ends: the last session's creation time and id."""

    created_ms: int
    session_id: str


@dataclass(frozen=True)
class SessionPage:
    sessions: list[Session]
    next: Cursor | None


@dataclass(frozen=True)
class SessionConfig:
    """The server settings the store needs, in ms and bytes."""

    tombstone_ms: int
    touch_interval_ms: int
    max_attributes_bytes: int


class SessionStore:
    """Atomic session operations on Redis. Inputs are already validated by the caller."""

    def __init__(
        self, redis: RedisBackend, scripts: ScriptSet, keys: SessionKeys, config: SessionConfig
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._config = config
        self._create = scripts["create"]
        self._validate = scripts["validate"]
        self._update = scripts["update"]
        self._rotate = scripts["rotate"]
        self._revoke = scripts["revoke"]
        self._revoke_all = scripts["revoke_all"]
        self._list = scripts["list"]
        self._prune_index = scripts["prune_index"]

    async def create(self, new: SessionSpec) -> NewSession:
        bucket = subject_bucket(new.subject) if new.subject else secrets.randbelow(BUCKETS)
        keys = list(self._keys.bucket(bucket))
        if new.subject:
            keys.append(self._keys.subject(bucket, new.subject))
        args: list[ScriptArg] = [
            "",  # session id, filled in below
            "",  # token digest
            new.subject,
            new.idle_ms,
            new.absolute_ms,
            new.max_sessions if new.subject else 0,
            int(new.policy),
            new.client.ip,
            new.client.user_agent,
            new.client.label,
            self._config.tombstone_ms,
        ]
        for name, value in new.attributes.items():
            args += [name, value]
        for _ in range(3):  # a 128-bit id collides essentially never; retry rather than fail if it does
            session_id = new_session_id(bucket)
            token = new_token(session_id)
            args[0], args[1] = session_id, token_digest(token)
            reply = await self._redis.run(self._create, keys, args)
            code = int(reply[0])
            if code == 1:
                created = int(reply[1])
                view = Session(
                    session_id=session_id,
                    subject=new.subject,
                    version=1,
                    created_ms=created,
                    last_active_ms=created,
                    idle_ms=new.idle_ms,
                    absolute_expire_ms=created + new.absolute_ms,
                    client=new.client,
                    attributes=dict(new.attributes),
                )
                return NewSession(token, view, tuple(text(e) for e in reply[2]))
            if code == 0:
                active = int(reply[1])
                raise LimitReached(
                    f"the subject already has {active} live sessions; the limit is {new.max_sessions}",
                    reason="SESSION_LIMIT_REACHED",
                    metadata={"limit": str(new.max_sessions), "active": str(active)},
                )
        raise RuntimeError("could not allocate a unique session id")

    async def validate(
        self, token: ParsedToken, *, touch: bool, names: Sequence[str] | None
    ) -> Session | Invalid:
        """``names``: None for all attributes, an empty sequence for none."""
        mode = "1" if names is None else ("2" if names else "0")
        args: list[ScriptArg] = [
            token.session_id,
            token.digest,
            "1" if touch else "0",
            self._config.touch_interval_ms,
            self._config.tombstone_ms,
            mode,
            *(names or ()),
        ]
        reply = await self._redis.run(self._validate, self._keys.bucket(token.bucket), args)
        if int(reply[0]) == 0:
            return Invalid(InvalidReason(int(reply[1])))
        attrs = reply[10]
        attributes = {text(attrs[i]): bytes(attrs[i + 1]) for i in range(0, len(attrs), 2)}
        return _view(token.session_id, reply[1:10], attributes)

    async def update(self, token: ParsedToken, changes: AttributeChanges) -> Updated | Conflict | Invalid:
        args: list[ScriptArg] = [
            token.session_id,
            token.digest,
            "" if changes.if_version is None else str(changes.if_version),
            self._config.max_attributes_bytes,
            "1" if changes.touch else "0",
            self._config.tombstone_ms,
            len(changes.set),
            len(changes.remove),
            len(changes.increment),
        ]
        for name, value in changes.set.items():
            args += [name, value]
        args += list(changes.remove)
        for name, delta in changes.increment.items():
            args += [name, str(delta)]
        reply = await self._redis.run(self._update, self._keys.bucket(token.bucket), args)
        code = int(reply[0])
        if code == 1:
            pairs = reply[2]
            return Updated(
                int(reply[1]), {text(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
            )
        if code == 0:
            return Invalid(InvalidReason(int(reply[1])))
        if code == 2:
            return Conflict(int(reply[1]))
        if code in (-1, -2):
            raise _increment_refused(code, text(reply[1]))
        raise attributes_too_large("set", int(reply[1]), self._config.max_attributes_bytes)

    async def rotate(self, token: ParsedToken, grace_ms: int) -> Rotation | Invalid:
        fresh = new_token(token.session_id)
        args: list[ScriptArg] = [
            token.session_id,
            token.digest,
            token_digest(fresh),
            grace_ms,
            self._config.tombstone_ms,
        ]
        reply = await self._redis.run(self._rotate, self._keys.bucket(token.bucket), args)
        if int(reply[0]) == 0:
            return Invalid(InvalidReason(int(reply[1])))
        return Rotation(fresh, _view(token.session_id, reply[1:10], {}), int(reply[10]))

    async def revoke(self, session_id: str, bucket: int, digest: str = "") -> bool:
        """Revoke by token (``digest`` of it) or, with no digest, by session id alone."""
        args: list[ScriptArg] = [session_id, digest, self._config.tombstone_ms]
        keys = self._keys.bucket(bucket)
        reply = await self._redis.run(self._revoke, keys, args)
        if not int(reply[0]):
            return False
        subject = text(reply[1])
        if subject:
            # Tidy the subject index now rather than at its next read; idempotent, same bucket.
            index = [keys[2], self._keys.subject(bucket, subject)]
            await self._redis.run(self._prune_index, index, [])
        return True

    async def revoke_all(self, subject: str, except_session_id: str = "") -> int:
        bucket = subject_bucket(subject)
        keys = [*self._keys.bucket(bucket), self._keys.subject(bucket, subject)]
        reply = await self._redis.run(self._revoke_all, keys, [except_session_id, self._config.tombstone_ms])
        return int(reply[0])

    async def list(self, subject: str, page_size: int, after: Cursor | None) -> SessionPage:
        bucket = subject_bucket(subject)
        records, _, ends = self._keys.bucket(bucket)
        keys = [records, ends, self._keys.subject(bucket, subject)]
        args: list[ScriptArg] = [
            page_size,
            "" if after is None else after.created_ms,
            "" if after is None else after.session_id,
        ]
        reply = await self._redis.run(self._list, keys, args)
        sessions = [_view(text(row[0]), row[1:10], {}) for row in reply[1]]
        if int(reply[0]) == 1 and sessions:
            last = sessions[-1]
            return SessionPage(sessions, Cursor(last.created_ms, last.session_id))
        return SessionPage(sessions, None)


def attributes_too_large(field_path: str, actual: int, limit: int) -> TooLarge:
    description = f"session attributes would total {actual} bytes (names plus values); the limit is {limit}"
    return TooLarge(
        message=f"{field_path}: {description}",
        reason="SESSION_ATTRIBUTES_TOO_LARGE",
        metadata={"field": field_path, "limit": str(limit), "actual": str(actual)},
        violations=(FieldViolation(field_path, description),),
    )


def _increment_refused(code: int, name: str) -> FailedPrecondition | OutOfRange:
    """update.lua's refusal to increment attribute ``name``: code -1, it does not hold a decimal
    integer; -2, the sum would leave +/-(2^53 - 1). Both name the attribute in the metadata."""
    metadata = {"field": f"increment[{name}]", "attribute": name}
    if code == -1:
        return FailedPrecondition(
            f"attribute {name!r} does not hold a decimal integer; it cannot be incremented",
            reason="VALUE_NOT_INTEGER",
            metadata=metadata,
        )
    return OutOfRange(
        f"incrementing attribute {name!r} would leave the range +/-(2^53 - 1)",
        reason="INTEGER_OVERFLOW",
        metadata=metadata,
    )


def _view(session_id: str, row: Sequence[Any], attributes: Mapping[str, bytes]) -> Session:
    """``row``: subject, version, created, last, idle ms, absolute at, ip, user agent, label."""
    return Session(
        session_id=session_id,
        subject=text(row[0]),
        version=int(row[1]),
        created_ms=int(row[2]),
        last_active_ms=int(row[3]),
        idle_ms=int(row[4]),
        absolute_expire_ms=int(row[5]),
        client=ClientInfo(text(row[6]), text(row[7]), text(row[8])),
        attributes=attributes,
    )
