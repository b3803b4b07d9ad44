"""COORD_METRICS_LISTEN: /metrics with go-grpc-prometheus's per-RPC series and Coord's own, exact
counts after a known set of calls, on a single node and a Cluster, and merged over --workers."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc
from coord_server.config import ConfigError
from coord_server.errors import StartupError
from coord_server.metrics import WORKER_SOCKETS_ENV
from coord_server.metrics.merge import read_worker

from ..conftest import CoordUnderTest, RedisProcess, free_port, wait_for
from .test_workers import serving

CACHE = "coord.cache.v1.CacheService"
RATELIMIT = "coord.ratelimit.v1.RateLimitService"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        return str(reply.read().decode())


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def samples(port: int) -> Samples:
    return parse(scrape(port))


def sockets_of(supervisor: psutil.Process) -> list[Path]:
    """The workers' metrics sockets (in the directory named in their environment)."""
    directory = supervisor.children()[0].environ().get(WORKER_SOCKETS_ENV)
    return sorted(Path(directory).glob("*.sock")) if directory else []


def worker_texts(supervisor: psutil.Process) -> list[str]:
    return [asyncio.run(read_worker(path)) for path in sockets_of(supervisor)]


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def rpc(service: str, method: str, kind: str = "unary") -> dict[str, str]:
    return {"grpc_service": service, "grpc_method": method, "grpc_type": kind}


def with_label(found: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    wanted = set(labels.items())
    return {key: v for (n, key), v in found.items() if n == name and wanted <= key}


@pytest.fixture
def metered(
    coord: CoordUnderTest, start_coord: Callable[..., Any], tmp_path: Path
) -> tuple[Any, int, CoordUnderTest]:
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  login:\n    algorithm: fixed_window\n    limit: 5\n    period: 15m\n")
    port = free_port()
    server = start_coord(
        coord.backing.url,
        cluster=coord.kind == "cluster",
        metrics_listen=f"127.0.0.1:{port}",
        ratelimit_policies=str(policies),
    )
    assert server.app.metrics_port == port
    return server, port, coord


def test_rpc_cache_and_ratelimit_counts_are_exact(metered: tuple[Any, int, CoordUnderTest]) -> None:
    server, port, under_test = metered
    with grpc.insecure_channel(server.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        for i in range(3):
            cache.Set(cache_pb2.SetRequest(key=f"m{i}", value=b"v"), timeout=10)
        for i in range(5):  # m0..m2 found, m3 and m4 not
            cache.Get(cache_pb2.GetRequest(key=f"m{i}"), timeout=10)
        cache.BatchGet(cache_pb2.BatchGetRequest(keys=["m0", "m1", "nope"]), timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            cache.Get(cache_pb2.GetRequest(key=""), timeout=10)  # an empty key: INVALID_ARGUMENT
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stream = cache.GetStream(
            iter(
                [
                    cache_pb2.GetStreamRequest(request_id=i, get=cache_pb2.GetRequest(key="m0"))
                    for i in range(4)
                ]
            ),
            timeout=10,
        )
        assert len(list(stream)) == 4
        limiter = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        login = ratelimit_pb2.Descriptor(key="user-1", policy="login")
        outcomes = [
            limiter.Check(ratelimit_pb2.CheckRequest(descriptors=[login]), timeout=10).allowed
            for _ in range(7)
        ]
        assert outcomes == [True] * 5 + [False] * 2

    found = samples(port)
    get, stream_labels = rpc(CACHE, "Get"), rpc(CACHE, "GetStream", "bidi_stream")
    assert value(found, "grpc_server_handled_total", **get, grpc_code="OK") == 5
    assert value(found, "grpc_server_handled_total", **get, grpc_code="INVALID_ARGUMENT") == 1
    assert value(found, "grpc_server_started_total", **get) == 6
    assert value(found, "grpc_server_handling_seconds_count", **get) == 6
    assert value(found, "grpc_server_handling_seconds_bucket", **get, le="+Inf") == 6
    assert value(found, "grpc_server_msg_received_total", **get) == 6
    assert value(found, "grpc_server_msg_sent_total", **get) == 5  # not the refused one
    assert value(found, "grpc_server_handled_total", **rpc(CACHE, "Set"), grpc_code="OK") == 3
    assert value(found, "grpc_server_handled_total", **rpc(CACHE, "BatchGet"), grpc_code="OK") == 1
    # The stream: one call, four messages each way.
    assert value(found, "grpc_server_started_total", **stream_labels) == 1
    assert value(found, "grpc_server_handled_total", **stream_labels, grpc_code="OK") == 1
    assert value(found, "grpc_server_msg_received_total", **stream_labels) == 4
    assert value(found, "grpc_server_msg_sent_total", **stream_labels) == 4
    # Every started call was handled (none is open).
    started = with_label(found, "grpc_server_started_total")
    for labels, count in started.items():
        handled = with_label(found, "grpc_server_handled_total", **dict(labels))
        assert sum(handled.values()) == count, dict(labels)
    # Every call is the default tenant's (authentication is off).
    assert value(found, "coord_tenant_calls_total", tenant="default") == sum(started.values())
    # Cache lookups: Get 3 hits + 2 misses, BatchGet 2 + 1, GetStream 4 hits.
    assert value(found, "coord_cache_hits_total") == 3 + 2 + 4
    assert value(found, "coord_cache_misses_total") == 2 + 1
    # Rate limit: 5 allowed of 5 (the 4th and 5th leave 20% or less: near the limit), 2 denied.
    assert value(found, "coord_ratelimit_decisions_total", policy="login", outcome="allowed") == 3
    assert value(found, "coord_ratelimit_decisions_total", policy="login", outcome="near_limit") == 2
    assert value(found, "coord_ratelimit_decisions_total", policy="login", outcome="denied") == 2
    assert value(found, "grpc_server_handled_total", **rpc(RATELIMIT, "Check"), grpc_code="OK") == 7
    # Redis: reachable, its memory read from INFO (per node), script latency by script.
    assert value(found, "coord_redis_up") == 1
    memory = with_label(found, "coord_redis_memory_used_bytes")
    assert memory and all(v > 0 for v in memory.values())
    if under_test.kind == "cluster":  # one series per master, labelled with its address
        nodes = {f"127.0.0.1:{node.port}" for node in under_test.backing.nodes}  # type: ignore[union-attr]
        assert {dict(labels)["node"] for labels in memory} == nodes
    else:
        assert len(memory) == 1
    assert with_label(found, "coord_redis_maxmemory_policy_info")
    scripts = with_label(found, "coord_redis_script_duration_seconds_count")
    assert sum(scripts.values()) >= 3 + 5 + 1 + 4 + 7
    assert value(found, "coord_redis_pipeline_commands") == 0


def test_redis_up_turns_0_when_redis_stops(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., Any]
) -> None:
    redis = redis_factory()
    port = free_port()
    start_coord(redis.url, metrics_listen=f"127.0.0.1:{port}")
    wait_for(lambda: value(samples(port), "coord_redis_up") == 1, "coord_redis_up 1")
    redis.stop()
    wait_for(lambda: value(samples(port), "coord_redis_up") == 0, "coord_redis_up 0")


def test_metrics_off_serves_nothing_and_wraps_nothing(coord_single: CoordUnderTest) -> None:
    from coord_server.metrics import grpc_server

    assert coord_single.server.app.metrics_port is None
    assert grpc_server.of(coord_single.server.app.server) is None


def test_metrics_listen_must_be_host_port(
    start_coord: Callable[..., Any], coord_single: CoordUnderTest
) -> None:
    with pytest.raises(ConfigError, match="COORD_METRICS_LISTEN"):
        start_coord(coord_single.backing.url, metrics_listen="9464")


def test_other_paths_are_not_found(metered: tuple[Any, int, CoordUnderTest]) -> None:
    _, port, _ = metered
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    assert missing.value.code == 404
    missing.value.close()


def test_workers_are_merged_into_one_scrape(redis_single: RedisProcess, tmp_path: Path) -> None:
    target, metrics_port = f"127.0.0.1:{free_port()}", free_port()
    argv = [sys.executable, "-m", "coord_server", "--workers", "2", "--listen", target]
    argv += [
        "--redis-url",
        redis_single.url,
        "--shutdown-grace",
        "1s",
        "--metrics-listen",
        f"127.0.0.1:{metrics_port}",
    ]
    log = tmp_path / "supervisor.log"
    with log.open("wb") as stderr:
        parent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        supervisor = psutil.Process(parent.pid)
        wait_for(lambda: len(supervisor.children()) == 2, "two workers")
        workers = {w.pid for w in supervisor.children()}
        wait_for(lambda: serving(target), "the shared port to serve")
        # Every worker serves its figures to the supervisor; both report Redis up.
        wait_for(
            lambda: len(sockets_of(supervisor)) == 2 and value(samples(metrics_port), "coord_redis_up") == 1,
            "both workers' metrics",
        )
        # Connections spread over the workers (SO_REUSEPORT): one call on each of many channels.
        calls = 40
        for i in range(calls):
            with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                cache_pb2_grpc.CacheServiceStub(channel).Get(cache_pb2.GetRequest(key=f"w{i}"), timeout=10)
        found = samples(metrics_port)
        assert value(found, "grpc_server_handled_total", **rpc(CACHE, "Get"), grpc_code="OK") == calls
        assert value(found, "coord_cache_misses_total") == calls
        per_worker = [
            value(parse(text), "grpc_server_handled_total", **rpc(CACHE, "Get"), grpc_code="OK")
            for text in worker_texts(supervisor)
        ]
        assert sum(per_worker) == calls and all(n > 0 for n in per_worker), per_worker
        # Redis's gauges are one figure, not one per worker added up.
        assert with_label(found, "coord_redis_memory_used_bytes")
        assert len(with_label(found, "coord_redis_memory_used_bytes")) == 1
        assert workers == {w.pid for w in supervisor.children()}
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0, log.read_text(errors="replace")[-2000:]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_metrics_port_in_use_stops_the_start(
    start_coord: Callable[..., Any], coord_single: CoordUnderTest
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match="cannot serve metrics"):
            start_coord(coord_single.backing.url, metrics_listen=f"127.0.0.1:{port}")
