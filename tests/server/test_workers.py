"""``--workers N``: a supervisor runs N servers on one port and stops them all on SIGTERM; settings
for the levers are validated."""

from __future__ import annotations

import signal
import subprocess
import sys

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coord_server.config import ConfigError, load_settings

from ..conftest import RedisProcess, free_port, wait_for


def test_lever_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="fixed port"):
        load_settings(["--workers", "2", "--listen", "127.0.0.1:0"], environ={})
    with pytest.raises(ConfigError, match="at least 1"):
        load_settings(["--workers", "0"], environ={})
    with pytest.raises(ConfigError, match="event loop"):
        load_settings([], environ={"COORD_EVENT_LOOP": "trio"})
    settings = load_settings([], environ={"COORD_REDIS_COALESCE": "0", "COORD_EVENT_LOOP": "asyncio"})
    assert settings.redis_coalesce is False and settings.event_loop == "asyncio" and settings.workers == 1


def serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def test_two_workers_share_the_port_and_stop_on_sigterm(redis_single: RedisProcess) -> None:
    target = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "coord_server", "--workers", "2", "--listen", target]
    argv += ["--redis-url", redis_single.url, "--shutdown-grace", "1s"]
    parent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        supervisor = psutil.Process(parent.pid)
        wait_for(lambda: len(supervisor.children()) == 2, "two workers")
        workers = supervisor.children()
        wait_for(lambda: serving(target), "the shared port to serve")
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0
        for worker in workers:
            assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_dying_worker_stops_the_group_with_an_error(redis_single: RedisProcess) -> None:
    target = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "coord_server", "--workers", "2", "--listen", target]
    argv += ["--redis-url", redis_single.url, "--shutdown-grace", "1s"]
    parent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        supervisor = psutil.Process(parent.pid)
        wait_for(lambda: len(supervisor.children()) == 2, "two workers")
        wait_for(lambda: serving(target), "the shared port to serve")
        supervisor.children()[0].kill()
        assert parent.wait(30) == 1
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
