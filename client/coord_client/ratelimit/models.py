"""What the RateLimit client takes and returns: a :class:`Limit` in, a :class:`Decision` out.

A denial is a :class:`Decision` with ``allowed`` False (it is falsy), not an exception; the
``limited`` forms raise :class:`RateLimited` instead. Times are seconds (``float``). The server
names these the same way (``coord_server.ratelimit.store``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Limit:
    """One descriptor of a check: ``key`` under an inline rule (``rate``) or a named ``policy``.

    ``rate`` is ``"LIMIT/PERIOD"`` (see :func:`parse_rate`); ``burst`` applies to the token bucket
    only; ``algorithm`` is one of :data:`ALGORITHMS`; ``on_backend_error`` is ``"closed"`` (deny when
    Redis is unavailable, the default) or ``"open"``; ``cost`` overrides the check's cost.
    """

    key: str
    rate: str | None = None
    burst: int = 0
    algorithm: str = "token_bucket"
    policy: str | None = None
    on_backend_error: str = "closed"
    name: str = ""
    cost: int = 0


@dataclass(frozen=True)
class LimitStatus:
    """The decision for one :class:`Limit`; durations in seconds (millisecond precision)."""

    key: str
    name: str
    algorithm: str
    allowed: bool
    consumed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    period: float


@dataclass(frozen=True)
class Decision:
    """The decision for a check; truthy when allowed. ``headers`` holds ready-made IETF
    ``RateLimit`` and ``RateLimit-Policy`` HTTP header values."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    statuses: list[LimitStatus]
    headers: dict[str, str]
    backend_unavailable: bool
    decide_time: datetime | None

    def __bool__(self) -> bool:
        return self.allowed


class RateLimited(Exception):
    """Raised by the ``limited`` forms when a check denies; ``retry_after`` is in seconds."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.retry_after = decision.retry_after
        denied = ", ".join(s.key for s in decision.statuses if not s.allowed)
        super().__init__(f"rate limited ({denied}); retry after {decision.retry_after:g}s")


__all__ = ["Decision", "Limit", "LimitStatus", "RateLimited"]
