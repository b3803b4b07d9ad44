"""COORD_TRACING: a SERVER span per RPC, child of the caller's W3C traceparent, a CLIENT span per batch
of Redis scripts under it, the status recorded, the trace id in the JSON log; nothing when off.

The in-process server (start_coord) runs in a thread of this process, so one SDK tracer provider
with an in-memory exporter sees the caller's spans and the server's.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord_client import AsyncClient, Client
from coord_client._base import NO_RETRY
from coord_client.errors import CoordError
from coord_server import tracing
from coord_server.config import ConfigError
from coord_server.logs import JsonFormatter
from coord_server.tracing import spans as tracing_spans

from ..conftest import RedisClusterProcess, RedisProcess, free_port, make_settings, wait_for

CACHE = "coord.cache.v1.CacheService"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """An in-memory exporter on the process's SDK tracer provider (the global provider can only be
    set once per process: an SDK one already set is reused)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        assert trace.get_tracer_provider() is provider
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def exported(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def spans_named(exporter: InMemorySpanExporter, name: str, count: int = 1) -> list[ReadableSpan]:
    """The finished spans called ``name``, once ``count`` of them have ended (the server's end in its
    own thread, just before its answer is sent)."""
    wait_for(
        lambda: len([s for s in exporter.get_finished_spans() if s.name == name]) >= count, f"span {name}"
    )
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_a_client_span_is_the_parent_of_the_server_span_and_of_its_redis_span(
    start_coord, redis_single: RedisProcess, exported: InMemorySpanExporter
) -> None:
    server = start_coord(redis_single.url, tracing="on")
    tracer = trace.get_tracer("tests")
    with Client(server.target, timeout=10) as client:
        client.cache.set("traced", b"v")
        with tracer.start_as_current_span("caller", kind=SpanKind.CLIENT) as caller:
            assert client.cache.get("traced").value == b"v"
    [rpc] = spans_named(exported, f"{CACHE}/Get")
    [redis] = spans_named(exported, "redis get")
    caller_context = caller.get_span_context()

    assert rpc.kind is SpanKind.SERVER
    assert rpc.context.trace_id == caller_context.trace_id  # traceparent went with the call
    assert rpc.parent is not None and rpc.parent.span_id == caller_context.span_id
    assert rpc.parent.is_remote
    assert dict(rpc.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": CACHE,
        "rpc.method": "Get",
        "rpc.grpc.status_code": 0,
    }
    assert rpc.status.status_code is StatusCode.UNSET

    assert redis.kind is SpanKind.CLIENT
    assert redis.context.trace_id == caller_context.trace_id
    assert redis.parent is not None and redis.parent.span_id == rpc.context.span_id
    attributes = dict(redis.attributes or {})
    assert attributes["db.system"] == "redis"
    assert attributes["db.operation"] == "get"
    assert attributes["net.peer.name"] == "127.0.0.1"
    assert attributes["net.peer.port"] == redis_single.port

    # The Set before the caller's span was a trace of its own, with its own redis span under it.
    [set_rpc] = spans_named(exported, f"{CACHE}/Set")
    assert set_rpc.parent is None and set_rpc.context.trace_id != caller_context.trace_id
    [set_redis] = spans_named(exported, "redis set")
    assert set_redis.parent is not None and set_redis.parent.span_id == set_rpc.context.span_id


def test_on_a_cluster_the_coalescer_keeps_the_redis_span_under_the_rpcs(
    start_coord, redis_cluster: RedisClusterProcess, exported: InMemorySpanExporter
) -> None:
    server = start_coord(redis_cluster.url, cluster=True, tracing="on")
    with Client(server.target, timeout=10) as client:
        client.cache.set("on-a-cluster", b"v")
    [rpc] = spans_named(exported, f"{CACHE}/Set")
    [redis] = spans_named(exported, "redis set")
    assert redis.parent is not None and redis.parent.span_id == rpc.context.span_id
    assert "net.peer.name" not in dict(redis.attributes or {})  # many nodes: no one peer


def test_the_async_client_propagates_its_current_span(
    start_coord, redis_single: RedisProcess, exported: InMemorySpanExporter
) -> None:
    server = start_coord(redis_single.url, tracing="on")
    tracer = trace.get_tracer("tests")

    async def main() -> trace.SpanContext:
        async with AsyncClient(server.target, timeout=10) as client:
            with tracer.start_as_current_span("async caller") as caller:
                await client.cache.get("nothing-here")
            return caller.get_span_context()

    caller_context = asyncio.run(main())
    [rpc] = spans_named(exported, f"{CACHE}/Get")
    assert rpc.parent is not None and rpc.parent.span_id == caller_context.span_id
    assert rpc.context.trace_id == caller_context.trace_id


def test_a_hand_made_traceparent_is_the_parent_of_the_server_span(
    start_coord, redis_single: RedisProcess, exported: InMemorySpanExporter
) -> None:
    server = start_coord(redis_single.url, tracing="on")
    with grpc.insecure_channel(server.target) as channel:
        cache_pb2_grpc.CacheServiceStub(channel).Get(
            cache_pb2.GetRequest(key="raw"),
            timeout=10,
            metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),),
        )
    [rpc] = spans_named(exported, f"{CACHE}/Get")
    assert format(rpc.context.trace_id, "032x") == TRACE_ID
    assert rpc.parent is not None and format(rpc.parent.span_id, "016x") == PARENT_ID
    [redis] = spans_named(exported, "redis get")
    assert format(redis.context.trace_id, "032x") == TRACE_ID


def test_a_streams_answers_run_their_redis_spans_under_the_streams_span(
    start_coord, redis_single: RedisProcess, exported: InMemorySpanExporter
) -> None:
    server = start_coord(redis_single.url, tracing="on")
    requests = [
        cache_pb2.GetStreamRequest(request_id=i, get=cache_pb2.GetRequest(key=f"s{i}")) for i in range(3)
    ]
    with grpc.insecure_channel(server.target) as channel:
        answers = list(
            cache_pb2_grpc.CacheServiceStub(channel).GetStream(
                iter(requests), timeout=10, metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),)
            )
        )
    assert sorted(a.request_id for a in answers) == [0, 1, 2]
    [stream] = spans_named(exported, f"{CACHE}/GetStream")
    assert stream.kind is SpanKind.SERVER
    assert dict(stream.attributes or {})["rpc.grpc.status_code"] == 0
    assert format(stream.context.trace_id, "032x") == TRACE_ID
    redis = [s for s in exported.get_finished_spans() if s.name.startswith("redis ")]
    assert redis, "no redis span for the stream's reads"
    assert all(s.parent is not None and s.parent.span_id == stream.context.span_id for s in redis)
    assert sum(dict(s.attributes or {}).get("db.operation.batch.size", 1) for s in redis) == 3


def test_a_refused_call_records_its_status_code(
    start_coord, redis_single: RedisProcess, exported: InMemorySpanExporter
) -> None:
    server = start_coord(redis_single.url, tracing="on")
    with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as raised:
        cache_pb2_grpc.CacheServiceStub(channel).Get(cache_pb2.GetRequest(key=""), timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    [rpc] = spans_named(exported, f"{CACHE}/Get")
    assert dict(rpc.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert rpc.status.status_code is StatusCode.UNSET  # the caller's mistake, not the server's fault
    assert not [s for s in exported.get_finished_spans() if s.name.startswith("redis ")]  # never reached it


def test_a_server_fault_is_an_error_span_and_so_is_its_redis_span(
    start_coord, exported: InMemorySpanExporter
) -> None:
    server = start_coord(f"redis://127.0.0.1:{free_port()}", tracing="on")  # nobody listens there
    with Client(server.target, timeout=10, retry=NO_RETRY) as client, pytest.raises(CoordError) as raised:
        client.cache.get("k")
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE
    [rpc] = spans_named(exported, f"{CACHE}/Get")
    assert dict(rpc.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert rpc.status.status_code is StatusCode.ERROR
    [redis] = spans_named(exported, "redis get")
    assert redis.status.status_code is StatusCode.ERROR
    assert redis.parent is not None and redis.parent.span_id == rpc.context.span_id


def test_with_tracing_off_the_server_makes_no_span(
    start_coord, redis_single: RedisProcess, exported: InMemorySpanExporter
) -> None:
    server = start_coord(redis_single.url, tracing="off")
    assert server.app is not None and server.app.redis.script_spans is None
    assert tracing.of(server.app.server) is None
    with (
        Client(server.target, timeout=10) as client,
        trace.get_tracer("tests").start_as_current_span("caller"),
    ):
        client.cache.get("k")  # the traceparent is sent, and ignored
        client.cache.set("k", b"v")
    spans_named(exported, "caller")
    assert [s.name for s in exported.get_finished_spans()] == ["caller"]


def test_json_log_lines_written_during_a_call_carry_its_trace_id(
    start_coord, redis_single: RedisProcess, exported: InMemorySpanExporter
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("coord_server.access")
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    try:
        server = start_coord(redis_single.url, tracing="on", access_log=True)
        with grpc.insecure_channel(server.target) as channel:
            cache_pb2_grpc.CacheServiceStub(channel).Get(
                cache_pb2.GetRequest(key="logged"),
                timeout=10,
                metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),),
            )
        spans_named(exported, f"{CACHE}/Get")
        wait_for(lambda: "/Get" in stream.getvalue(), "the access log line")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [get] = [line for line in lines if line.get("method") == f"/{CACHE}/Get"]
    assert get["trace_id"] == TRACE_ID
    # Outside any span nothing is added.
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "no span here", None, None)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


def test_auto_turns_tracing_on_when_an_exporter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings("redis://127.0.0.1:1")
    assert settings.tracing == "auto"
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert not tracing.wanted(settings)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.wanted(settings)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    assert tracing.wanted(settings)
    assert not tracing.wanted(make_settings("redis://127.0.0.1:1", tracing="off"))
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    assert tracing.wanted(make_settings("redis://127.0.0.1:1", tracing="on"))
    with pytest.raises(ConfigError, match="COORD_TRACING"):
        make_settings("redis://127.0.0.1:1", tracing="yes")


def test_the_exporters_come_from_otel_traces_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,none")
    [console] = tracing_spans._exporters_from_env()
    assert isinstance(console, ConsoleSpanExporter)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    [otlp] = tracing_spans._exporters_from_env()
    assert type(otlp).__module__ == "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
    otlp.shutdown()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "no-such-exporter")
    with pytest.raises(ConfigError, match="no-such-exporter"):
        tracing_spans._exporters_from_env()


def test_the_resource_names_the_service_coord_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert tracing_spans._provider_from_env().resource.attributes["service.name"] == "coord"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "coord-eu")
    assert tracing_spans._provider_from_env().resource.attributes["service.name"] == "coord-eu"


def test_the_client_works_without_opentelemetry(start_coord, redis_single: RedisProcess) -> None:
    server = start_coord(redis_single.url)
    script = f"""
import sys
sys.modules["opentelemetry"] = None  # as if it were not installed
from coord_client import Client, _tracing
assert not _tracing.AVAILABLE and _tracing.headers() == ()
with Client({server.target!r}, timeout=10, metadata=[("x-app", "a")]) as client:
    assert client._transport.metadata == (("x-app", "a"),)
    client.cache.set("no-otel", b"v")
    assert client.cache.get("no-otel").value == b"v"
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_a_server_process_exports_with_the_standard_environment(redis_single: RedisProcess, tmp_path) -> None:
    """OTEL_TRACES_EXPORTER=console alone turns tracing on (COORD_TRACING=auto): the spans, with
    service.name coord, are printed, the last ones flushed at shutdown; the JSON log has the trace id."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COORD_", "OTEL_"))}
    env.update(OTEL_TRACES_EXPORTER="console", COORD_LOG_FORMAT="json", COORD_ACCESS_LOG="1")
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coord_server", "--listen", f"127.0.0.1:{port}",
             "--redis-url", redis_single.url, "--shutdown-grace", "1"],
            env=env, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            cache_pb2_grpc.CacheServiceStub(channel).Get(
                cache_pb2.GetRequest(key="exported"),
                timeout=10,
                metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),),
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err.read_text(errors="replace")[-2000:]
    printed = out.read_text()
    assert f'"name": "{CACHE}/Get"' in printed
    assert '"name": "redis get"' in printed
    assert f'"trace_id": "0x{TRACE_ID}"' in printed
    assert '"service.name": "coord"' in printed
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
    [access] = [line for line in lines if line.get("method") == f"/{CACHE}/Get"]
    assert access["trace_id"] == TRACE_ID
