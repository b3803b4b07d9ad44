"""A Redis that answers LOADING, BUSY, MASTERDOWN, READONLY or OOM is in a state, not at fault.

Every path (the shared pipe, the coalescer, plain redis-py; scripts and typed commands) maps such a
reply to BackendUnavailable (UNAVAILABLE with RetryInfo) or BackendOutOfMemory (RESOURCE_EXHAUSTED
with RetryInfo), never INTERNAL with a traceback, and a rate limit Check applies its rules' failure
modes. States are played by a fake RESP server (deterministic) and, for OOM and BUSY, by a real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import redis
import redis.exceptions as rex
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.common.v1 import errors_pb2
from coord.events.v1 import events_pb2, events_pb2_grpc
from coord_server.errors import BackendOutOfMemory, BackendUnavailable
from coord_server.redis import RedisBackend, Script, ScriptCall
from coord_server.redis.coalesce import Coalescer
from coord_server.redis.executor import Direct
from coord_server.redis.pipe import RespPipe

from ..conftest import CoordThread, RedisProcess, wait_for
from ..ratelimit.helpers import FIXED_WINDOW, Limiter, desc, rule
from ..ratelimit.helpers import pb as rl_pb
from .fake_resp import FakeResp

ECHO = Script.from_source("echo", "return ARGV[1]")

# Each state's error reply as Redis sends it, and the reason and gRPC code a caller gets.
STATES = {
    "LOADING": "LOADING Redis is loading the dataset in memory",
    "BUSY": "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
    "MASTERDOWN": "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "READONLY": "READONLY You can't write against a read only replica.",
    "OOM": "OOM command not allowed when used memory > 'maxmemory'.",
}


@pytest.fixture(params=sorted(STATES))
def fake(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeResp]]:
    server = FakeResp(STATES[request.param])
    yield request.param, server
    server.stop()


def expected(state: str) -> type[BackendUnavailable]:
    return BackendOutOfMemory if state == "OOM" else BackendUnavailable


EXECUTORS: list[Any] = [
    pytest.param(True, RespPipe, id="pipe"),
    pytest.param(True, Coalescer, id="coalescer"),
    pytest.param(False, Direct, id="plain"),
]


@pytest.mark.parametrize(("coalesce", "executor"), EXECUTORS)
def test_every_path_maps_a_state_reply_the_same_way(
    fake: tuple[str, FakeResp], coalesce: bool, executor: type[Any]
) -> None:
    state, server = fake

    async def scenario() -> list[BaseException]:
        backend = RedisBackend.from_url(server.url, cluster=False, timeout=2.0, coalesce=coalesce)
        if executor is Coalescer:  # what a cluster or TLS would choose; the wire replies are the same
            backend._executor = Coalescer(backend._client, 2.0)
        assert isinstance(backend._executor, executor)
        seen: list[BaseException] = []
        calls: list[Callable[[], Any]] = [
            lambda: backend.run(ECHO, ["k"], ["x"]),
            lambda: backend.run_each([ScriptCall(ECHO, ["k"], ["x"])] * 3),
            lambda: backend.publish("channel", "hello"),
            lambda: backend.xrange("stream", "-", "+", 10),
            backend.time,
        ]
        try:
            for call in calls:
                try:
                    result = await call()
                except Exception as exc:
                    seen.append(exc)
                else:  # run_each puts the error in each call's place
                    seen.extend(result)
        finally:
            await backend.close(0.1)
        return seen

    seen = asyncio.run(scenario())
    # run_each puts the state in each of its 3 calls' places when the batch was sent (the pipe); through
    # redis-py, a new connection's PING gets the reply first and the whole batch raises it once.
    assert len(seen) == (7 if executor is RespPipe else 5)
    for error in seen:
        assert type(error) is expected(state), repr(error)
        assert error.metadata.get("state") == state
        assert error.retry_after is not None and error.retry_after > 0


def rich(err: grpc.RpcError) -> tuple[str, dict[str, str], error_details_pb2.RetryInfo | None]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    info = error_details_pb2.ErrorInfo()
    retry = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    return info.reason, dict(info.metadata), retry


def assert_backend_state(err: grpc.RpcError, state: str) -> None:
    code = grpc.StatusCode.RESOURCE_EXHAUSTED if state == "OOM" else grpc.StatusCode.UNAVAILABLE
    reason, metadata, retry = rich(err)
    assert err.code() == code, err.details()
    assert reason == ("BACKEND_OUT_OF_MEMORY" if state == "OOM" else "BACKEND_UNAVAILABLE")
    assert metadata.get("state") == state
    assert retry is not None and retry.retry_delay.ToNanoseconds() > 0


def assert_stream_backend_state(error: errors_pb2.StreamError, state: str) -> None:
    code = grpc.StatusCode.RESOURCE_EXHAUSTED if state == "OOM" else grpc.StatusCode.UNAVAILABLE
    assert error.code == code.value[0], error.message
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert any(d.Unpack(info) for d in error.details if d.Is(info.DESCRIPTOR))
    assert any(d.Unpack(retry) for d in error.details if d.Is(retry.DESCRIPTOR))
    assert info.reason == ("BACKEND_OUT_OF_MEMORY" if state == "OOM" else "BACKEND_UNAVAILABLE")
    assert info.metadata.get("state") == state
    assert retry.retry_delay.ToNanoseconds() > 0


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_rpcs_get_the_state_not_internal(
    fake: tuple[str, FakeResp],
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, server = fake
    caplog.set_level(logging.INFO)
    coord = start_coord(server.url)
    with grpc.insecure_channel(coord.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        events = events_pb2_grpc.EventsServiceStub(channel)
        calls: list[Callable[[], Any]] = [
            lambda: cache.Get(cache_pb2.GetRequest(key="k"), timeout=10),
            lambda: cache.Set(cache_pb2.SetRequest(key="k", value=b"v"), timeout=10),
            lambda: events.Publish(events_pb2.PublishRequest(topic="t", data=b"p"), timeout=10),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as excinfo:
                call()
            assert_backend_state(excinfo.value, state)
        # A streamed write gets the same status as its answer's error, and the stream ends OK.
        written = [cache_pb2.SetStreamRequest(request_id=1, set=cache_pb2.SetRequest(key="k", value=b"v"))]
        (answer,) = list(cache.SetStream(iter(written), timeout=10))
        assert answer.request_id == 1 and answer.WhichOneof("result") == "error"
        assert_stream_backend_state(answer.error, state)
    assert server.commands > 0  # the calls did reach the fake Redis
    assert errors_logged(caplog) == []


FAIL_CLOSED = rule(5, 60)
FAIL_OPEN = rule(5, 60, FIXED_WINDOW, on_backend_error=rl_pb.FAILURE_MODE_OPEN)


@pytest.mark.parametrize("coalesce", [True, False], ids=["pipe", "plain"])
def test_a_rate_limit_check_applies_its_failure_mode(
    start_coord: Callable[..., CoordThread], caplog: pytest.LogCaptureFixture, coalesce: bool
) -> None:
    server = FakeResp(STATES["LOADING"])
    try:
        coord = start_coord(server.url, redis_coalesce=coalesce)
        limiter = Limiter(coord.target)
        closed = limiter.one("a", FAIL_CLOSED)
        opened = limiter.one("b", FAIL_OPEN)
        both = limiter.check(desc("c", FAIL_CLOSED), desc("d", FAIL_OPEN), mode=rl_pb.MODE_INDEPENDENT)
        limiter.close()
    finally:
        server.stop()
    assert (closed.allowed, closed.backend_unavailable) == (False, True)
    assert (opened.allowed, opened.backend_unavailable) == (True, True)
    assert [s.allowed for s in both.statuses] == [False, True]
    assert errors_logged(caplog) == []


def test_a_real_out_of_memory_redis(
    redis_factory: Callable[..., RedisProcess],
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    backing = redis_factory()
    coord = start_coord(backing.url)
    with grpc.insecure_channel(coord.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        cache.Set(cache_pb2.SetRequest(key="before", value=b"v"), timeout=10)
        with backing.client() as r:
            r.config_set("maxmemory-policy", "noeviction")
            r.config_set("maxmemory", "1mb")  # below what Redis uses already: every write is refused
            with pytest.raises(rex.OutOfMemoryError):
                r.set("probe", "x")
        with pytest.raises(grpc.RpcError) as excinfo:
            cache.Set(cache_pb2.SetRequest(key="k", value=b"v" * 1000), timeout=10)
        assert_backend_state(excinfo.value, "OOM")
        assert cache.Get(cache_pb2.GetRequest(key="before"), timeout=10).HasField("entry")  # reads work
    assert errors_logged(caplog) == []


def test_a_real_busy_redis(
    redis_factory: Callable[..., RedisProcess],
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    backing = redis_factory(extra=("--lua-time-limit", "10"))
    coord = start_coord(backing.url, redis_timeout=5.0)
    looping = threading.Thread(
        target=_run_forever_script, args=(backing.port,), name="busy-script", daemon=True
    )
    looping.start()
    probe = redis.Redis(port=backing.port)
    try:
        wait_for(lambda: _busy(probe), "Redis to answer BUSY")
        with grpc.insecure_channel(coord.target) as channel:
            cache = cache_pb2_grpc.CacheServiceStub(channel)
            with pytest.raises(grpc.RpcError) as excinfo:
                cache.Get(cache_pb2.GetRequest(key="k"), timeout=10)
            assert_backend_state(excinfo.value, "BUSY")
    finally:
        probe.script_kill()
        looping.join(10)
        probe.close()
    assert errors_logged(caplog) == []


def _run_forever_script(port: int) -> None:
    # ResponseError: the script is killed by SCRIPT KILL at the end of the test.
    with redis.Redis(port=port) as client, contextlib.suppress(rex.ResponseError):
        client.eval("local i = 0 while true do i = i + 1 end", 0)


def _busy(client: redis.Redis) -> bool:
    try:
        client.ping()
    except rex.ResponseError as exc:
        return str(exc).startswith("BUSY")
    return False
