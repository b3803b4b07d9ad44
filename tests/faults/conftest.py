"""Redis behind fault-injection proxies (``proxy.Proxy``), single node and a 3-master Cluster.

- ``proxied_redis``: a private redis-server (a test may stop and restart it) behind one proxy.
- ``proxied_cluster``: a private 3-master Cluster, one proxy per node. Each node announces its
  proxy's port (``--cluster-announce-port``), so CLUSTER SLOTS and MOVED send clients through the
  proxies too; the cluster bus (real port + 10000) is direct, so a fault between Coord and Redis never
  looks like a node failure to the cluster itself.
- ``proxied``: either of them, parametrized ``single`` / ``cluster``.

What every one of them gives: ``proxies`` (a :class:`~.proxy.Proxies`, even for one node), ``url``
(through the proxies), ``cluster``, ``settings(**overrides)`` (Coord's settings for it), ``flush()``
and ``direct()`` (clients of the real ports, untouched by faults). ``ProxiedRedis`` and
``ProxiedCluster`` may be built directly by tests that need them at another scope.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from coord_server.config import Settings

from ..conftest import CoordThread, RedisProcess, free_port, make_settings, wait_for
from .proxy import Proxies, Proxy


class ProxiedRedis:
    """One redis-server at ``redis.port``, reached through ``proxy`` at ``proxy.port``."""

    kind = "single"
    cluster = False

    def __init__(self, workdir: Path, extra: tuple[str, ...] = ()) -> None:
        self.redis = RedisProcess(Path(tempfile.mkdtemp(dir=workdir)), extra=extra)
        self.proxy = Proxy(self.redis.port, name=f"proxy-{self.redis.port}")
        self.proxies = Proxies([self.proxy])

    def start(self) -> ProxiedRedis:
        self.proxy.start()
        try:
            self.redis.start()
        except BaseException:
            self.proxy.stop()
            raise
        return self

    def stop(self) -> None:
        self.redis.stop()
        self.proxy.stop()

    @property
    def url(self) -> str:
        return self.proxy.url

    def settings(self, **overrides: Any) -> Settings:
        return make_settings(self.url, **overrides)

    def direct(self) -> list[redis.Redis]:
        return [self.redis.client()]

    def flush(self) -> None:
        with self.redis.client() as r:
            r.flushall()


class ProxiedCluster:
    """A 3-master Redis Cluster whose nodes announce their proxies' ports to clients."""

    kind = "cluster"
    cluster = True

    def __init__(self, workdir: Path, size: int = 3) -> None:
        folder = Path(tempfile.mkdtemp(dir=workdir))
        ports = [free_port(cluster_bus=True) for _ in range(size)]
        while len(set(ports)) < size:  # two random picks may collide
            ports = [free_port(cluster_bus=True) for _ in range(size)]
        self.proxies = Proxies(Proxy(port, name=f"proxy-{port}") for port in ports)
        self._ports = ports
        self.nodes: list[RedisProcess] = []
        self._folder = folder

    def start(self) -> ProxiedCluster:
        try:
            return self._start()
        except BaseException:
            self.stop()  # a fixture that fails to set up gets no teardown: leave nothing behind
            raise

    def _start(self) -> ProxiedCluster:
        for proxy in self.proxies:
            proxy.start()  # first: each node must announce its proxy's port
        self.nodes = [
            RedisProcess(
                self._folder,
                port=port,
                extra=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                       "--cluster-config-file", "nodes.conf",
                       "--cluster-announce-ip", "127.0.0.1",
                       "--cluster-announce-port", str(proxy.port),
                       "--cluster-announce-bus-port", str(port + 10000)),
            )
            for port, proxy in zip(self._ports, self.proxies, strict=True)
        ]  # fmt: skip
        for node in self.nodes:
            node.start()
        # Slots and MEET by hand on the real ports: deterministic, and redis-cli's own check would
        # reach the nodes through the proxies (their announced addresses).
        per_node = 16384 // len(self.nodes)
        for i, node in enumerate(self.nodes):
            first = i * per_node
            last = 16383 if i == len(self.nodes) - 1 else first + per_node - 1
            with node.client() as r:
                r.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with self.nodes[0].client() as r:
            for node in self.nodes[1:]:
                r.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.port + 10000)
        announced = {proxy.port for proxy in self.proxies}

        def ready() -> bool:
            for node in self.nodes:
                with node.client() as r:
                    if "cluster_state:ok" not in r.execute_command("CLUSTER", "INFO").decode():
                        return False
                    slots = r.execute_command("CLUSTER", "SLOTS")
                    if {int(entry[2][1]) for entry in slots} != announced:
                        return False
            return True

        wait_for(ready, "a proxied cluster announcing its proxies", timeout=60)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.proxies.stop()

    @property
    def url(self) -> str:
        return self.proxies[0].url

    def settings(self, **overrides: Any) -> Settings:
        return make_settings(self.url, cluster=True, **overrides)

    def direct(self) -> list[redis.Redis]:
        return [node.client() for node in self.nodes]

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as r:
                r.flushall()


Proxied = ProxiedRedis | ProxiedCluster


@pytest.fixture
def proxied_redis(workdir: Path) -> Iterator[ProxiedRedis]:
    """A private redis-server behind one proxy (stopped at teardown)."""
    backing = ProxiedRedis(workdir).start()
    yield backing
    backing.stop()


@pytest.fixture(scope="session")
def _proxied_cluster_session(workdir: Path) -> Iterator[ProxiedCluster]:
    backing = ProxiedCluster(workdir).start()
    yield backing
    backing.stop()


@pytest.fixture
def proxied_cluster(_proxied_cluster_session: ProxiedCluster) -> ProxiedCluster:
    """A 3-master Cluster behind one proxy per node, shared by the session: healed and flushed for
    each test (a test that stops a node must build its own ``ProxiedCluster``)."""
    _proxied_cluster_session.proxies.heal()
    _proxied_cluster_session.flush()
    return _proxied_cluster_session


@pytest.fixture(params=["single", "cluster"])
def proxied(request: pytest.FixtureRequest) -> Proxied:
    """``proxied_redis`` or ``proxied_cluster``."""
    name = "proxied_redis" if request.param == "single" else "proxied_cluster"
    backing: Proxied = request.getfixturevalue(name)
    return backing


@pytest.fixture
def coord_via(
    start_coord: Callable[..., CoordThread],
) -> Callable[..., CoordThread]:
    """``coord_via(proxied, **setting_overrides)``: a Coord whose Redis traffic goes through the
    proxies (stopped at teardown)."""

    def make(backing: Proxied, **overrides: Any) -> CoordThread:
        return start_coord(backing.url, cluster=backing.cluster, **overrides)

    return make
