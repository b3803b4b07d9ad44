"""The one NOSCRIPT path, in every connection mode: after SCRIPT FLUSH, a call that Redis answers
NOSCRIPT is sent again, once, as EVAL with its source, and the next EVALSHA finds it cached.

Counted with Redis's own command statistics, summed over every node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from coord_server.redis import RedisBackend, Script, ScriptCall
from coord_server.redis.coalesce import Coalescer
from coord_server.redis.executor import Direct
from coord_server.redis.pipe import RespPipe

from ..conftest import RedisClusterProcess, RedisProcess

# Echoes its argument, and leaves a key behind so the write is seen to happen once.
ECHO = Script.from_source(
    "echo", "redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 60000) return ARGV[1]"
)


class Nodes:
    """The nodes of the Redis under test, for SCRIPT FLUSH and command counts."""

    def __init__(self, backing: RedisProcess | RedisClusterProcess) -> None:
        self.backing = backing
        self.nodes = backing.nodes if isinstance(backing, RedisClusterProcess) else [backing]

    def flush_scripts(self) -> None:
        for node in self.nodes:
            with node.client() as r:
                r.script_flush()

    def calls(self) -> dict[str, int]:
        totals = {"evalsha": 0, "eval": 0}
        for node in self.nodes:
            with node.client() as r:
                stats: dict[str, Any] = r.info("commandstats")
            for command in totals:
                totals[command] += int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
        return totals

    def value(self, key: str) -> int:
        with self.backing.client() as r:  # a cluster client finds the key's node
            return int(r.get(key) or 0)


MODES = [
    pytest.param("single", True, RespPipe, id="single-pipe"),
    pytest.param("single", False, Direct, id="single-plain"),
    pytest.param("cluster", True, Coalescer, id="cluster-coalescer", marks=pytest.mark.cluster),
    pytest.param("cluster", False, Direct, id="cluster-plain", marks=pytest.mark.cluster),
]


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[tuple[str, Nodes]]:
    kind = request.node.callspec.params["kind"]
    if kind == "single":
        single: RedisProcess = request.getfixturevalue("redis_single")
        with single.client() as r:
            r.flushall()
        yield single.url, Nodes(single)
    else:
        cluster: RedisClusterProcess = request.getfixturevalue("redis_cluster")
        cluster.flush()
        yield cluster.url, Nodes(cluster)


@pytest.mark.parametrize(("kind", "coalesce", "executor"), MODES)
def test_script_flush_then_calls_work(
    target: tuple[str, Nodes], kind: str, coalesce: bool, executor: type
) -> None:
    url, nodes = target

    async def main() -> list[Any]:
        backend = RedisBackend.from_url(url, cluster=kind == "cluster", timeout=2.0, coalesce=coalesce)
        assert type(backend._executor) is executor
        try:
            await backend.run(ECHO, ["{warm}"], ["w"])  # cached on the node of {warm} now
            steps = []
            nodes.flush_scripts()
            before = nodes.calls()
            many = await backend.run_many([ScriptCall(ECHO, [f"{{n{i}}}"], [str(i)]) for i in range(5)])
            steps.append((many, before, nodes.calls()))
            nodes.flush_scripts()
            before = nodes.calls()
            one = await backend.run(ECHO, ["{one}"], ["x"])
            steps.append((one, before, nodes.calls()))
            before = nodes.calls()
            again = await backend.run(ECHO, ["{one}"], ["y"])  # cached again: EVALSHA alone
            steps.append((again, before, nodes.calls()))
            return steps
        finally:
            await backend.close()

    (many, b1, a1), (one, b2, a2), (again, b3, a3) = asyncio.run(main())
    assert many == [str(i).encode() for i in range(5)]
    assert (a1["evalsha"] - b1["evalsha"], a1["eval"] - b1["eval"]) == (5, 5)
    assert one == b"x"
    assert (a2["evalsha"] - b2["evalsha"], a2["eval"] - b2["eval"]) == (1, 1)
    assert again == b"y"
    assert (a3["evalsha"] - b3["evalsha"], a3["eval"] - b3["eval"]) == (1, 0)
    # Each script ran exactly once per call: NOSCRIPT ran nothing, the EVAL ran it.
    assert [nodes.value(f"{{n{i}}}") for i in range(5)] == [1] * 5
    assert nodes.value("{one}") == 2


@pytest.mark.parametrize(("kind", "coalesce", "executor"), MODES)
def test_a_script_error_stays_in_its_place(
    target: tuple[str, Nodes], kind: str, coalesce: bool, executor: type
) -> None:
    url, _ = target
    fails = Script.from_source("fails", "return redis.error_reply('ERR asked to fail ' .. KEYS[1])")

    async def main() -> list[Any]:
        backend = RedisBackend.from_url(url, cluster=kind == "cluster", timeout=2.0, coalesce=coalesce)
        try:
            calls = [
                ScriptCall(ECHO, ["{a}"], ["1"]),
                ScriptCall(fails, ["{b}"], []),
                ScriptCall(ECHO, ["{c}"], ["3"]),
            ]
            each = await backend.run_each(calls)
            try:
                await backend.run_many(calls)
            except Exception as exc:
                each.append(exc)
            return each
        finally:
            await backend.close()

    first, failed, third, raised = asyncio.run(main())
    assert (first, third) == (b"1", b"3")
    assert isinstance(failed, Exception) and "asked to fail {b}" in str(failed)
    assert type(raised) is type(failed) and "asked to fail {b}" in str(raised)
