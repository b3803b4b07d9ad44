"""Conversions between well-known protobuf types and plain Python values, with field-named errors."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

from .errors import invalid

_NANOS_PER_MS = 1_000_000


def duration_ms(field: str, value: duration_pb2.Duration) -> int:
    """A Duration as whole milliseconds; 0 when unset or zero. Negative or malformed values are refused."""
    if value.seconds < 0 or value.nanos < 0:
        raise invalid(field, "must not be negative")
    if value.nanos >= 1_000_000_000:
        raise invalid(field, "nanos must be below 1e9")
    nanos = value.seconds * 1_000_000_000 + value.nanos
    millis = nanos // _NANOS_PER_MS
    if nanos and not millis:
        raise invalid(field, "must be at least 1 ms", reason="TTL_OUT_OF_RANGE")
    return millis


def whole_ms(field: str, value: duration_pb2.Duration) -> int:
    """:func:`duration_ms` for a Duration that must be a whole number of milliseconds (a rate limit
    period): a finer one is refused, naming the field, rather than truncated to a different value."""
    millis = duration_ms(field, value)
    fraction = value.nanos % _NANOS_PER_MS
    if fraction:
        digits = f"{fraction:06d}".rstrip("0")
        raise invalid(field, f"must be a whole number of milliseconds (got {millis}.{digits} ms)")
    return millis


def timestamp_ms(millis: int) -> timestamp_pb2.Timestamp | None:
    """A Timestamp for Unix milliseconds, or None (field left unset) for 0."""
    if millis <= 0:
        return None
    # The constructor, not FromMilliseconds: this is on every reply, and the helper is pure Python.
    return timestamp_pb2.Timestamp(seconds=millis // 1000, nanos=(millis % 1000) * _NANOS_PER_MS)


def duration_of_ms(millis: int) -> duration_pb2.Duration:
    """A Duration of ``millis`` milliseconds (seconds and nanos share the sign, as Duration requires)."""
    seconds, rest = divmod(abs(millis), 1000)
    sign = -1 if millis < 0 else 1
    return duration_pb2.Duration(seconds=sign * seconds, nanos=sign * rest * _NANOS_PER_MS)


# The same values as plain dicts, which message constructors take for message fields at about a third
# of the cost of building the messages: for replies built on every call of a hot path.


def timestamp_fields_ms(millis: int) -> dict[str, int] | None:
    """:func:`timestamp_ms` as constructor fields; None (field left unset) for 0."""
    if millis <= 0:
        return None
    return {"seconds": millis // 1000, "nanos": (millis % 1000) * _NANOS_PER_MS}


def duration_fields_ms(millis: int) -> dict[str, int]:
    """:func:`duration_of_ms` as constructor fields, for ``millis`` >= 0 (empty for 0)."""
    return {"seconds": millis // 1000, "nanos": (millis % 1000) * _NANOS_PER_MS} if millis > 0 else {}
