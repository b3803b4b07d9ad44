"""The server as a real process: embedded Redis end to end, no orphans, graceful shutdown."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc

from ..conftest import RedisProcess, free_port, wait_for


class ServerProcess:
    """``python -m coord_server`` with a private environment, stopped by pid."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.log = tmp / f"server-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
        self.env.update({"COORD_LISTEN": f"127.0.0.1:{self.port}", "COORD_HEALTH_INTERVAL": "0.2", **env})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "coord_server"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for(self._serving, f"Coord on {self.target}", timeout=30)
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            with grpc.insecure_channel(self.target) as ch:
                reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_embedded_redis_end_to_end_survives_restart(tmp_path: Path, servers: list[ServerProcess]) -> None:
    data = tmp_path / "data"
    first = ServerProcess(tmp_path, COORD_DATA_DIR=str(data))
    servers.append(first.start())
    log = first.log.read_text()
    assert "embedded redis-server" in log and f"listening on 127.0.0.1:{first.port}" in log

    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    redis_pid = int((data / "redis.pid").read_text())
    with redis.Redis(unix_socket_path=str(data / "redis.sock")) as r:
        assert r.config_get("port")["port"] == "0", "the embedded Redis must not listen on TCP"
        assert r.config_get("appendonly")["appendonly"] == "yes"
        assert r.config_get("appendfsync")["appendfsync"] == "everysec"

    with grpc.insecure_channel(first.target) as ch:
        stub = cache_pb2_grpc.CacheServiceStub(ch)
        version = stub.Set(pb.SetRequest(key="durable", value=b"kept")).version

    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    assert not alive(redis_pid), "embedded redis-server outlived the server"
    assert "Coord stopped" in first.log.read_text()

    second = ServerProcess(tmp_path, COORD_DATA_DIR=str(data))
    servers.append(second.start())
    with grpc.insecure_channel(second.target) as ch:
        entry = cache_pb2_grpc.CacheServiceStub(ch).Get(pb.GetRequest(key="durable")).entry
    assert entry.found and entry.value == b"kept" and entry.version == version
    second.signal(signal.SIGINT)
    assert second.wait(30) == 0


def test_killed_server_leaves_no_orphan_redis(tmp_path: Path, servers: list[ServerProcess]) -> None:
    data = tmp_path / "data"
    server = ServerProcess(tmp_path, COORD_DATA_DIR=str(data))
    servers.append(server.start())
    redis_pid = int((data / "redis.pid").read_text())
    assert alive(redis_pid)
    server.kill()  # SIGKILL: no chance to clean up
    wait_for(lambda: not alive(redis_pid), "the embedded redis-server to exit after SIGKILL of its parent")
    # Nothing stale is left to refuse the next server: not the lock, not the socket.
    servers.append(ServerProcess(tmp_path, COORD_DATA_DIR=str(data)).start())


def test_second_server_on_same_data_dir_is_refused_and_the_first_keeps_serving(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    data = tmp_path / "data"
    first = ServerProcess(tmp_path, COORD_DATA_DIR=str(data))
    servers.append(first.start())
    assert first.proc is not None
    sock = data / "redis.sock"
    inode = sock.stat().st_ino

    second = ServerProcess(tmp_path, COORD_DATA_DIR=str(data))
    done = subprocess.run(
        [sys.executable, "-m", "coord_server"],
        env=second.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # The first one's Redis socket was not touched: new connections reach it, and Coord serves on.
    assert sock.exists() and sock.stat().st_ino == inode
    with redis.Redis(unix_socket_path=str(sock)) as r:
        assert r.ping()
    assert done.returncode != 0
    assert f"data directory {data} is in use by another Coord server (pid {first.proc.pid})" in done.stderr
    assert "Traceback" not in done.stderr
    with grpc.insecure_channel(first.target) as ch:
        stub = cache_pb2_grpc.CacheServiceStub(ch)
        stub.Set(pb.SetRequest(key="still", value=b"here"))
        assert stub.Get(pb.GetRequest(key="still")).entry.value == b"here"
    assert first.proc.poll() is None


def test_a_socket_left_by_a_crash_is_cleared(tmp_path: Path, servers: list[ServerProcess]) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as leftover:  # bound, never listened on, closed: a dead socket
        leftover.bind(str(data / "redis.sock"))
    servers.append(ServerProcess(tmp_path, COORD_DATA_DIR=str(data)).start())
    with redis.Redis(unix_socket_path=str(data / "redis.sock")) as r:
        assert r.ping()


def test_graceful_shutdown_finishes_in_flight_and_refuses_new(
    tmp_path: Path, servers: list[ServerProcess], redis_factory: Any
) -> None:
    backing: RedisProcess = redis_factory()
    server = ServerProcess(
        tmp_path, COORD_REDIS_URL=backing.url, COORD_SHUTDOWN_GRACE="5s", COORD_REDIS_TIMEOUT="4s"
    )
    servers.append(server.start())
    assert backing.proc is not None
    channel = grpc.insecure_channel(server.target)
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    stub.Set(pb.SetRequest(key="k", value=b"v"))

    watch_states: list[int] = []
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())

    def follow() -> None:
        try:
            for reply in watch:
                watch_states.append(reply.status)
        except grpc.RpcError:
            pass

    watcher = threading.Thread(target=follow)
    watcher.start()
    wait_for(lambda: watch_states == [health_pb2.HealthCheckResponse.SERVING], "health watch")

    os.kill(backing.proc.pid, signal.SIGSTOP)  # the next Get stays in flight
    try:
        in_flight = stub.Get.future(pb.GetRequest(key="k"), timeout=10)
        time.sleep(0.3)  # let the call reach the server and block on Redis
        server.signal(signal.SIGTERM)
        wait_for(lambda: health_pb2.HealthCheckResponse.NOT_SERVING in watch_states, "NOT_SERVING on SIGTERM")
        with grpc.insecure_channel(server.target) as fresh:
            with pytest.raises(grpc.RpcError) as refused:
                cache_pb2_grpc.CacheServiceStub(fresh).Get(pb.GetRequest(key="k"), timeout=2)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        os.kill(backing.proc.pid, signal.SIGCONT)
    assert in_flight.result().entry.value == b"v", "the in-flight RPC must finish during the grace period"
    assert server.wait(15) == 0
    watch.cancel()
    watcher.join(5)
    channel.close()


def test_bad_configuration_exits_with_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env["COORD_REDIS_URL"] = "http://nope"
    done = subprocess.run(
        [sys.executable, "-m", "coord_server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "configuration error" in done.stderr and "redis://" in done.stderr


def test_configuration_error_found_at_start_exits_the_same_way(
    tmp_path: Path, redis_single: RedisProcess
) -> None:
    # Settings that parse, but a service refuses them while starting: the same exit as above.
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  a:\n    limit: -1\n    period: 1s\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env.update(
        {
            "COORD_REDIS_URL": redis_single.url,
            "COORD_LISTEN": f"127.0.0.1:{free_port()}",
            "COORD_RATELIMIT_POLICIES": str(policies),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "coord_server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "configuration error: rate limit policies" in done.stderr and "policies.yaml:3" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use_exits_cleanly(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
        env.update({"COORD_LISTEN": f"127.0.0.1:{port}", "COORD_DATA_DIR": str(tmp_path / "d")})
        done = subprocess.run(
            [sys.executable, "-m", "coord_server"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert "cannot listen on" in done.stderr and "Traceback" not in done.stderr
    pidfile = tmp_path / "d" / "redis.pid"
    if pidfile.exists():
        assert not alive(int(pidfile.read_text()))
