"""The Lock service's calls as data: each function checks its arguments, builds the request and says
how the response reads (a :class:`~coord_client._call.Call`), or parses one message of a Hold stream.
No I/O here: :mod:`.sync` and :mod:`.aio` send the same requests, so both clients check, build and
parse alike.

Bad arguments raise ValueError or TypeError here, before anything is sent. ``ttl`` None or 0 leaves
the field unset (the server's default lease); ``wait`` None or 0 means a try-lock.
"""

from __future__ import annotations

import time

from google.protobuf import duration_pb2

from coord.lock.v1 import lock_pb2

from .._call import Call
from .._convert import Seconds, from_duration, seconds, to_duration, utc_or_none
from .models import (
    AcquireResult,
    ExtendOutcome,
    ExtendResult,
    Grant,
    Holder,
    LockInfo,
    Mode,
    ReleaseOutcome,
    ReleaseResult,
)

SERVICE = "coord.lock.v1.LockService"

_MODE_PB = {Mode.EXCLUSIVE: lock_pb2.LOCK_MODE_EXCLUSIVE, Mode.SHARED: lock_pb2.LOCK_MODE_SHARED}
_MODE_OF = {v: k for k, v in _MODE_PB.items()}
RELEASE_OUTCOMES = {
    lock_pb2.RELEASE_OUTCOME_RELEASED: ReleaseOutcome.RELEASED,
    lock_pb2.RELEASE_OUTCOME_EXPIRED: ReleaseOutcome.EXPIRED,
    lock_pb2.RELEASE_OUTCOME_NOT_HELD: ReleaseOutcome.NOT_HELD,
    lock_pb2.RELEASE_OUTCOME_HELD_BY_OTHER: ReleaseOutcome.HELD_BY_OTHER,
}
_EXTEND_OUTCOMES = {
    lock_pb2.EXTEND_OUTCOME_EXTENDED: ExtendOutcome.EXTENDED,
    lock_pb2.EXTEND_OUTCOME_RESUMED: ExtendOutcome.RESUMED,
    lock_pb2.EXTEND_OUTCOME_EXPIRED: ExtendOutcome.EXPIRED,
    lock_pb2.EXTEND_OUTCOME_RELEASED: ExtendOutcome.RELEASED,
    lock_pb2.EXTEND_OUTCOME_NOT_HELD: ExtendOutcome.NOT_HELD,
    lock_pb2.EXTEND_OUTCOME_HELD_BY_OTHER: ExtendOutcome.HELD_BY_OTHER,
}
_LOST_REASONS = {
    lock_pb2.LOST_REASON_EXPIRED: "expired",
    lock_pb2.LOST_REASON_NOT_HELD: "not_held",
    lock_pb2.LOST_REASON_BACKEND_UNAVAILABLE: "backend_unavailable",
}


# ---------------------------------------------------------------- the calls


def acquire(request: lock_pb2.AcquireRequest) -> Call[AcquireResult]:
    """An Acquire of ``request`` (see :func:`acquire_request`), sent now."""
    sent = time.monotonic()
    waited = request.HasField("wait")
    return Call("Acquire", request, lambda r: _acquire_result(r, sent, waited))


def acquire_timeout(call: Call[AcquireResult], default: float, timeout: float | None) -> float:
    """A waiting Acquire's deadline covers its wait plus the usual call deadline."""
    return timeout if timeout is not None else default + wait_seconds(call.request)


def release(name: str, lock_token: str) -> Call[ReleaseResult]:
    request = lock_pb2.ReleaseRequest(name=name, lock_token=lock_token)
    return Call(
        "Release",
        request,
        lambda r: ReleaseResult(name, RELEASE_OUTCOMES.get(r.outcome, ReleaseOutcome.NOT_HELD)),
    )


def extend(name: str, lock_token: str, ttl: Seconds | None, resume: bool) -> Call[ExtendResult]:
    request = lock_pb2.ExtendRequest(
        name=name, lock_token=lock_token, ttl=_optional_duration(ttl, "ttl"), resume=resume
    )
    sent = time.monotonic()
    return Call("Extend", request, lambda r: _extend_result(name, r, sent))


def describe(name: str) -> Call[LockInfo]:
    return Call("Describe", lock_pb2.DescribeRequest(name=name), _lock_info)


# ---------------------------------------------------------------- builders


def _optional_duration(value: Seconds | None, name: str) -> duration_pb2.Duration | None:
    """``value`` checked (zero or more seconds); None and 0 alike leave the field unset, which the
    server reads as its default lease (``ttl``) or as no waiting (``wait``)."""
    return to_duration(seconds(value, name) or None)


def _mode(mode: Mode | str | None, limit: int | None) -> Mode:
    """The requested mode; without one, a ``limit`` means a semaphore (SHARED), else a mutex."""
    if mode is None:
        return Mode.SHARED if limit is not None else Mode.EXCLUSIVE
    try:
        return Mode(mode)
    except ValueError:
        raise ValueError(f"mode must be 'exclusive' or 'shared' (got {mode!r})") from None


def acquire_request(
    name: str,
    *,
    ttl: Seconds | None,
    wait: Seconds | None,
    mode: Mode | str | None,
    limit: int | None,
    owner: str,
) -> lock_pb2.AcquireRequest:
    """The request of an Acquire, and of the first message of a Hold stream."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    request = lock_pb2.AcquireRequest(
        name=name,
        mode=_MODE_PB[_mode(mode, limit)],
        ttl=_optional_duration(ttl, "ttl"),
        wait=_optional_duration(wait, "wait"),
        owner=owner,
    )
    if limit is not None:
        request.limit = limit
    return request


def wait_seconds(request: lock_pb2.AcquireRequest) -> float:
    """How long the request may wait in the queue, in seconds (0 for a try-lock)."""
    return from_duration(request.wait)


# ---------------------------------------------------------------- parsers


def holder(pb: lock_pb2.Holder) -> Holder:
    return Holder(
        owner=pb.owner,
        mode=_MODE_OF.get(pb.mode, Mode.EXCLUSIVE),
        fencing_token=pb.fencing_token,
        expire_time=utc_or_none(pb.expire_time, pb.HasField("expire_time")),
        remaining=from_duration(pb.remaining),
        limit=pb.limit,
    )


def grant(pb: lock_pb2.Grant, anchor: float) -> Grant:
    """A Grant whose local deadline is ``anchor`` (a ``time.monotonic()`` reading) + ``valid_for``.

    The anchor is when the request was sent for a try-lock, which errs on the safe side whatever the
    clocks do. A grant made after waiting can only be anchored when its answer arrives, so its
    deadline is late by the one-way network delay; keep a margin.
    """
    valid_for = from_duration(pb.valid_for)
    return Grant(
        name=pb.name,
        lock_token=pb.lock_token,
        fencing_token=pb.fencing_token,
        expire_time=utc_or_none(pb.expire_time, pb.HasField("expire_time")),
        valid_for=valid_for,
        mode=_MODE_OF.get(pb.mode, Mode.EXCLUSIVE),
        valid_until=anchor + valid_for,
    )


def _acquire_result(pb: lock_pb2.AcquireResponse, sent: float, waited: bool) -> AcquireResult:
    if pb.acquired:
        return AcquireResult(True, grant(pb.grant, time.monotonic() if waited else sent))
    return AcquireResult(False, None, [holder(h) for h in pb.holders], pb.queue_position, pb.queue_length)


def _extend_result(name: str, pb: lock_pb2.ExtendResponse, sent: float) -> ExtendResult:
    outcome = _EXTEND_OUTCOMES.get(pb.outcome, ExtendOutcome.NOT_HELD)
    if outcome not in (ExtendOutcome.EXTENDED, ExtendOutcome.RESUMED):
        return ExtendResult(name, outcome)
    valid_for = from_duration(pb.valid_for)
    expires = utc_or_none(pb.expire_time, pb.HasField("expire_time"))
    return ExtendResult(name, outcome, expires, valid_for, pb.fencing_token, sent + valid_for)


def _lock_info(pb: lock_pb2.DescribeResponse) -> LockInfo:
    return LockInfo(
        name=pb.name,
        mode=_MODE_OF.get(pb.mode),
        holders=[holder(h) for h in pb.holders],
        holder_count=pb.holder_count,
        queue_length=pb.queue_length,
        last_fencing_token=pb.last_fencing_token,
        limit=pb.limit,
    )


def lost(pb: lock_pb2.HoldLost) -> tuple[str, str]:
    """The reason and message of a HoldLost, as :class:`LockLost` takes them."""
    return _LOST_REASONS.get(pb.reason, "not_held"), pb.message
