"""What the Session client returns. An invalid token is a normal result (a falsy
:class:`Validation` with a ``reason``), not an exception. Times are timezone-aware ``datetime``
values in UTC. No result ever shows a token in its ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
    """One page of a subject's live sessions; ``next_page_token`` is empty on the last page."""

    sessions: list[Session]
    next_page_token: str


__all__ = ["NewSession", "Rotation", "Session", "SessionPage", "UpdateResult", "Validation"]
