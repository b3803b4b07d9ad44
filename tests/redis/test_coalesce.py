"""The Redis call coalescer: concurrent script calls share pipelines, yet each caller gets its own
reply or its own error, NOSCRIPT is recovered, and each caller's deadline still holds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.exceptions as rex

from coord_server.errors import DeadlineExceeded
from coord_server.redis import RedisBackend, Script, deadline

from ..conftest import CoordUnderTest

ECHO = Script.from_source(
    "echo",
    "if ARGV[1] == 'fail' then return redis.error_reply('ERR asked to fail') end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)\nreturn {KEYS[1], ARGV[1]}",
)


def backend(coord: CoordUnderTest) -> RedisBackend:
    s = coord.settings
    return RedisBackend.from_url(s.redis_url, cluster=s.redis_cluster, timeout=2.0, coalesce=True)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_calls_each_get_their_own_reply(coord: CoordUnderTest) -> None:
    async def main() -> list[Any]:
        redis = backend(coord)
        try:
            return await asyncio.gather(*(redis.run(ECHO, [f"{{k{i}}}"], [f"v{i}"]) for i in range(300)))
        finally:
            await redis.close()

    replies = run(main())
    assert [[k.decode(), v.decode()] for k, v in replies] == [[f"{{k{i}}}", f"v{i}"] for i in range(300)]
    with coord.redis() as r:
        assert r.get("{k299}") == b"v299"


def test_a_failing_script_fails_only_its_own_call(coord: CoordUnderTest) -> None:
    async def one(redis: RedisBackend, i: int) -> Any:
        try:
            return await redis.run(ECHO, [f"{{e{i}}}"], ["fail" if i % 3 == 0 else "ok"])
        except rex.ResponseError as exc:
            return exc

    async def main() -> list[Any]:
        redis = backend(coord)
        try:
            return await asyncio.gather(*(one(redis, i) for i in range(90)))
        finally:
            await redis.close()

    results = run(main())
    for i, result in enumerate(results):
        if i % 3 == 0:
            assert isinstance(result, rex.ResponseError) and "asked to fail" in str(result)
        else:
            assert result[1] == b"ok"


def test_noscript_in_a_coalesced_pipeline_is_recovered(coord: CoordUnderTest) -> None:
    async def main() -> list[Any]:
        redis = backend(coord)
        try:
            await redis.run(ECHO, ["{warm}"], ["x"])  # cached now
            with coord.redis() as r:
                r.script_flush()
            return await asyncio.gather(*(redis.run(ECHO, [f"{{n{i}}}"], [str(i)]) for i in range(100)))
        finally:
            await redis.close()

    replies = run(main())
    assert [int(v) for _, v in replies] == list(range(100))


def test_each_caller_keeps_its_own_deadline(coord: CoordUnderTest) -> None:
    async def one(redis: RedisBackend, i: int) -> Any:
        expired = i % 2 == 1
        deadline.set(time.monotonic() - 1 if expired else None)
        try:
            return await redis.run(ECHO, [f"{{d{i}}}"], ["v"])
        except DeadlineExceeded as exc:
            return exc

    async def main() -> list[Any]:
        redis = backend(coord)
        try:
            return await asyncio.gather(*(one(redis, i) for i in range(40)))
        finally:
            await redis.close()

    results = run(main())
    for i, result in enumerate(results):
        if i % 2 == 1:
            assert isinstance(result, DeadlineExceeded)
        else:
            assert result[1] == b"v"


@pytest.mark.parametrize("coalesce", [True, False])
def test_both_modes_give_the_same_replies(coord_single: CoordUnderTest, coalesce: bool) -> None:
    async def main() -> list[Any]:
        s = coord_single.settings
        redis = RedisBackend.from_url(s.redis_url, cluster=False, timeout=2.0, coalesce=coalesce)
        try:
            return await asyncio.gather(*(redis.run(ECHO, [f"s{i}"], [str(i)]) for i in range(50)))
        finally:
            await redis.close()

    assert [int(v) for _, v in run(main())] == list(range(50))
