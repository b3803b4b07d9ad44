"""The RPC boundary: deadline propagation and the one table mapping domain errors to gRPC statuses.

Every servicer method is wrapped by :func:`rpc`. It records the caller's deadline for the Redis layer,
turns a :class:`CoordError` into a ``google.rpc.Status`` with an ``ErrorInfo`` (plus ``BadRequest``
and ``RetryInfo`` where they apply), and turns anything unexpected into INTERNAL with nothing internal
leaked (the traceback goes to the log). A request that could not be decoded (_decoding.py) is answered
INVALID_ARGUMENT before the servicer runs.

Services are registered with :func:`add_service`: its request deserializers never raise into gRPC,
and it keeps track of the streams open on the server, which its shutdown ends at once (_streams.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
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

from coord.common.v1 import errors_pb2

from . import _streams, access_log, logs, tenancy, tracing
from ._decoding import Malformed, decoder
from .errors import (
    BackendOutOfMemory,
    BackendUnavailable,
    CoordError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LimitReached,
    OutOfRange,
    PermissionDenied,
    ShuttingDown,
    SubscriberTooSlow,
    TooLarge,
    Unauthenticated,
)
from .metrics import grpc_server as rpc_metrics
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
    BackendOutOfMemory: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    LimitReached: grpc.StatusCode.RESOURCE_EXHAUSTED,
    SubscriberTooSlow: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
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


# Set on the wrappers of rpc and stream_rpc: they answer a Malformed request themselves, so
# add_service needs no wrapper of its own around them (none on the hot path).
_ANSWERS_MALFORMED = "_coord_answers_malformed"


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
            if request.__class__ is Malformed:
                raise request.error  # type: ignore[attr-defined]
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _fail(name, context, error)
        finally:
            deadline.reset(token)

    setattr(wrapper, _ANSWERS_MALFORMED, True)
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
            if request.__class__ is Malformed:
                raise request.error  # type: ignore[attr-defined]
            async for item in method(self, request, context):
                yield item

    setattr(wrapper, _ANSWERS_MALFORMED, True)
    return wrapper


# Only a failure of the server's own side (Redis unreachable or not serving) is a WARNING. What a
# caller caused (a deadline too short for the call, DEADLINE_TOO_SHORT; a bad argument, a missing
# key, a refused permission or credential...) is DEBUG: at WARNING, any client could write one line
# per call into the server log. They are counted without logging by grpc_server_handled_total, per
# method and status code (metrics/families.py), which is where an operator sees them. A Redis slower
# than COORD_REDIS_TIMEOUT is still a WARNING (UNAVAILABLE) for every call with a longer deadline.
_WARNED_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
# Reasons every call shares while Redis is away: logged once, then folded (logs.OutageFilter).
_FOLDED_REASONS = frozenset({"BACKEND_UNAVAILABLE", "BACKEND_OUT_OF_MEMORY"})


def _log_error(name: str, error: CoordError) -> None:
    code = status_code_of(error)
    if isinstance(error, ShuttingDown):
        log.debug("%s: ended by the shutdown", name)  # the app logs how many streams it ended
        return
    level = logging.WARNING if code in _WARNED_CODES else logging.DEBUG
    if not log.isEnabledFor(level):
        return
    extra = {"method": name, "code": code.name, "reason": error.reason, "tenant": tenancy.bound()}
    if error.reason in _FOLDED_REASONS:
        extra[logs.FOLD_KEY] = error.reason
    log.log(level, "%s: %s (%s)", name, error.message, error.reason, extra=extra)


def item_status(name: str, error: Exception) -> status_pb2.Status:
    """The status one item of a stream or batch answers with, when handling it failed as a call would."""
    if isinstance(error, CoordError):
        _log_error(name, error)
        return to_status(error)
    log.error("%s failed unexpectedly", name, exc_info=error)
    return to_status(internal_error())


def stream_error(status: status_pb2.Status) -> errors_pb2.StreamError:
    """``status`` as the ``error`` of a streamed or batched answer (StreamError has Status's fields)."""
    return errors_pb2.StreamError(code=status.code, message=status.message, details=status.details)


# Requests of one stream taken in and not yet answered on the wire: being decided, or decided and
# waiting to be sent. Further ones stay unread (flow control pushes back on the caller).
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
    request's failure never ends the stream. Answers come in completion order. Runs in the caller's
    context, so the stream's deadline bounds every Redis call.

    At most ``in_flight`` requests are read and not yet sent: a request's slot is freed when its
    answer has been sent, not when it has been decided. gRPC resumes a response generator only once
    the previous message went out, and it goes out only as fast as the caller reads; so a caller that
    writes without reading stops being read after ``in_flight`` answers wait for it (the rest of its
    requests stay unread, and gRPC flow control pushes back on it), and the server holds at most
    ``in_flight`` answers for it, however much it writes.

    When the server shuts down (_streams.py), the stream drains: it stops reading, answers every
    request it has read, then ends with ShuttingDown (UNAVAILABLE). A request it read but had not
    started (waiting for a slot) is not answered, and was not applied.
    """
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[Any] = asyncio.Queue()
    room = asyncio.Semaphore(in_flight)
    pending: set[asyncio.Task[None]] = set()
    reading, draining, stopped = True, False, False

    async def one(request: Req) -> None:
        try:
            answers.put_nowait((request, await handle(request), None))
        except Exception as error:
            answers.put_nowait((request, None, item_status(name, error)))

    async def read() -> None:
        nonlocal reading, stopped
        try:
            try:
                async for request in requests:
                    await room.acquire()
                    task = loop.create_task(one(request))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            except asyncio.CancelledError:
                if not draining:
                    raise
                reader.uncancel()  # stopped reading for the shutdown: what was read is answered
                stopped = True
            reading = False
            if pending:
                await asyncio.wait(set(pending))
        finally:
            answers.put_nowait(_END)

    def drain() -> None:
        nonlocal draining
        draining = True
        if reading:
            reader.cancel()

    reader = loop.create_task(read())
    stream = _streams.current()
    if stream is not None:
        stream.drain = drain
    try:
        while (item := await answers.get()) is not _END:
            yield item
            room.release()  # resumed: gRPC has sent this answer and asks for the next one
        await reader  # re-raises a failure to read the stream
        if stopped:
            raise ShuttingDown()
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
    "stream_error",
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
    """Register ``servicer`` for ``service`` as the generated ``add_…_to_server`` does, except that:

    - a request that cannot be decoded is answered INVALID_ARGUMENT (reason MALFORMED_REQUEST), on
      every method, also of a servicer that is not Coord's (health, reflection): see _decoding.py;
    - every call of a streaming method is one of the server's open streams, which its shutdown ends
      at once, telling the client so (_streams.py);
    - the methods named in ``preencoded`` may also yield ``bytes``: a reply already serialized, sent
      as is. A server stream that sends one message to many subscribers encodes it once, not once
      per stream;
    - when they are on for ``server``, the access log, the metrics and tracing (a SERVER span per
      call, the caller's ``traceparent`` its parent: tracing/) wrap every method.
    """
    handlers = {}
    streams = _streams.of(server)
    metrics = rpc_metrics.of(server)  # None when metrics are off: nothing below is wrapped for them
    access = access_log.enabled(server)  # likewise for the access log
    traced = tracing.of(server)  # and for tracing (a span per call)
    for method in service.methods:
        request = GetMessageClass(method.input_type)
        encode: Callable[[Any], bytes] = GetMessageClass(method.output_type).SerializeToString
        if method.name in preencoded:
            encode = _bytes_or(encode)
        kind = _KINDS[(method.client_streaming, method.server_streaming)]
        behaviour = getattr(servicer, method.name)
        if not getattr(behaviour, _ANSWERS_MALFORMED, False):
            behaviour = _answering_malformed(behaviour, method.client_streaming)
        if method.client_streaming or method.server_streaming:
            behaviour = _ended_on_shutdown(behaviour, streams)
        decode = decoder(request, streaming=method.client_streaming)
        if access is not None:
            behaviour = access_log.wrap(behaviour, f"/{service.full_name}/{method.name}", access)
        if metrics is not None:  # outermost: a status set by any wrapper above is the one counted
            counted = rpc_metrics.MethodMetrics(
                metrics, service.full_name, method.name, method.client_streaming, method.server_streaming
            )
            behaviour, decode, encode = (
                counted.behaviour(behaviour),
                counted.deserializer(decode),
                counted.serializer(encode),
            )
        if traced is not None:  # around the metrics: the access log line and every span inside it
            behaviour = traced.method(service.full_name, method.name).behaviour(behaviour)
        handlers[method.name] = kind(
            behaviour,
            request_deserializer=decode,
            response_serializer=encode,
        )
    # Generic handlers only, unlike the generated code, which also registers each method: grpc.aio
    # keeps one pending task per registered method and waits on all of them for every call, which
    # with Coord's 80-odd methods cost about 33 us a call (an asyncio.wait over 82 tasks), more than
    # the generic lookup (a dict per service). Measured with a Get loop at c=64 against two servers
    # side by side: 296-366 against 381-429 us of server CPU per call.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _bytes_or(encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def serialize(message: Any) -> bytes:
        return message if type(message) is bytes else encode(message)

    return serialize


async def _refuse_malformed(context: Any, error: CoordError) -> NoReturn:
    log.debug("malformed request: %s", error.message)
    await abort(context, error)


def _answering_malformed(behaviour: Callable[..., Any], request_streaming: bool) -> Callable[..., Any]:
    """``behaviour`` (a servicer method not wrapped by rpc or stream_rpc) made to answer a request that
    cannot be decoded with INVALID_ARGUMENT, keeping its kind (coroutine, async generator or sync)."""
    if request_streaming:
        # A message that cannot be decoded raises an InvalidArgument where it is read (_decoding.py).
        if inspect.isasyncgenfunction(behaviour):

            async def read_stream(requests: Any, context: Any) -> AsyncIterator[Any]:
                try:
                    async for item in behaviour(requests, context):
                        yield item
                except InvalidArgument as error:
                    await _refuse_malformed(context, error)

            return read_stream
        if inspect.iscoroutinefunction(behaviour):

            async def read_all(requests: Any, context: Any) -> Any:
                try:
                    return await behaviour(requests, context)
                except InvalidArgument as error:
                    await _refuse_malformed(context, error)

            return read_all
        return behaviour  # a synchronous request stream (none here): left as it is
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if request.__class__ is Malformed:
                await _refuse_malformed(context, request.error)
            async for item in behaviour(request, context):
                yield item

        return stream
    if inspect.iscoroutinefunction(behaviour):

        async def unary(request: Any, context: Any) -> Any:
            if request.__class__ is Malformed:
                await _refuse_malformed(context, request.error)
            return await behaviour(request, context)

        return unary

    def sync(request: Any, context: Any) -> Any:  # run in a thread, with a context whose abort blocks
        if request.__class__ is Malformed:
            log.debug("malformed request: %s", request.error.message)
            status = rpc_status.to_status(to_status(request.error))
            context.abort(status.code, status.details, status.trailing_metadata)
        return behaviour(request, context)

    return sync


async def _shutting_down(name: str, context: Any) -> NoReturn:
    error = ShuttingDown()
    _log_error(name, error)
    await abort(context, error)


def _ended_on_shutdown(behaviour: Callable[..., Any], streams: _streams.Streams) -> Callable[..., Any]:
    """``behaviour`` (a streaming method) registered in ``streams`` while it runs: when the shutdown
    cancels it, its own cleanup runs (as when the client goes away), then the client is told the
    server is shutting down (UNAVAILABLE with RetryInfo). A drained stream (answer_each) ends itself."""
    name = getattr(behaviour, "__qualname__", repr(behaviour))
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if streams.ending:  # between the shutdown's start and gRPC refusing new calls
                await _shutting_down(name, context)
            opened, token = streams.enter()
            try:
                async for item in behaviour(request, context):
                    yield item
            except asyncio.CancelledError:
                if not opened.ended:
                    raise
                opened.task.uncancel()
                await _shutting_down(name, context)
            finally:
                streams.leave(opened, token)

        return stream
    if inspect.iscoroutinefunction(behaviour):

        async def call(request: Any, context: Any) -> Any:
            if streams.ending:
                await _shutting_down(name, context)
            opened, token = streams.enter()
            try:
                return await behaviour(request, context)
            except asyncio.CancelledError:
                if not opened.ended:
                    raise
                opened.task.uncancel()
                await _shutting_down(name, context)
            finally:
                streams.leave(opened, token)

        return call
    return behaviour  # a synchronous stream runs in a thread: server.stop's grace bounds it
