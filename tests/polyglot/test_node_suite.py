"""The Node.js client suite (``@grpc/grpc-js``, .proto files loaded at run time) against real Coord.

It shares no code with the Python client: it proves that the .proto contract and the service config
are enough for a client in another language. Each run prints Node's own counts, also on success.
"""

from __future__ import annotations

from collections.abc import Callable

from ..conftest import CoordThread, CoordUnderTest, RedisProcess
from ._node import OUTAGE, SUITE, run_node_suite


def test_node_suite(coord: CoordUnderTest) -> None:
    run = run_node_suite(coord.kind, SUITE, coord.target)
    print(run.summary)
    assert run.ok, f"{run.summary}\n{run.output}"


def test_node_retries_follow_the_service_config(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    server = start_coord(backing.url)
    backing.stop()  # every Redis call now fails fast: Coord answers UNAVAILABLE + RetryInfo
    run = run_node_suite("redis down", OUTAGE, server.target)
    print(run.summary)
    assert run.ok, f"{run.summary}\n{run.output}"
