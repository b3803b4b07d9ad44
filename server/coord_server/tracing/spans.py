"""The spans: one SERVER span per RPC, one CLIENT span per batch of Redis scripts.

The tracer provider is the process's global one. When the process has none yet (the usual case: a
server started by ``python -m coord_server``), one is made from the standard environment, as the
OpenTelemetry SDK reads it:

- the resource from ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` (default ``coord``);
- the sampler from ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` (default: parent-based,
  always on);
- the exporters named by ``OTEL_TRACES_EXPORTER`` (comma-separated; default ``otlp``, over gRPC, or
  over HTTP when ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` is ``http/protobuf`` and its package is
  installed; ``console``; any installed ``opentelemetry_traces_exporter`` entry point), each behind
  a batch span processor (``OTEL_BSP_*``). The exporters read their own variables
  (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``...).

A process that set a provider itself (an application embedding Coord, a test with an in-memory
exporter) keeps it, and Coord's spans go there.

Why not ``opentelemetry-instrumentation-grpc``'s ``aio_server_interceptor``: it builds a new handler
per call and hands the servicer a proxy of its context, it names spans ``/service/Method`` (the
semantic conventions say ``service/Method``), and a stream ended by its client or its deadline is
recorded as OK. Bound once per method at registration, like the metrics (metrics/grpc_server.py),
this costs a call only its span.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import logs
from ..config import ConfigError
from ..metrics.grpc_server import code_name

if TYPE_CHECKING:
    from ..redis.backend import ScriptCall

log = logging.getLogger(__name__)

SERVICE_NAME = "coord"
INSTRUMENTATION = "coord_server"

# The codes for which a server span's status is ERROR (OpenTelemetry's semantic conventions for gRPC
# servers): the server's faults. The caller's mistakes (INVALID_ARGUMENT, NOT_FOUND...) leave it unset.
SERVER_FAULTS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_CODE_NUMBER = {code.name: code.value[0] for code in grpc.StatusCode}

_EXPORTER_GROUP = "opentelemetry_traces_exporter"
# What installs each exporter, for the message when it is missing.
_EXPORTER_PACKAGES = {
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
}


class Tracing:
    """The process's tracer for Coord's spans, and what to flush at shutdown."""

    _process: Tracing | None = None

    def __init__(self, tracer: trace.Tracer, provider: Any) -> None:
        self.tracer = tracer
        self._provider = provider

    @classmethod
    def for_process(cls) -> Tracing:
        """The tracing of this process, its provider set up on the first call (ConfigError when
        OTEL_TRACES_EXPORTER names an exporter that is not installed)."""
        if cls._process is None:
            provider = trace.get_tracer_provider()
            if isinstance(provider, trace.ProxyTracerProvider):  # nobody set one: ours, from the env
                provider = _provider_from_env()
                trace.set_tracer_provider(provider)
            cls._process = cls(provider.get_tracer(INSTRUMENTATION), provider)
            logs.trace_ids(current_trace_id)
        return cls._process

    def method(self, service: str, method: str) -> MethodSpans:
        return MethodSpans(self.tracer, service, method)

    def scripts(self, peer: tuple[str, int | None] | None) -> ScriptSpans:
        return ScriptSpans(self.tracer, peer)

    async def flush(self, within: float = 5.0) -> None:
        """Export the spans still buffered (a batch processor's), in a thread: it may block."""
        flush = getattr(self._provider, "force_flush", None)
        if flush is None:
            return
        try:
            await asyncio.to_thread(flush, int(within * 1000))
        except Exception as exc:  # an exporter that cannot reach its collector: not the shutdown's problem
            log.warning("could not flush the last spans: %s", exc)


def _provider_from_env() -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))  # neither variable set it
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for exporter in _exporters_from_env():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporters_from_env() -> list[Any]:
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    exporters = []
    for given in names:
        if given in ("", "none"):
            continue
        name = given
        if given == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            )
            name = "otlp_proto_http" if protocol.strip() == "http/protobuf" else "otlp_proto_grpc"
        found = metadata.entry_points(group=_EXPORTER_GROUP, name=name)
        if not found:
            package = _EXPORTER_PACKAGES.get(name, f"the package with the {name!r} trace exporter")
            raise ConfigError(f"OTEL_TRACES_EXPORTER: {name!r} needs {package}, which is not installed")
        exporters.append(next(iter(found)).load()())
    return exporters


def current_trace_id() -> str | None:
    """The trace id of the current span (32 hex digits), for the JSON log; None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def _carrier(context: Any) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata() or () if type(value) is str}


def _detach(token: Any) -> None:
    """Detach the span's context; a stream generator closed from another context (its finalizer)
    has nothing to restore, which OpenTelemetry's detach would log as an error."""
    if isinstance(token, contextvars.Token):
        with contextlib.suppress(ValueError):
            token.var.reset(token)
    else:
        otel_context.detach(token)


class MethodSpans:
    """The span of every call of one method, its name and attributes bound once."""

    def __init__(self, tracer: trace.Tracer, service: str, method: str) -> None:
        self._tracer = tracer
        self.name = f"{service}/{method}"
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

    def _start(self, context: Any) -> tuple[trace.Span, object]:
        parent = propagate.extract(_carrier(context))  # the caller's traceparent, if it sent one
        span = self._tracer.start_span(
            self.name, context=parent, kind=SpanKind.SERVER, attributes=self._attributes
        )
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

    @staticmethod
    def _end(span: trace.Span, token: object, code: str) -> None:
        span.set_attribute("rpc.grpc.status_code", _CODE_NUMBER.get(code, 2))
        if code in SERVER_FAULTS:
            span.set_status(Status(StatusCode.ERROR, code))
        span.end()
        _detach(token)

    def behaviour(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        """``behaviour`` traced: an async generator or a coroutine function; a synchronous one (none
        of Coord's) is left as it is."""
        start, end = self._start, self._end
        if inspect.isasyncgenfunction(behaviour):

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                span, token = start(context)
                try:
                    async for item in behaviour(request, context):
                        yield item
                except BaseException as error:
                    end(span, token, code_name(context, error))
                    raise
                end(span, token, "OK")

            return stream
        if inspect.iscoroutinefunction(behaviour):

            async def call(request: Any, context: Any) -> Any:
                span, token = start(context)
                try:
                    response = await behaviour(request, context)
                except BaseException as error:
                    end(span, token, code_name(context, error))
                    raise
                end(span, token, "OK")
                return response

            return call
        return behaviour


class ScriptSpans:
    """What RedisBackend.run_each calls around each batch of scripts when tracing is on."""

    def __init__(self, tracer: trace.Tracer, peer: tuple[str, int | None] | None) -> None:
        self._tracer = tracer
        self._peer: Mapping[str, str | int] = {}
        if peer is not None:
            host, port = peer
            self._peer = (
                {"net.peer.name": host} if port is None else {"net.peer.name": host, "net.peer.port": port}
            )

    def start(self, calls: Sequence[ScriptCall]) -> trace.Span | None:
        """The span of ``calls``, started in the caller's task: a child of its RPC's span. None
        outside any trace: the server's own background work (a heartbeat...) starts none."""
        if not trace.get_current_span().get_span_context().is_valid:
            return None
        if len(calls) == 1:
            operation = calls[0].script.name
            attributes: dict[str, str | int] = {"db.system": "redis", "db.operation": operation, **self._peer}
        else:
            operation = ",".join(dict.fromkeys(call.script.name for call in calls))
            attributes = {
                "db.system": "redis",
                "db.operation": operation,
                "db.operation.batch.size": len(calls),
                **self._peer,
            }
        return self._tracer.start_span(f"redis {operation}", kind=SpanKind.CLIENT, attributes=attributes)

    @staticmethod
    def end(span: trace.Span | None, error: BaseException | None) -> None:
        if span is None:
            return
        if error is not None and not isinstance(error, asyncio.CancelledError):
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()


__all__ = ["SERVER_FAULTS", "MethodSpans", "ScriptSpans", "Tracing", "current_trace_id"]
