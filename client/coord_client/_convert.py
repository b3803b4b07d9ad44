"""The one place durations and timestamps cross between Python and the wire.

Every service module converts through these helpers, so a TTL, a wait or an expiry means the same
thing everywhere: seconds (a float) or a :class:`~datetime.timedelta` in, a
``google.protobuf.Duration`` on the wire, an aware UTC :class:`~datetime.datetime` out.

:func:`parse_duration` is the one duration syntax of Coord, shared by ``coordctl`` and the server's
settings (``COORD_*`` variables and flags): ``250ms``, ``10s``, ``1.5m``, ``1h30m``, ``1d`` or bare
seconds. Whether zero is allowed is the caller's decision (``allow_zero``), never the parser's.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

Seconds = float | int | timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# One or more "<number><unit>" parts, largest unit first (1h30m, 2m15s, 1s500ms), or a bare number
# of seconds. Units: d, h, m, s, ms.
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|d|h|m|s)")
_BARE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("d", "h", "m", "s", "ms")
DURATION_EXAMPLES = "250ms, 10s, 5m, 1h30m, 1d"


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """``text`` in Coord's duration syntax, as seconds; ValueError with a message a person can act on.

    Units must appear at most once each, largest first (``1h30m``, not ``30m1h``), as Go's
    ``time.ParseDuration`` and systemd read them. Negative durations do not exist here.
    """
    raw = text.strip()
    seconds = float(raw) if _BARE.fullmatch(raw) else _compound(raw, text)
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a duration (examples: {DURATION_EXAMPLES})")
    if seconds == 0 and not allow_zero:
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds


def _compound(raw: str, text: str) -> float:
    position, seconds, last_unit = 0, 0.0, -1
    for match in _PART.finditer(raw):
        unit = _UNIT_ORDER.index(match.group(2))
        if match.start() != position or unit <= last_unit:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position, last_unit = match.end(), unit
    if position == 0 or position != len(raw):
        raise ValueError(f"{text!r} is not a duration (examples: {DURATION_EXAMPLES})")
    return seconds


def seconds(value: Seconds | None, name: str, *, allow_zero: bool = True) -> float | None:
    """``value`` (seconds or a timedelta) as float seconds; None stays None.

    TypeError for anything else (a bool included), ValueError naming ``name`` for a negative,
    infinite or NaN value, or zero when ``allow_zero`` is false.
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    else:
        raise TypeError(f"{name} must be seconds (float) or a timedelta, not {type(value).__name__}")
    if not math.isfinite(result) or result < 0 or (result == 0 and not allow_zero):
        what = (
            "a finite number of seconds, zero or more"
            if allow_zero
            else "a positive, finite number of seconds"
        )
        raise ValueError(f"{name} must be {what} (got {value!r})")
    return result


def to_duration(value: float | None) -> duration_pb2.Duration | None:
    """Seconds as a ``Duration`` (nanosecond precision); None stays None (the field is left unset)."""
    if value is None:
        return None
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(value * 1e9))
    return duration


def duration_field(
    value: Seconds | None, name: str, *, allow_zero: bool = True
) -> duration_pb2.Duration | None:
    """:func:`seconds` then :func:`to_duration`: a caller's value checked and put on the wire."""
    return to_duration(seconds(value, name, allow_zero=allow_zero))


def from_duration(duration: duration_pb2.Duration) -> float:
    """A ``Duration`` as float seconds (nanosecond precision, without protobuf's pure-Python helpers)."""
    return duration.seconds + duration.nanos / 1e9


def from_duration_ms(duration: duration_pb2.Duration) -> float:
    """A ``Duration`` in whole milliseconds (toward zero, as ``ToMilliseconds``), as float seconds.

    For durations the server states in milliseconds (rate-limit retry-after, reset-after), so that
    ``0.001 * n`` comes out exactly as the server meant it.
    """
    return (duration.seconds * 1000 + int(duration.nanos / 1_000_000)) / 1000


def utc(stamp: timestamp_pb2.Timestamp) -> datetime:
    """``stamp.ToDatetime(tzinfo=UTC)``, without protobuf's pure-Python helpers (a rate-limit
    decision reads one per check)."""
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def utc_or_none(stamp: timestamp_pb2.Timestamp, present: bool = True) -> datetime | None:
    """:func:`utc`, or None when the field is absent (``present`` false, or the zero timestamp)."""
    if not present or (not stamp.seconds and not stamp.nanos):
        return None
    return utc(stamp)
