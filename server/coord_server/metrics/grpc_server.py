"""Per-RPC metrics with go-grpc-prometheus's names and labels, bound once per method.

``_grpc.add_service`` asks :func:`of` for the server's metrics when it registers a method; when
there are some, it wraps the method's behaviour (started, handled by status code, handling time) and
its request deserializer and response serializer (messages received and sent, every one of them
whether the handler iterates its requests or calls ``context.read()``). A call then only adds to
numbers bound at registration: no label lookup, except for the code of a call that did not end OK.
When metrics are off nothing is wrapped.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from .. import tenancy
from .core import Value
from .families import Metrics

_BY_SERVER: weakref.WeakKeyDictionary[object, Metrics] = weakref.WeakKeyDictionary()

# grpc_type, as go-grpc-prometheus names the four kinds: (client streams, server streams) -> name.
TYPES = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}
_OK = grpc.StatusCode.OK.name


def attach(server: object, metrics: Metrics) -> None:
    """Count the RPCs of the services registered on ``server`` from now on in ``metrics``."""
    _BY_SERVER[server] = metrics


def of(server: object) -> Metrics | None:
    return _BY_SERVER.get(server)


def code_name(context: Any, error: BaseException) -> str:
    """The status a call that raised ``error`` ends with, as go-grpc-prometheus's grpc_code names it."""
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    code = context.code()  # set by context.abort (a Coord error, a refusal): the call's real status
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for member in grpc.StatusCode:
            if member.value[0] == code:
                return member.name
    return grpc.StatusCode.UNKNOWN.name  # an exception gRPC itself turns into UNKNOWN


class MethodMetrics:
    """The series of one method, bound once."""

    def __init__(
        self, metrics: Metrics, service: str, method: str, client_streaming: bool, server_streaming: bool
    ):
        labels = (service, method, TYPES[(client_streaming, server_streaming)])
        self._labels = labels
        self._handled_family = metrics.rpc_handled
        self.started = metrics.rpc_started.value(*labels)
        self.ok = metrics.rpc_handled.value(*labels, _OK)
        self._handled: dict[str, Value] = {_OK: self.ok}
        self.seconds = metrics.rpc_seconds.observed(*labels)
        self.received = metrics.rpc_received.value(*labels)
        self.sent = metrics.rpc_sent.value(*labels)
        self._by_tenant, self._tenant = metrics.by_tenant, metrics.tenant

    def handled(self, code: str) -> Value:
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = self._handled_family.value(*self._labels, code)
        return child

    def _failed(self, context: Any, error: BaseException, started: float) -> None:
        self.handled(code_name(context, error)).value += 1
        self.seconds.observe(time.perf_counter() - started)

    def deserializer(self, decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        received = self.received

        def counted(data: bytes) -> Any:
            received.value += 1
            return decode(data)

        return counted

    def serializer(self, encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
        sent = self.sent

        def counted(message: Any) -> bytes:
            sent.value += 1
            return encode(message)

        return counted

    def behaviour(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        """``behaviour`` counted: an async generator or a coroutine function; a synchronous one (none
        of Coord's) is left as it is."""
        started_count, ok, seconds, failed = self.started, self.ok, self.seconds, self._failed
        perf_counter, bound, by_tenant, tenant_of = (
            time.perf_counter,
            tenancy.bound,
            self._by_tenant,
            self._tenant,
        )
        if inspect.isasyncgenfunction(behaviour):

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                started_count.value += 1
                (by_tenant.get(bound()) or tenant_of(bound())).value += 1
                started = perf_counter()
                try:
                    async for item in behaviour(request, context):
                        yield item
                except BaseException as error:
                    failed(context, error, started)
                    raise
                ok.value += 1
                seconds.observe(perf_counter() - started)

            return stream
        if inspect.iscoroutinefunction(behaviour):

            async def call(request: Any, context: Any) -> Any:
                started_count.value += 1
                (by_tenant.get(bound()) or tenant_of(bound())).value += 1
                started = perf_counter()
                try:
                    response = await behaviour(request, context)
                except BaseException as error:
                    failed(context, error, started)
                    raise
                ok.value += 1
                seconds.observe(perf_counter() - started)
                return response

            return call
        return behaviour
