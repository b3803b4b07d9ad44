"""The server interceptor: every call is authenticated, authorized and counted before its handler runs.

For each method the interceptor wraps the handler once (the wrapped handler is cached, so a call's
own work is only the check). Inside the call's own task, before the servicer runs, the wrapper:

1. identifies the caller (authenticator.py); nobody -> UNAUTHENTICATED, one message for every cause;
2. checks the identity's ``allow`` for ``service.Method`` -> PERMISSION_DENIED with the permission;
3. counts the call against the tenant's calls per second, and a streaming call against its open
   streams (limits.py) -> RESOURCE_EXHAUSTED with a RetryInfo;
4. binds the identity's tenant (``tenancy.bind``) for the whole call: every message of a stream, and
   the tasks the servicer starts; the binding and the stream count end with the call, however it ends.

A refused call ends there: its servicer never runs, so it never reaches Redis. Services left open
(health, and reflection when it is served) pass straight through. Methods of a service outside the
permission catalogue (identity.py) need the ``"*"`` permission.

Interceptors after this one in the server's list must return the same handler for a method every
time: the result of the continuation is cached.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc
from grpc_status import rpc_status

from .. import tenancy
from .._grpc import to_status
from ..errors import CoordError, LimitReached, PermissionDenied, Unauthenticated
from .authenticator import Authenticator
from .identity import Identity, permission_of
from .limits import TenantLimiter

log = logging.getLogger(__name__)

Ctx = grpc.aio.ServicerContext[Any, Any]
# The stubs make these generic; at run time they are plain classes.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]

#: The one message of every UNAUTHENTICATED: it must not tell a wrong key from an expired token.
UNAUTHENTICATED_MESSAGE = "missing or invalid credentials"
#: The retry delay suggested when a tenant is at its stream limit (no one knows when a stream ends).
STREAM_RETRY_AFTER = 1.0


def _status(error: CoordError) -> grpc.Status:
    """The gRPC status (with its ``grpc-status-details-bin`` trailer) a refused call ends with."""
    return rpc_status.to_status(to_status(error))


_UNAUTHENTICATED = _status(Unauthenticated(UNAUTHENTICATED_MESSAGE))

_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _behaviour(handler: Handler) -> Callable[..., Any]:
    streams = (handler.request_streaming, handler.response_streaming)
    behaviour: Callable[..., Any] | None = {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[streams]
    if behaviour is None:  # pragma: no cover - a handler always has the behaviour of its kind
        raise TypeError("method handler without a behaviour")
    return behaviour


class AuthInterceptor(_Interceptor):
    """Owned by the app (one per server); holds no state of its own beyond the wrapped handlers."""

    def __init__(
        self, authenticator: Authenticator, limiter: TenantLimiter, open_services: frozenset[str]
    ) -> None:
        self._auth = authenticator
        self._limiter = limiter
        self._open = open_services
        # method path -> wrapped handler; only methods that exist, so the table stays bounded.
        self._handlers: dict[str, Handler] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is not None:
            return handler
        found = await continuation(handler_call_details)
        if found is None:  # no such method: UNIMPLEMENTED (the stubs omit that None is possible)
            return found
        service = method.lstrip("/").partition("/")[0]
        handler = found if service in self._open else self._wrap(method, found)
        self._handlers[method] = handler
        return handler

    def _wrap(self, method: str, handler: Handler) -> Handler:
        service, permission = permission_of(method)
        refusal = PermissionDenied(f"not allowed {permission}", metadata={"permission": permission})
        denied = _status(refusal)
        identify = self._auth.identify
        limiter = self._limiter

        def admit(context: Ctx) -> Identity | grpc.Status:
            """The caller, admitted; or the status it is refused with."""
            identity = identify(context)
            if identity is None:
                log.debug("%s from %s: unauthenticated", permission, context.peer())
                return _UNAUTHENTICATED
            if not identity.permits(service, permission):
                # DEBUG, as every refusal a caller causes (_grpc.py): counted by grpc_server_handled_total.
                log.debug("%s (tenant %s) is not allowed %s", identity.name, identity.tenant, permission)
                return denied
            wait = limiter.admit(identity.tenant, identity.limits)
            if wait is not None:
                return _rate_limited(identity, wait)
            return identity

        behaviour = _behaviour(handler)
        streaming = handler.request_streaming or handler.response_streaming
        if inspect.isasyncgenfunction(behaviour):
            wrapped: Callable[..., Any] = _generator(behaviour, admit, limiter)
        elif inspect.iscoroutinefunction(behaviour):
            wrapped = _coroutine(behaviour, admit, limiter, streaming)
        else:  # a sync handler would run in a thread, outside the binding: refuse rather than skip auth
            raise TypeError(f"{method}: the auth interceptor supports async handlers only")
        factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


Admit = Callable[[Ctx], "Identity | grpc.Status"]


async def _refuse(context: Ctx, status: grpc.Status) -> NoReturn:
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def _coroutine(
    behaviour: Callable[..., Awaitable[Any]], admit: Admit, limiter: TenantLimiter, streaming: bool
) -> Callable[..., Awaitable[Any]]:
    """Wrap a handler that returns its answer (unary, or a stream driven through the context)."""

    async def call(request: Any, context: Ctx) -> Any:
        identity = admit(context)
        if not isinstance(identity, Identity):
            await _refuse(context, identity)
        tenant = identity.tenant
        if streaming and not limiter.open_stream(tenant, identity.limits):
            await _refuse(context, _stream_limited(identity))
        token = tenancy.bind(tenant)
        try:
            return await behaviour(request, context)
        finally:
            tenancy.unbind(token)
            if streaming:
                limiter.close_stream(tenant)

    return call


def _generator(
    behaviour: Callable[..., AsyncIterator[Any]], admit: Admit, limiter: TenantLimiter
) -> Callable[..., AsyncIterator[Any]]:
    """Wrap a handler that yields its stream of answers: admitted when iteration starts, counted as
    an open stream until the generator ends (exhausted, failed, cancelled or closed)."""

    async def stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
        identity = admit(context)
        if not isinstance(identity, Identity):
            await _refuse(context, identity)
        tenant = identity.tenant
        if not limiter.open_stream(tenant, identity.limits):
            await _refuse(context, _stream_limited(identity))
        # No await between counting the stream and the try: nothing can slip between them.
        try:
            token = tenancy.bind(tenant)
            try:
                async for item in behaviour(request, context):
                    yield item
            finally:
                with contextlib.suppress(ValueError):  # closed from another context (garbage collection)
                    tenancy.unbind(token)
        finally:
            limiter.close_stream(tenant)

    return stream


def _rate_limited(identity: Identity, wait: float) -> grpc.Status:
    rate = identity.limits.calls_per_second
    return _status(
        LimitReached(
            f"tenant {identity.tenant} is over its limit of {rate:g} calls per second on this server",
            reason="TENANT_RATE_LIMITED",
            metadata={"tenant": identity.tenant, "limit": f"{rate:g}"},
            retry_after=wait,
        )
    )


def _stream_limited(identity: Identity) -> grpc.Status:
    most = identity.limits.max_streams
    return _status(
        LimitReached(
            f"tenant {identity.tenant} already has its limit of {most} streams open on this server",
            reason="TENANT_STREAM_LIMIT",
            metadata={"tenant": identity.tenant, "limit": str(most)},
            retry_after=STREAM_RETRY_AFTER,
        )
    )
