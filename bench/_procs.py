"""The processes a benchmark run owns: a private redis-server, a Coord server and the gRPC echo floor.

Each runs as a child on a free 127.0.0.1 port and is stopped by its pid (SIGTERM, then SIGKILL after a
grace period) when the run ends, however it ends. Their logs go to files in a temporary directory and
are printed when a process fails to start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The repository root: children run from here so that ``python -m bench.floor`` finds this package.
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """One child process with a log file; ``stop()`` ends it by pid and is safe to call twice."""

    def __init__(
        self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """Poll ``ready`` until it is true; fail with the log's tail if the child dies or time runs out."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} was not ready within {timeout:g}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def start_redis(workdir: Path) -> tuple[Child, str]:
    """A private, non-persistent redis-server from PATH; returns it and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH (install Debian's redis-server package)")
    port = free_port()
    data = workdir / "redis"
    data.mkdir()
    argv = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(data), "--daemonize", "no",
    ]  # fmt: skip
    child = Child("redis-server", argv, workdir / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"

    def ping() -> bool:
        try:
            with redis.Redis.from_url(url, socket_timeout=0.5) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    child.wait_until(ping)
    return child, url


def _health_serving(target: str, tls_ca: Path | None = None) -> Callable[[], bool]:
    """A probe of the server's health; over TLS, checked against ``tls_ca``, when it is given."""
    roots = tls_ca.read_bytes() if tls_ca is not None else None

    def check() -> bool:
        with (
            grpc.secure_channel(target, grpc.ssl_channel_credentials(roots))
            if roots is not None
            else grpc.insecure_channel(target)
        ) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
            except grpc.RpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return check


# Starts Coord with hiredis hidden, so that redis-py falls back to its pure-Python reply parser.
WITHOUT_HIREDIS = (
    "-c",
    "import runpy, sys; sys.modules['hiredis'] = None; "
    "sys.argv[0] = 'coord_server'; runpy.run_module('coord_server', run_name='__main__', alter_sys=True)",
)


def start_coord(
    workdir: Path,
    redis_url: str,
    *,
    label: str = "coord",
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    without_hiredis: bool = False,
    tls_ca: Path | None = None,
) -> tuple[Child, str]:
    """A real Coord server (``python -m coord_server``) on Redis at ``redis_url``; waits for SERVING.

    ``label`` names its log file; ``args`` and ``env`` add flags and ``COORD_*`` settings (the
    variants the lever benchmarks compare). ``tls_ca``: the server serves TLS (its ``env`` names the
    certificate), and the CA that signed it is the one the readiness probe trusts.
    """
    target = f"127.0.0.1:{free_port()}"
    entry = WITHOUT_HIREDIS if without_hiredis else ("-m", "coord_server")
    argv = [sys.executable, *entry, "--listen", target, "--redis-url", redis_url, *args]
    child = Child(f"coord-server ({label})", argv, workdir / f"{label}.log", env)
    child.wait_until(_health_serving(target, tls_ca))
    return child, target


def start_floor(workdir: Path) -> tuple[Child, str]:
    """The bare gRPC echo server of ``bench.floor`` in its own process; waits until it answers."""
    from .floor import ECHO_METHOD

    target = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "bench.floor", "--listen", target]
    child = Child("grpc echo floor", argv, workdir / "floor.log")

    def answers() -> bool:
        with grpc.insecure_channel(target) as channel:
            try:
                channel.unary_unary(ECHO_METHOD, None, None)(b"ping", timeout=0.5)
            except grpc.RpcError:
                return False
            return True

    child.wait_until(answers)
    return child, target


@dataclass(frozen=True)
class Processes:
    """Everything a run starts, and where to reach it."""

    redis: Child
    redis_url: str
    redis_version: str
    coord: Child
    coord_target: str
    floor: Child
    floor_target: str


def start_all(workdir: Path, stack: contextlib.ExitStack) -> Processes:
    """Start Redis, Coord and the floor; ``stack`` stops them in reverse order (Coord before Redis)."""
    redis_child, redis_url = start_redis(workdir)
    stack.callback(redis_child.stop)
    coord, coord_target = start_coord(workdir, redis_url)
    stack.callback(coord.stop)
    floor, floor_target = start_floor(workdir)
    stack.callback(floor.stop)
    with redis.Redis.from_url(redis_url) as r:
        version = str(r.info("server")["redis_version"])
    return Processes(redis_child, redis_url, version, coord, coord_target, floor, floor_target)
