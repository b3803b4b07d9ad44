"""Conversions between well-known protobuf types and plain Python values.

A Duration a request gives is read and checked by ``validation.duration_within`` (``ttl_within`` for
a TTL), which names the field and the range in its errors."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

_NANOS_PER_MS = 1_000_000


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
