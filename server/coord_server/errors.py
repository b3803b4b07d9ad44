"""Domain errors. Stores and validators raise these; they know nothing of gRPC.

``_grpc.py`` holds the one table that maps each class to a status code. The ``reason`` of every
error is a value name of ``coord.common.v1.ErrorReason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class StartupError(RuntimeError):
    """The server cannot start (port taken, no redis-server...); the message says what to do.

    A wrong setting is not one of these but a :class:`coord_server.config.ConfigError`."""


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: ``field`` is its path (``requests[3].ttl``), ``description`` says why."""

    field: str
    description: str


@dataclass
class CoordError(Exception):
    """Base of every error Coord reports to a caller."""

    message: str
    reason: str = "INTERNAL_ERROR"
    metadata: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


@dataclass
class InvalidArgument(CoordError):
    """The request is malformed; retrying it unchanged cannot succeed."""

    reason: str = "INVALID_FIELD"
    violations: tuple[FieldViolation, ...] = ()


@dataclass
class TooLarge(CoordError):
    """A value is over a size limit (RESOURCE_EXHAUSTED, as gRPC reports oversized messages)."""

    reason: str = "VALUE_TOO_LARGE"
    violations: tuple[FieldViolation, ...] = ()


@dataclass
class FailedPrecondition(CoordError):
    """The request is well formed but the stored state does not allow it.

    ``reason`` has no default: what state was wrong is the raising service's to say."""

    reason: str = field()  # field(): a bare annotation would inherit CoordError's default


@dataclass
class OutOfRange(CoordError):
    """An arithmetic result would leave the supported range."""

    reason: str = "INTEGER_OVERFLOW"


@dataclass
class BackendUnavailable(CoordError):
    """Redis could not be reached or did not answer in time; idempotent calls may be retried."""

    reason: str = "BACKEND_UNAVAILABLE"
    retry_after: float | None = 1.0


@dataclass
class BackendOutOfMemory(BackendUnavailable):
    """Redis refused a write for lack of memory (OOM: ``maxmemory`` with ``noeviction``), a state of
    the backend like unavailability (RESOURCE_EXHAUSTED with RetryInfo); the call was not applied."""

    reason: str = "BACKEND_OUT_OF_MEMORY"


@dataclass
class DeadlineExceeded(CoordError):
    """The caller's deadline ran out before the work finished."""

    reason: str = "DEADLINE_TOO_SHORT"


@dataclass
class LimitReached(CoordError):
    """A count limit (such as sessions per subject) is reached (RESOURCE_EXHAUSTED).

    ``reason`` has no default: which limit was reached is the raising service's to say."""

    reason: str = field()  # field(): a bare annotation would inherit CoordError's default


def invalid(field_path: str, description: str, reason: str = "INVALID_FIELD", **meta: str) -> InvalidArgument:
    """Shorthand for an InvalidArgument about one field; the message names the field."""
    return InvalidArgument(
        message=f"{field_path}: {description}",
        reason=reason,
        metadata={"field": field_path, **meta},
        violations=(FieldViolation(field_path, description),),
    )


@dataclass
class Unauthenticated(CoordError):
    """The call carries no valid credential (the message never says which check failed)."""

    reason: str = "UNAUTHENTICATED"


@dataclass
class PermissionDenied(CoordError):
    """The caller is known but not allowed this method; ``metadata["permission"]`` names it."""

    reason: str = "PERMISSION_DENIED"


@dataclass
class SubscriberTooSlow(CoordError):
    """A subscriber fell further behind than its buffer allows; ``metadata`` carries its resume cursors."""

    reason: str = "EVENTS_SUBSCRIBER_TOO_SLOW"


@dataclass
class ShuttingDown(CoordError):
    """The server is shutting down and ended this stream (UNAVAILABLE): resume on another server."""

    message: str = "the server is shutting down; resume on another server"
    reason: str = "SERVER_SHUTTING_DOWN"
    retry_after: float | None = 0.1  # at once, elsewhere: this server refuses new calls from now on
