"""Eviction safety: a Redis whose maxmemory-policy may evict Coord's keys stops the start, unless
COORD_ALLOW_EVICTION=1; a Redis found evicting only once it answers keeps the server NOT_SERVING;
the embedded Redis never evicts and takes COORD_EMBEDDED_MAXMEMORY."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coord_server.eviction import EvictionPolicyError
from tests.conftest import CoordThread, RedisProcess, free_port, wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING


def _health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
def test_an_evicting_policy_stops_the_start(
    policy: str, redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    evicting = redis_factory(extra=("--maxmemory-policy", policy))
    with pytest.raises(EvictionPolicyError) as refused:
        start_coord(evicting.url)
    message = str(refused.value)
    assert f"maxmemory-policy {policy!r}" in message
    assert f"127.0.0.1:{evicting.port}" in message  # the node
    assert "noeviction" in message and "COORD_ALLOW_EVICTION=1" in message  # the two ways out


def test_allow_eviction_starts_with_a_warning(
    redis_factory: Callable[..., RedisProcess],
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    evicting = redis_factory(extra=("--maxmemory-policy", "allkeys-lru"))
    with caplog.at_level(logging.WARNING, logger="coord_server.eviction"):
        server = start_coord(evicting.url, allow_eviction=True)
    wait_for(lambda: _health(server.target) == SERVING, "SERVING")
    warnings = [r for r in caplog.records if r.name == "coord_server.eviction"]
    assert len(warnings) == 1 and "allkeys-lru" in warnings[0].getMessage()


def test_a_cluster_master_that_evicts_stops_the_start(
    redis_cluster, start_coord: Callable[..., CoordThread]
) -> None:
    master = redis_cluster.nodes[1]
    with master.client() as r:
        r.config_set("maxmemory-policy", "allkeys-lfu")
    try:
        with pytest.raises(EvictionPolicyError, match=f"127.0.0.1:{master.port}.*allkeys-lfu"):
            start_coord(redis_cluster.url, cluster=True)
    finally:
        with master.client() as r:
            r.config_set("maxmemory-policy", "noeviction")


def test_the_server_process_exits_with_the_message(redis_factory: Callable[..., RedisProcess]) -> None:
    evicting = redis_factory(extra=("--maxmemory-policy", "allkeys-lru"))
    done = subprocess.run(
        [sys.executable, "-m", "coord_server", "--listen", f"127.0.0.1:{free_port()}", "--redis-url",
         evicting.url, "--shutdown-grace", "1"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    stderr = done.stderr.decode()
    assert "maxmemory-policy 'allkeys-lru'" in stderr and "COORD_ALLOW_EVICTION=1" in stderr


def test_a_redis_first_reached_after_start_is_checked_then(
    redis_factory: Callable[..., RedisProcess],
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    with caplog.at_level(logging.INFO):
        server = start_coord(f"redis://127.0.0.1:{port}/0")  # nobody listens there yet
        assert _health(server.target) != SERVING
        late = redis_factory(port=port, extra=("--maxmemory-policy", "allkeys-lru"))
        wait_for(lambda: any("NOT_SERVING: Redis at" in r.getMessage() for r in caplog.records), "refusal")
        assert _health(server.target) != SERVING
        with late.client() as r:
            r.config_set("maxmemory-policy", "noeviction")
        wait_for(lambda: _health(server.target) == SERVING, "SERVING once the policy is noeviction")
    refusals = [r for r in caplog.records if "NOT_SERVING: Redis at" in r.getMessage()]
    assert len(refusals) == 1  # logged once, not once per probe


def test_the_embedded_redis_never_evicts_and_takes_its_maxmemory(
    tmp_path: Path, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord("", data_dir=tmp_path / "data", embedded_maxmemory=64 << 20)
    assert server.app is not None and server.app.embedded is not None
    with redis.Redis(unix_socket_path=str(server.app.embedded.socket_path)) as r:
        assert r.config_get("maxmemory") == {"maxmemory": str(64 << 20)}
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
