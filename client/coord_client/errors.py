"""Typed errors: every failed call raises a :class:`CoordError` subclass chosen by its gRPC status code.

Coord sends each error as a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer, with an
``ErrorInfo`` (``reason`` from ``coord.common.v1.ErrorReason``, ``domain`` "coord", ``metadata``), a
``BadRequest`` naming bad fields, and a ``RetryInfo`` where a retry makes sense. :func:`from_grpc_error`
decodes all of them; branch on ``.reason`` (stable), never on ``.message`` (human text).

    try:
        client.cache.set("", b"v")
    except coord_client.InvalidArgument as e:
        e.reason            # "INVALID_FIELD"
        e.field_violations  # [("key", "must not be empty")]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

_DETAILS_KEY = "grpc-status-details-bin"


class CoordError(Exception):
    """Base of every error a Coord call raises.

    ``code`` is the gRPC status code, ``reason``/``domain``/``metadata`` come from the ``ErrorInfo``
    detail ("" and {} when the server sent none, as for transport errors), ``retry_after`` is the
    ``RetryInfo`` delay in seconds (or None) and ``field_violations`` lists ``(field, description)``
    pairs from ``BadRequest``.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        # A code passed in matters only for codes without their own class (such as DATA_LOSS).
        self.code = code if code is not None else type(self).code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.retry_after = retry_after
        self.field_violations: list[tuple[str, str]] = list(field_violations)

    def __str__(self) -> str:
        label = self.code.name + (f" ({self.reason})" if self.reason else "")
        return f"{label}: {self.message}" if self.message else label

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, message={self.message!r})"
        )


_BY_CODE: dict[grpc.StatusCode, type[CoordError]] = {}


def _register(cls: type[CoordError]) -> type[CoordError]:
    _BY_CODE[cls.code] = cls
    return cls


@_register
class Cancelled(CoordError):
    """The call was cancelled, usually by the caller."""

    code = grpc.StatusCode.CANCELLED


@_register
class Unknown(CoordError):
    """The server or the transport reported an error it could not classify."""

    code = grpc.StatusCode.UNKNOWN


@_register
class InvalidArgument(CoordError):
    """The request is malformed (``field_violations`` says where); retrying it unchanged cannot succeed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


@_register
class DeadlineExceeded(CoordError):
    """The call's deadline passed before it finished; a write may or may not have happened."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


@_register
class NotFound(CoordError):
    """A resource the call needs does not exist (cache misses are results, not this error)."""

    code = grpc.StatusCode.NOT_FOUND


@_register
class AlreadyExists(CoordError):
    """A resource the call would create already exists."""

    code = grpc.StatusCode.ALREADY_EXISTS


@_register
class PermissionDenied(CoordError):
    """The caller is not allowed to do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


@_register
class ResourceExhausted(CoordError):
    """A size or quota limit was hit (for example VALUE_TOO_LARGE, or a message over the gRPC limit)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


@_register
class FailedPrecondition(CoordError):
    """The stored state does not allow the call (for example VALUE_NOT_INTEGER on an increment)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


@_register
class Aborted(CoordError):
    """The call was aborted by a concurrency conflict."""

    code = grpc.StatusCode.ABORTED


@_register
class OutOfRange(CoordError):
    """A result would leave its valid range (for example INTEGER_OVERFLOW)."""

    code = grpc.StatusCode.OUT_OF_RANGE


@_register
class Unimplemented(CoordError):
    """The server does not offer this method (an older server, or a different service)."""

    code = grpc.StatusCode.UNIMPLEMENTED


@_register
class Internal(CoordError):
    """An unexpected server fault; the details are in the server's log."""

    code = grpc.StatusCode.INTERNAL


@_register
class Unavailable(CoordError):
    """The server or its Redis cannot be reached right now. Idempotent calls are retried automatically."""

    code = grpc.StatusCode.UNAVAILABLE


@_register
class Unauthenticated(CoordError):
    """The call carries no valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


def error_class(code: grpc.StatusCode) -> type[CoordError]:
    """The class raised for ``code`` (CoordError itself for codes without their own class)."""
    return _BY_CODE.get(code, CoordError)


def from_grpc_error(error: grpc.RpcError) -> CoordError:
    """Turn a sync ``grpc.RpcError`` or a ``grpc.aio.AioRpcError`` into the matching CoordError.

    Rich details are read from the ``grpc-status-details-bin`` trailer when present; otherwise only
    the status code and message are known (as for errors raised by the transport itself).
    """
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    message = (error.details() if callable(getattr(error, "details", None)) else None) or ""
    status = _rich_status(error)
    if status is not None and status.message:
        message = status.message
    fields: dict[str, Any] = {}
    if status is not None:
        fields = _decode_details(status)
    return error_class(code)(message, code=code, **fields)


def from_status(code: int, message: str, details: Sequence[Any] = ()) -> CoordError:
    """The CoordError for a status carried inside a message (an item of a stream or a batch)."""
    status_code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    status = status_pb2.Status(code=code, message=message, details=list(details))
    return error_class(status_code)(message, code=status_code, **_decode_details(status))


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        # Code or message differ from the trailer's copy (a proxy may rewrite them): trust the trailer.
        trailers: Any = error.trailing_metadata()
        for key, value in trailers or ():
            if key == _DETAILS_KEY and isinstance(value, bytes):
                return status_pb2.Status.FromString(value)
        return None
    except AttributeError:
        return None  # not a call object (for example a bare RpcError raised by an interceptor)


def _decode_details(status: status_pb2.Status) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            fields.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            fields["retry_after"] = retry.retry_delay.ToNanoseconds() / 1e9
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    if violations:
        fields["field_violations"] = violations
    return fields


__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "CoordError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "error_class",
    "from_grpc_error",
    "from_status",
]
