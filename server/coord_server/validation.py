"""Input checks shared by all services. Each failure names the field and the limit it broke."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import duration_pb2

from .config import Settings, format_duration
from .errors import FieldViolation, InvalidArgument, TooLarge, invalid


@dataclass(frozen=True)
class Limits:
    """The configurable input limits, taken from Settings."""

    max_key_bytes: int
    max_value_bytes: int
    max_batch: int
    min_ttl_ms: int
    max_ttl_ms: int
    default_ttl_ms: int

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            max_key_bytes=s.max_key_bytes,
            max_value_bytes=s.max_value_bytes,
            max_batch=s.max_batch,
            min_ttl_ms=max(1, round(s.min_ttl * 1000)),
            max_ttl_ms=round(s.max_ttl * 1000),
            default_ttl_ms=round(s.default_ttl * 1000),
        )

    def key(self, field: str, key: str) -> str:
        """Check a key: non-empty UTF-8 of at most max_key_bytes, with no NUL or newline."""
        if not key:
            raise invalid(field, "must not be empty")
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > self.max_key_bytes:
            description = f"is {size} bytes; the limit is {self.max_key_bytes} bytes"
            raise _over_limit(field, description, "KEY_TOO_LONG", size, self.max_key_bytes)
        if "\x00" in key or "\n" in key or "\r" in key:
            raise invalid(field, "must not contain NUL, CR or LF characters")
        return key

    def value(self, field: str, value: bytes) -> bytes:
        if len(value) > self.max_value_bytes:
            description = f"is {len(value)} bytes; the limit is {self.max_value_bytes} bytes"
            raise TooLarge(
                message=f"{field}: {description}",
                metadata={"field": field, "limit": str(self.max_value_bytes), "actual": str(len(value))},
                violations=(FieldViolation(field, description),),
            )
        return value

    def batch(self, field: str, count: int, *, allow_empty: bool = False) -> None:
        if count == 0 and not allow_empty:
            raise invalid(field, "must hold at least one item")
        if count > self.max_batch:
            description = f"holds {count} items; the limit is {self.max_batch}"
            raise _over_limit(field, description, "BATCH_TOO_LARGE", count, self.max_batch)

    def ttl(self, field: str, value: duration_pb2.Duration, *, unset_ms: int | None = None) -> int:
        """A request's TTL in ms, within COORD_MIN_TTL..COORD_MAX_TTL (see :func:`ttl_within`).
        Unset or zero means ``unset_ms``: the server's default TTL unless the caller gives another
        (a service's own default, or 0 for "keep the current one")."""
        unset = self.default_ttl_ms if unset_ms is None else unset_ms
        return ttl_within(field, value, self.min_ttl_ms, self.max_ttl_ms, unset_ms=unset)


def ttl_within(
    field: str, value: duration_pb2.Duration, min_ms: int, max_ms: int, *, unset_ms: int | None = None
) -> int:
    """The check of every TTL and lease a request gives (errors.proto, TTL_OUT_OF_RANGE): a negative
    one, one shorter than ``min_ms`` and one longer than ``max_ms`` are all INVALID_ARGUMENT with
    reason TTL_OUT_OF_RANGE, ErrorInfo metadata ``field``, ``min`` and ``max``, and a field violation
    naming ``field``. Unset or zero means ``unset_ms``; without one, zero must lie in the range too."""
    return duration_within(field, value, min_ms, max_ms, unset_ms=unset_ms, reason="TTL_OUT_OF_RANGE")


def duration_within(
    field: str,
    value: duration_pb2.Duration,
    min_ms: int,
    max_ms: int,
    *,
    unset_ms: int | None = None,
    reason: str = "INVALID_FIELD",
    whole: bool = False,
) -> int:
    """A Duration field as whole milliseconds (finer precision dropped), within ``min_ms``..``max_ms``.

    The one duration check: TTLs go through :func:`ttl_within`; the durations that are not TTLs
    (waits, timeouts, intervals, rate limit periods) call this directly and keep reason
    INVALID_FIELD. Unset or zero means ``unset_ms`` when given. Otherwise a negative value, a
    non-zero one below 1 ms (it would truncate to zero, which means something else) and one outside
    the range are refused with ``reason``, metadata ``field``, ``min`` and ``max`` (whole
    milliseconds, ``2592000000ms``: one unit a program parses without a table of suffixes) and a
    message saying the range and the value given (there in the settings' syntax: ``1ms``, ``30d``).
    ``whole`` also refuses a value that is not a whole number of milliseconds (a rate limit period,
    which must not be rounded to another rate). A malformed Duration is INVALID_FIELD.
    """
    seconds, nanos = value.seconds, value.nanos
    if not seconds and not nanos and unset_ms is not None:
        return unset_ms
    if not -_NANOS_PER_SECOND < nanos < _NANOS_PER_SECOND or (seconds < 0 < nanos or nanos < 0 < seconds):
        raise invalid(field, "is not a valid Duration (nanos within ±999999999, with the sign of seconds)")
    total = seconds * _NANOS_PER_SECOND + nanos
    millis = total // _NANOS_PER_MS
    if total < 0 or (total and not millis) or not min_ms <= millis <= max_ms:
        raise _out_of_range(field, total, min_ms, max_ms, reason)
    if whole and total % _NANOS_PER_MS:
        raise invalid(field, f"must be a whole number of milliseconds (got {_shown(total)})")
    return millis


_NANOS_PER_MS = 1_000_000
_NANOS_PER_SECOND = 1_000_000_000


def _out_of_range(field: str, nanos: int, min_ms: int, max_ms: int, reason: str) -> InvalidArgument:
    low, high = format_duration(min_ms / 1000), format_duration(max_ms / 1000)
    if min_ms == 0 and 0 < nanos < _NANOS_PER_MS:
        rule = f"must be 0 or lie between 1ms and {high}"
    else:
        rule = f"must lie between {low} and {high}"
    return invalid(
        field, f"{rule} (got {_shown(nanos)})", reason=reason, min=f"{min_ms}ms", max=f"{max_ms}ms"
    )


def _shown(nanos: int) -> str:
    """A duration a request gave, for a message: ``-1s``, ``30d``, ``0.5ms``."""
    sign = "-" if nanos < 0 else ""
    size = abs(nanos)
    if size % _NANOS_PER_MS:
        return f"{sign}{size / _NANOS_PER_MS:.6f}".rstrip("0") + "ms"
    return sign + format_duration(size / _NANOS_PER_SECOND)


def _over_limit(field: str, description: str, reason: str, actual: int, limit: int) -> InvalidArgument:
    """INVALID_ARGUMENT for a field over a configured limit; the metadata carries both numbers
    (``limit``, ``actual``) so that a client can adapt, not only show the message."""
    return invalid(field, description, reason=reason, limit=str(limit), actual=str(actual))


__all__ = ["InvalidArgument", "Limits", "duration_within", "ttl_within"]
