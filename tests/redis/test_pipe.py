"""The shared, self-pipelining Redis connection (coord_server.redis.pipe) against a real redis-server.

What it must keep from one-connection-per-call: replies in the right caller's hands even when a caller
gave up before its reply came, a lost connection failing only the calls in flight on it (the next call
connects again), a silent peer presumed dead after the Redis timeout, AUTH and SELECT from the URL.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.exceptions as rex

from coord_server.errors import BackendUnavailable
from coord_server.redis import RedisBackend, Script
from coord_server.redis.pipe import RespPipe

from ..conftest import RedisProcess

# Spins on Redis TIME for ARGV[1] microseconds: a reply that comes late, without DEBUG SLEEP.
SLOW = (
    "local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] "
    "while true do local n = redis.call('TIME') "
    "if n[1] * 1000000 + n[2] - start > tonumber(ARGV[1]) then break end end return 'slow'"
)


SET = Script.from_source("set", "return redis.call('SET', KEYS[1], ARGV[1])")


def pipe_to(redis: RedisProcess, **kwargs: Any) -> RespPipe:
    return RespPipe(host="127.0.0.1", port=redis.port, connect_timeout=1.0, stale_after=2.0, **kwargs)


async def call(pipe: RespPipe, command: tuple[Any, ...], budget: float) -> Any:
    """One command through the pipe: its reply, or the exception of an error reply raised."""
    reply = (await pipe.execute([command], budget))[0]
    if isinstance(reply, Exception):
        raise reply
    return reply


def soon(seconds: float = 2.0) -> float:
    """A call's time budget."""
    return seconds


@pytest.fixture
def redis_server(redis_factory: Callable[..., RedisProcess]) -> RedisProcess:
    return redis_factory()


def test_replies_reach_their_callers_when_an_earlier_caller_gave_up(redis_server: RedisProcess) -> None:
    async def main() -> tuple[Any, list[Any]]:
        pipe = pipe_to(redis_server)
        try:
            slow = asyncio.ensure_future(call(pipe, ("EVAL", SLOW, 0, 300_000), soon(0.05)))
            await asyncio.sleep(0)  # the slow call is queued first
            rest = [call(pipe, ("ECHO", f"m{i}"), soon()) for i in range(50)]
            gave_up = await asyncio.gather(slow, return_exceptions=True)
            return gave_up[0], await asyncio.gather(*rest)
        finally:
            await pipe.aclose()

    gave_up, replies = asyncio.run(main())
    assert isinstance(gave_up, TimeoutError)
    assert replies == [f"m{i}".encode() for i in range(50)]


def test_error_replies_fail_only_their_own_call(redis_server: RedisProcess) -> None:
    async def main() -> list[Any]:
        pipe = pipe_to(redis_server)
        try:
            return await pipe.execute(
                [("SET", "a", "1"), ("INCR", "nope", "extra"), ("EVALSHA", "0" * 40, 0), ("GET", "a")], soon()
            )
        finally:
            await pipe.aclose()

    ok, wrong_args, noscript, got = asyncio.run(main())
    assert ok == b"OK" and got == b"1"
    assert type(wrong_args) is rex.ResponseError and "wrong number of arguments" in str(wrong_args)
    assert isinstance(noscript, rex.NoScriptError)


def test_a_killed_connection_fails_its_calls_and_the_next_call_reconnects(redis_server: RedisProcess) -> None:
    async def main() -> tuple[Any, Any]:
        pipe = pipe_to(redis_server)
        try:
            await call(pipe, ("CLIENT", "SETNAME", "pipe-under-test"), soon())
            # A call still waiting when the connection dies (BLPOP only to hold it there).
            in_flight = asyncio.ensure_future(call(pipe, ("BLPOP", "never-pushed", 2), soon(3.0)))
            await asyncio.sleep(0.1)
            with redis_server.client() as r:
                killed = r.execute_command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal")
                assert killed >= 1
            failed = (await asyncio.gather(in_flight, return_exceptions=True))[0]
            return failed, await call(pipe, ("PING",), soon())
        finally:
            await pipe.aclose()

    failed, after = asyncio.run(main())
    assert isinstance(failed, rex.ConnectionError)
    assert after == b"PONG"


@pytest.fixture
def silent_peer() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP listener that accepts connections and never answers: a Redis gone without a reset."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_silent_connection_is_replaced_after_the_redis_timeout(
    silent_peer: tuple[int, list[socket.socket]],
) -> None:
    port, accepted = silent_peer

    async def main() -> list[Any]:
        pipe = RespPipe(host="127.0.0.1", port=port, connect_timeout=1.0, stale_after=0.3)
        try:
            first = await asyncio.gather(call(pipe, ("PING",), soon(0.1)), return_exceptions=True)
            still_young = await asyncio.gather(call(pipe, ("PING",), soon(0.1)), return_exceptions=True)
            connections_before = len(accepted)
            await asyncio.sleep(0.4)  # the oldest unanswered call is now older than stale_after
            later = await asyncio.gather(call(pipe, ("PING",), soon(0.1)), return_exceptions=True)
            return [first[0], still_young[0], connections_before, later[0]]
        finally:
            await pipe.aclose()

    first, still_young, connections_before, later = asyncio.run(main())
    assert isinstance(first, TimeoutError) and isinstance(still_young, TimeoutError)
    assert connections_before == 1  # a call that merely timed out does not reconnect
    assert isinstance(later, TimeoutError)
    assert len(accepted) == 2  # ... but a connection silent past the Redis timeout is replaced


def test_password_and_database_from_the_url_are_used(redis_factory: Callable[..., RedisProcess]) -> None:
    server = redis_factory()
    with server.client() as r:
        r.config_set("requirepass", "s3cret")

    async def main(password: str) -> Any:
        backend = RedisBackend.from_url(
            f"redis://:{password}@127.0.0.1:{server.port}/3", cluster=False, timeout=2.0
        )
        try:
            # The shared connection, not redis-py, runs scripts here.
            assert isinstance(backend._executor, RespPipe)
            return await backend.run(SET, ["where"], ["db3"])
        finally:
            await backend.close()

    assert asyncio.run(main("s3cret")) == b"OK"
    import redis as redis_py

    with redis_py.Redis(port=server.port, password="s3cret", db=3) as r:
        assert r.get("where") == b"db3"
    with pytest.raises(BackendUnavailable):
        asyncio.run(main("wrong"))
