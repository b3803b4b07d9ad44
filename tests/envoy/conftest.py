"""A Coord server per topology (single node, 3-master Cluster) serving the README examples of
envoyproxy/ratelimit and Coord's extras (examples.py) from a folder of config files, one domain per
file, with the rate limit response headers on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from redis.cluster import RedisCluster

from ..conftest import CoordThread, RedisClusterProcess, RedisProcess, make_settings
from .examples import EXAMPLES, EXTRAS
from .helpers import Rls, Window, in_one_window, write

T = TypeVar("T")


@dataclass
class EnvoyCoord:
    """A Coord server with an Envoy rate limit config, its Redis and a client."""

    kind: str
    server: CoordThread
    backing: RedisProcess | RedisClusterProcess
    rls: Rls
    folder: Path

    def redis(self) -> redis.Redis | RedisCluster:
        return self.backing.client()

    def window(self, unit_seconds: int, calls: Callable[[], T]) -> tuple[T, Window]:
        """``calls`` run (after a flush) within one window of ``unit_seconds`` (helpers.in_one_window)."""
        client = self.redis()
        try:
            return in_one_window(client, self.flush, unit_seconds, calls)
        finally:
            client.close()

    def keys(self) -> list[str]:
        """Every key in Redis (every primary's on a cluster)."""
        client = self.redis()
        try:
            if isinstance(client, RedisCluster):
                found = client.keys("*", target_nodes=RedisCluster.PRIMARIES)
            else:
                found = client.keys("*")
        finally:
            client.close()
        return sorted(k.decode() for k in found)  # type: ignore[union-attr]

    def flush(self) -> None:
        if isinstance(self.backing, RedisClusterProcess):
            self.backing.flush()
        else:
            with self.backing.client() as r:
                r.flushall()


def _serve(kind: str, backing: RedisProcess | RedisClusterProcess, folder: Path) -> Iterator[EnvoyCoord]:
    write(folder, {f"{name}.yaml": text for name, text in {**EXAMPLES, **EXTRAS}.items()})
    settings = make_settings(
        backing.url,
        cluster=kind == "cluster",
        envoy_ratelimit_config=str(folder),
        envoy_ratelimit_headers=True,
    )
    server = CoordThread(settings).start()
    rls = Rls(server.target)
    try:
        yield EnvoyCoord(kind, server, backing, rls, folder)
    finally:
        rls.close()
        server.stop()


@pytest.fixture(scope="session")
def _envoy_single(
    redis_single: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyCoord]:
    yield from _serve("single", redis_single, tmp_path_factory.mktemp("envoy-single"))


@pytest.fixture(scope="session")
def _envoy_cluster(
    redis_cluster: RedisClusterProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyCoord]:
    yield from _serve("cluster", redis_cluster, tmp_path_factory.mktemp("envoy-cluster"))


@pytest.fixture(params=["single", "cluster"])
def envoy(request: pytest.FixtureRequest) -> EnvoyCoord:
    """The examples' server on each topology, its Redis flushed."""
    under_test: EnvoyCoord = request.getfixturevalue(f"_envoy_{request.param}")
    under_test.flush()
    return under_test


@pytest.fixture
def envoy_single(_envoy_single: EnvoyCoord) -> EnvoyCoord:
    _envoy_single.flush()
    return _envoy_single
