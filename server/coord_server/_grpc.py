"""The RPC boundary: deadline propagation and the one table mapping domain errors to gRPC statuses.

Every servicer method is wrapped by :func:`rpc`. It records the caller's deadline for the Redis layer,
turns a :class:`CoordError` into a ``google.rpc.Status`` with an ``ErrorInfo`` (plus ``BadRequest``
and ``RetryInfo`` where they apply), and turns anything unexpected into INTERNAL with nothing internal
leaked (the traceback goes to the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from .errors import (
    BackendUnavailable,
    CoordError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LimitReached,
    OutOfRange,
    SubscriberTooSlow,
    TooLarge,
)
from .redis import deadline

log = logging.getLogger("coord_server.rpc")

DOMAIN = "coord"

# The one mapping table (domain error -> gRPC status). Order matters only for subclasses.
STATUS_OF: dict[type[CoordError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    BackendUnavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    LimitReached: grpc.StatusCode.RESOURCE_EXHAUSTED,
    SubscriberTooSlow: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_code_of(error: CoordError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def to_status(error: CoordError) -> status_pb2.Status:
    """Build the rich ``google.rpc.Status`` for ``error``."""
    code = status_code_of(error)
    details: list[any_pb2.Any] = []

    def pack(message: Any) -> None:
        packed = any_pb2.Any()
        packed.Pack(message)
        details.append(packed)

    pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=dict(error.metadata)))
    violations = getattr(error, "violations", ())
    if violations:
        pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in violations
                ]
            )
        )
    if error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after * 1e9))
        pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status_pb2.Status(code=code.value[0], message=error.message, details=details)


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: CoordError) -> NoReturn:
    status = rpc_status.to_status(to_status(error))
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[S, Req, "grpc.aio.ServicerContext[Req, Resp]"], Awaitable[Resp]]


def internal_error() -> CoordError:
    """What a caller sees of an unexpected fault: no internals (the traceback goes to the log)."""
    return CoordError("internal error; the server log has the details")


def _enter(context: grpc.aio.ServicerContext[Any, Any]) -> deadline.Token:
    """Record the caller's deadline for the Redis layer (see redis/deadline.py)."""
    remaining = context.time_remaining()
    return deadline.set(time.monotonic() + remaining if remaining is not None else None)


async def _fail(name: str, context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> NoReturn:
    """End the RPC with the rich status for ``error``: its own for a CoordError, INTERNAL otherwise."""
    if isinstance(error, CoordError):
        _log_error(name, error)
        await abort(context, error)
    log.error("%s failed unexpectedly", name, exc_info=error)
    await abort(context, internal_error())


@contextlib.asynccontextmanager
async def _boundary(name: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
    """The caller's deadline for the Redis layer, and every failure turned into a rich status."""
    token = _enter(context)
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except Exception as error:
        await _fail(name, context, error)
    finally:
        with contextlib.suppress(ValueError):  # a stream generator closed from another context
            deadline.reset(token)


def rpc(method: Handler[S, Req, Resp]) -> Handler[S, Req, Resp]:
    """Wrap a unary servicer method with the boundary described in the module docstring.

    The same steps as :func:`_boundary`, written out: this is every unary call's hot path, and a
    generator-based context manager costs a few microseconds per call that this does not.
    """
    name = method.__qualname__

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
        token = _enter(context)
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _fail(name, context, error)
        finally:
            deadline.reset(token)

    return wrapper


StreamHandler = Callable[[S, Req, "grpc.aio.ServicerContext[Any, Resp]"], AsyncIterator[Resp]]


def stream_rpc(method: StreamHandler[S, Req, Resp]) -> StreamHandler[S, Req, Resp]:
    """Wrap a server-streaming or bidirectional servicer method (an async generator) like :func:`rpc`.

    The caller's deadline bounds every Redis call made while the stream runs. A CoordError raised
    at any point ends the stream with its rich status; cancellation passes through untouched.
    """
    name = method.__qualname__

    @functools.wraps(method)
    async def wrapper(
        self: S, request: Req, context: grpc.aio.ServicerContext[Any, Resp]
    ) -> AsyncIterator[Resp]:
        async with _boundary(name, context):
            async for item in method(self, request, context):
                yield item

    return wrapper


def _log_error(name: str, error: CoordError) -> None:
    code = status_code_of(error)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        log.warning("%s: %s (%s)", name, error.message, error.reason)
    else:
        log.debug("%s: %s (%s)", name, error.message, error.reason)


def item_status(name: str, error: Exception) -> status_pb2.Status:
    """The status one item of a stream or batch answers with, when handling it failed as a call would."""
    if isinstance(error, CoordError):
        _log_error(name, error)
        return to_status(error)
    log.error("%s failed unexpectedly", name, exc_info=error)
    return to_status(internal_error())


# Requests of one stream being decided at once; further ones wait to be read (flow control).
STREAM_IN_FLIGHT = 256
_END = object()


async def answer_each(
    requests: AsyncIterator[Req],
    handle: Callable[[Req], Awaitable[Resp]],
    name: str,
    in_flight: int = STREAM_IN_FLIGHT,
) -> AsyncIterator[tuple[Req, Resp | None, status_pb2.Status | None]]:
    """Answer every request of a bidirectional stream with ``handle``, many at once.

    Yields ``(request, response, None)`` or, when ``handle`` fails as a unary call would,
    ``(request, None, status)`` with the rich status the unary call would have returned: one
    request's failure never ends the stream. Answers come in completion order. At most
    ``in_flight`` requests are handled at once; the rest stay unread (gRPC flow control pushes back
    on the caller). Runs in the caller's context, so the stream's deadline bounds every Redis call.
    """
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[Any] = asyncio.Queue()
    room = asyncio.Semaphore(in_flight)
    pending: set[asyncio.Task[None]] = set()

    async def one(request: Req) -> None:
        try:
            answers.put_nowait((request, await handle(request), None))
        except Exception as error:
            answers.put_nowait((request, None, item_status(name, error)))
        finally:
            room.release()

    async def read() -> None:
        try:
            async for request in requests:
                await room.acquire()
                task = loop.create_task(one(request))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(set(pending))
        finally:
            answers.put_nowait(_END)

    reader = loop.create_task(read())
    try:
        while (item := await answers.get()) is not _END:
            yield item
        await reader  # re-raises a failure to read the stream
    finally:
        for task in (reader, *pending):
            task.cancel()


__all__ = [
    "DOMAIN",
    "STATUS_OF",
    "abort",
    "answer_each",
    "item_status",
    "rpc",
    "status_code_of",
    "stream_rpc",
    "to_status",
]


_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_service(
    server: grpc.aio.Server,
    servicer: object,
    service: ServiceDescriptor,
    *,
    preencoded: Collection[str] = (),
) -> None:
    """Register ``servicer`` for ``service`` as the generated ``add_…_to_server`` does, except that the
    methods named in ``preencoded`` may also yield ``bytes``: a reply already serialized, sent as is.

    A server stream that sends one message to many subscribers encodes it once, not once per stream.
    """
    handlers = {}
    for method in service.methods:
        request = GetMessageClass(method.input_type)
        encode: Callable[[Any], bytes] = GetMessageClass(method.output_type).SerializeToString
        if method.name in preencoded:
            encode = _bytes_or(encode)
        kind = _KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=request.FromString,
            response_serializer=encode,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    # As the generated code does: registered methods skip the generic lookup per call (not in the stubs).
    server.add_registered_method_handlers(service.full_name, handlers)  # type: ignore[attr-defined]


def _bytes_or(encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def serialize(message: Any) -> bytes:
        return message if type(message) is bytes else encode(message)

    return serialize
