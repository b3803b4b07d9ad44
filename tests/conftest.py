"""Shared fixtures: real redis-server processes (single node and a 3-master Cluster) on free loopback
ports, and real Coord servers bound to 127.0.0.1:0, each running in its own thread and event loop.

Fixtures most tests want:
- ``coord``: a running Coord, parametrized over ``single`` and ``cluster`` Redis, flushed before
  each test. ``coord.target`` is the gRPC address, ``coord.redis()`` a sync redis-py client of its
  backing store (a RedisCluster for the cluster case).
- ``coord_single``: the single-node one only (flushed).
- ``start_coord``: a factory for a private Coord with settings overrides, stopped at test end.
- ``redis_factory``: start a private redis-server (``RedisProcess``) that a test may stop and restart.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from redis.cluster import RedisCluster

from coord_server.app import RunningServer, running
from coord_server.config import Settings

from .certs import CA, Pair, make_ca

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(cluster_bus: bool = False) -> int:
    """A free loopback port. A cluster node also needs port + 10000 (its bus), so stay below 55535."""
    if not cluster_bus:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for _ in range(200):
        port = random.randint(20000, 55000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisProcess:
    """One redis-server on 127.0.0.1:<port>, started and stopped by pid (never by name)."""

    def __init__(self, workdir: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.cluster = "--cluster-enabled" in extra
        self.port = port or free_port(self.cluster)
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        args = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"), *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited: {log}")
            return self.ping()

        wait_for(up, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=0.5) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class RedisClusterProcess:
    """A 3-master Redis Cluster (no replicas) built with ``redis-cli --cluster create``."""

    def __init__(self, workdir: Path) -> None:
        self.nodes = [
            RedisProcess(
                workdir,
                extra=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                       "--cluster-config-file", "nodes.conf"),
            )
            for _ in range(3)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisClusterProcess:
        try:
            return self._start()
        except BaseException:
            self.stop()  # a fixture that fails to set up gets no teardown: leave no node behind
            raise

    def _start(self) -> RedisClusterProcess:
        for node in self.nodes:
            node.start()
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def ok() -> bool:
            for node in self.nodes:
                with node.client() as r:
                    if r.execute_command("CLUSTER", "INFO").decode().find("cluster_state:ok") < 0:
                        return False
            return True

        wait_for(ok, "cluster_state:ok")
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port)

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as r:
                r.flushall()


@dataclass(frozen=True)
class RedisTLSFiles:
    """The certificates of the TLS Redis fixtures: one CA, the servers' pair, Coord's client pair."""

    ca: CA
    server: Pair  # every TLS redis-server's; a client certificate too, as cluster nodes show it each other
    client: Pair  # what Coord (and the fixtures' own clients) present to Redis

    def settings(self, *, client_cert: bool = True) -> dict[str, str]:
        """Settings overrides for a Coord connecting over TLS (``make_settings(url, **these)``)."""
        files = {"redis_tls_ca": str(self.ca.cert_path)}
        if client_cert:
            files.update(redis_tls_cert=str(self.client.cert_path), redis_tls_key=str(self.client.key_path))
        return files

    def redis_py(self) -> dict[str, Any]:
        """redis-py connection options with the CA and the client certificate."""
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca.cert_path),
            "ssl_certfile": str(self.client.cert_path),
            "ssl_keyfile": str(self.client.key_path),
        }


def make_redis_tls_files(folder: Path) -> RedisTLSFiles:
    ca = make_ca(folder, "redis")
    server = ca.issue("redis-server", dns=("localhost",), ips=("127.0.0.1", "::1"), server=True, client=True)
    return RedisTLSFiles(ca, server, ca.issue("coord-redis-client", server=False))


class TlsRedisProcess(RedisProcess):
    """A redis-server that speaks only TLS (``--port 0 --tls-port``) on 127.0.0.1:<port>.

    ``client_auth`` is redis's ``tls-auth-clients``: ``yes`` refuses a client without a certificate
    signed by the CA, ``optional`` checks one only when given. The fixture's own clients present one.
    """

    def __init__(
        self, workdir: Path, tls: RedisTLSFiles, *, client_auth: str = "optional", extra: tuple[str, ...] = ()
    ) -> None:
        super().__init__(workdir, extra=extra)
        self.tls = tls
        self.extra = (
            *extra,
            "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(tls.server.cert_path), "--tls-key-file", str(tls.server.key_path),
            "--tls-ca-cert-file", str(tls.ca.cert_path), "--tls-auth-clients", client_auth,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=0.5, **self.tls.redis_py()) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, **self.tls.redis_py())


class TlsRedisClusterProcess(RedisClusterProcess):
    """A 3-master Redis Cluster speaking only TLS, the cluster bus and replication included."""

    def __init__(self, workdir: Path, tls: RedisTLSFiles) -> None:
        self.tls = tls
        self.nodes = [
            TlsRedisProcess(
                workdir, tls, client_auth="yes",
                extra=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                       "--cluster-config-file", "nodes.conf",
                       "--tls-cluster", "yes", "--tls-replication", "yes"),
            )
            for _ in range(3)
        ]  # fmt: skip

    def _start(self) -> TlsRedisClusterProcess:
        for node in self.nodes:
            node.start()
        tls = self.tls
        cli_tls = ["--tls", "--cacert", str(tls.ca.cert_path), "--cert", str(tls.client.cert_path),
                   "--key", str(tls.client.key_path)]  # fmt: skip
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [REDIS_CLI, *cli_tls, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def ok() -> bool:
            for node in self.nodes:
                with node.client() as r:
                    if "cluster_state:ok" not in r.execute_command("CLUSTER", "INFO").decode():
                        return False
            return True

        wait_for(ok, "cluster_state:ok over TLS")
        return self

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port, **self.tls.redis_py())


class CoordThread:
    """A real Coord server (``app.running``) in a background thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.app: RunningServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="coord-server", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with running(self.settings) as app:
            self.app = app
            self._ready.set()
            await self._stop.wait()

    def start(self) -> CoordThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("Coord server did not start")
        if self._error is not None:
            raise self._error
        return self

    @property
    def target(self) -> str:
        assert self.app is not None
        return self.app.target

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop (to inspect server state from a test)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(60)


@dataclass
class CoordUnderTest:
    """What the ``coord`` fixture hands a test."""

    kind: str  # "single" or "cluster"
    server: CoordThread
    backing: RedisProcess | RedisClusterProcess

    @property
    def target(self) -> str:
        return self.server.target

    @property
    def settings(self) -> Settings:
        return self.server.settings

    def redis(self) -> redis.Redis | RedisCluster:
        return self.backing.client()

    def flush(self) -> None:
        if isinstance(self.backing, RedisClusterProcess):
            self.backing.flush()
        else:
            with self.backing.client() as r:
                r.flushall()


def make_settings(redis_url: str, *, cluster: bool = False, **overrides: Any) -> Settings:
    base = Settings(
        listen="127.0.0.1:0",
        redis_url=redis_url,
        redis_cluster=cluster,
        shutdown_grace=2.0,
        health_interval=0.2,
        redis_timeout=1.0,
        # The default 250 ms fail-open/closed bound is for production; on a loaded 2-core CI machine
        # it turns ordinary checks into failure-mode answers. Outage tests set their own.
        ratelimit_timeout=1.0,
        # Prefix invalidation is off by default; the tests run the cache with it on (the path with
        # more to get wrong); the tests of the default turn it off again.
        cache_prefix_delimiter=":",
    )
    return replace(base, **overrides).validate()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="coord-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_single(workdir: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(workdir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def redis_cluster(workdir: Path) -> Iterator[RedisClusterProcess]:
    cluster = RedisClusterProcess(workdir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_tls_files(workdir: Path) -> RedisTLSFiles:
    """The CA and certificates of ``redis_tls_single`` and ``redis_tls_cluster``."""
    return make_redis_tls_files(workdir / "redis-tls")


@pytest.fixture(scope="session")
def redis_tls_single(workdir: Path, redis_tls_files: RedisTLSFiles) -> Iterator[TlsRedisProcess]:
    """A TLS-only redis-server; a client certificate is optional (checked when given)."""
    proc = TlsRedisProcess(workdir, redis_tls_files, client_auth="optional").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def redis_tls_cluster(workdir: Path, redis_tls_files: RedisTLSFiles) -> Iterator[TlsRedisClusterProcess]:
    """A TLS-only 3-master Redis Cluster that requires client certificates."""
    cluster = TlsRedisClusterProcess(workdir, redis_tls_files).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def _coord_single_session(redis_single: RedisProcess) -> Iterator[CoordUnderTest]:
    server = CoordThread(make_settings(redis_single.url)).start()
    yield CoordUnderTest("single", server, redis_single)
    server.stop()


@pytest.fixture(scope="session")
def _coord_cluster_session(redis_cluster: RedisClusterProcess) -> Iterator[CoordUnderTest]:
    server = CoordThread(make_settings(redis_cluster.url, cluster=True)).start()
    yield CoordUnderTest("cluster", server, redis_cluster)
    server.stop()


@pytest.fixture(params=["single", "cluster"])
def coord(request: pytest.FixtureRequest) -> CoordUnderTest:
    under_test: CoordUnderTest = request.getfixturevalue(f"_coord_{request.param}_session")
    under_test.flush()
    return under_test


@pytest.fixture
def coord_single(_coord_single_session: CoordUnderTest) -> CoordUnderTest:
    _coord_single_session.flush()
    return _coord_single_session


@pytest.fixture
def redis_factory(workdir: Path) -> Iterator[Callable[..., RedisProcess]]:
    started: list[RedisProcess] = []

    def make(port: int | None = None, extra: tuple[str, ...] = ()) -> RedisProcess:
        proc = RedisProcess(Path(tempfile.mkdtemp(dir=workdir)), port=port, extra=extra).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def start_coord() -> Iterator[Callable[..., CoordThread]]:
    """``start_coord(redis_url, **setting_overrides)`` -> a started CoordThread, stopped at teardown."""
    started: list[CoordThread] = []

    def make(redis_url: str, **overrides: Any) -> CoordThread:
        server = CoordThread(make_settings(redis_url, **overrides)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _no_leaked_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests build their settings explicitly; never pick up a developer's COORD_* environment, nor an
    # OTEL_* one (COORD_TRACING=auto would turn tracing on in every test server).
    for name in list(os.environ):
        if name.startswith(("COORD_", "OTEL_")):
            monkeypatch.delenv(name)


def start_server_process(redis_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A Coord server in a process of its own (its memory measured alone, or frozen with SIGSTOP):
    the process and its target; the caller stops it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COORD_", "OTEL_"))}
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "coord_server", "--listen", f"127.0.0.1:{port}", "--redis-url", redis_url,
             "--log-level", "warning", "--shutdown-grace", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    target = f"127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        with grpc.insecure_channel(target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
            except grpc.FutureTimeoutError:
                return False
        return True

    wait_for(up, "coord-server process")
    return proc, target
