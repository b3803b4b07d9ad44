"""SIGTERM ends open streams at once instead of holding them for the whole grace period: each ends with
UNAVAILABLE (reason SERVER_SHUTTING_DOWN, a RetryInfo, a message saying the server is shutting down)
so that its client resumes on another server, a Hold's lock is released, and the process exits.

The grace period is far longer than the test's own timeout: a stream that held the shutdown for it
would hang the test (pytest's timeout is the guard), and the process is waited for with a bound well
below the grace."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from coord.events.v1 import events_pb2, events_pb2_grpc
from coord.lock.v1 import lock_pb2, lock_pb2_grpc
from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

from ..conftest import CoordThread, RedisProcess, wait_for
from .test_process import ServerProcess

GRACE_S = 600  # ten minutes: longer than any test may run


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()


def ended_for_shutdown(drain: Callable[[], object]) -> None:
    """``drain`` reads a stream to its end, which must be the shutdown's UNAVAILABLE."""
    with pytest.raises(grpc.RpcError) as raised:
        drain()
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    assert "shutting down" in error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    kinds = set()
    for detail in status.details:
        if detail.Unpack(info):
            kinds.add("info")
        elif detail.Unpack(retry):
            kinds.add("retry")
    assert kinds == {"info", "retry"}
    assert (info.domain, info.reason) == ("coord", "SERVER_SHUTTING_DOWN")


def test_sigterm_ends_open_streams_at_once_and_the_process_exits(
    tmp_path: Path, servers: list[ServerProcess], redis_factory: Callable[..., RedisProcess]
) -> None:
    backing = redis_factory()
    server = ServerProcess(tmp_path, COORD_REDIS_URL=backing.url, COORD_SHUTDOWN_GRACE=f"{GRACE_S}s")
    servers.append(server.start())
    channel = grpc.insecure_channel(server.target)

    subscription = events_pb2_grpc.EventsServiceStub(channel).Subscribe(
        events_pb2.SubscribeRequest(topics=["news"], start=events_pb2.START_POSITION_LATEST)
    )
    assert next(subscription).WhichOneof("frame") == "subscribed"

    consume_outbox: queue.Queue[events_pb2.ConsumeRequest | None] = queue.Queue()
    start = events_pb2.ConsumeStart(
        topic="jobs", group="workers", group_start=events_pb2.START_POSITION_LATEST
    )
    consume_outbox.put(events_pb2.ConsumeRequest(start=start))
    consume = events_pb2_grpc.EventsServiceStub(channel).Consume(_until_none(consume_outbox))
    assert next(consume).WhichOneof("frame") == "started"

    acquire = lock_pb2.AcquireRequest(
        name="job", mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=duration_pb2.Duration(seconds=300)
    )
    hold_outbox: queue.Queue[lock_pb2.HoldRequest | None] = queue.Queue()
    hold_outbox.put(lock_pb2.HoldRequest(acquire=acquire))
    hold = lock_pb2_grpc.LockServiceStub(channel).Hold(_until_none(hold_outbox))
    assert next(hold).WhichOneof("kind") == "acquired"

    checks_outbox: queue.Queue[ratelimit_pb2.CheckStreamRequest | None] = queue.Queue()
    check = ratelimit_pb2.CheckRequest(
        descriptors=[
            ratelimit_pb2.Descriptor(
                key="k", rule=ratelimit_pb2.Rule(limit=5, period=duration_pb2.Duration(seconds=60))
            )
        ]
    )
    checks_outbox.put(ratelimit_pb2.CheckStreamRequest(request_id=1, check=check))
    checks = ratelimit_pb2_grpc.RateLimitServiceStub(channel).CheckStream(_until_none(checks_outbox))
    assert next(checks).check.allowed

    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    with backing.client() as r:
        (holders,) = list(r.scan_iter("coord:*{job}:h"))
        assert r.zcard(holders) == 1

    server.signal(signal.SIGTERM)
    try:
        ended_for_shutdown(lambda: list(subscription))
        ended_for_shutdown(lambda: list(consume))
        ended_for_shutdown(lambda: list(hold))
        ended_for_shutdown(lambda: list(checks))
        statuses: list[int] = []
        ended_for_shutdown(lambda: statuses.extend(reply.status for reply in watch))
        assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses  # told first, then ended
        # Nothing else is in flight: the process exits long before its grace period would end.
        assert server.wait(60) == 0
    finally:
        consume_outbox.put(None)
        hold_outbox.put(None)
        checks_outbox.put(None)
        channel.close()
    with backing.client() as r:
        assert r.zcard(holders) == 0, "ending the Hold stream released its lock"
    log = server.log.read_text()
    assert "ended 5 open streams" in log
    assert "Traceback" not in log and "ERROR" not in log, log


def _until_none(outbox: queue.Queue[Any]) -> Iterator[Any]:
    while (item := outbox.get()) is not None:
        yield item


def test_a_check_stream_answers_what_it_read_before_it_ends(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    """CheckStream drains: checks it read before the shutdown are decided and answered, then the stream
    ends with SERVER_SHUTTING_DOWN; whatever was applied in Redis was answered. (Checks a client sends
    after the shutdown began are not read, so not applied: the drain only finishes what it holds.)"""
    backing = redis_factory()
    # Long timeouts: the checks wait for a paused Redis instead of failing over to on_backend_error.
    server = start_coord(backing.url, shutdown_grace=60.0, redis_timeout=30.0, ratelimit_timeout=30.0)
    rule = ratelimit_pb2.Rule(
        # One window of 366 days: no window boundary is crossed while the test runs.
        algorithm=ratelimit_pb2.ALGORITHM_FIXED_WINDOW,
        limit=100,
        period=duration_pb2.Duration(seconds=366 * 86400),
    )
    check = ratelimit_pb2.CheckRequest(descriptors=[ratelimit_pb2.Descriptor(key="drained", rule=rule)])
    outbox: queue.Queue[ratelimit_pb2.CheckStreamRequest | None] = queue.Queue()
    channel = grpc.insecure_channel(server.target)
    stopping = threading.Thread(target=server.stop)
    try:
        replies = ratelimit_pb2_grpc.RateLimitServiceStub(channel).CheckStream(_until_none(outbox))
        outbox.put(ratelimit_pb2.CheckStreamRequest(request_id=0, check=check))
        assert next(replies).check.allowed  # the stream runs (and the script is cached)
        assert backing.proc is not None
        os.kill(backing.proc.pid, signal.SIGSTOP)
        try:
            for request_id in range(1, 6):
                outbox.put(ratelimit_pb2.CheckStreamRequest(request_id=request_id, check=check))
            # All five are read and being decided (waiting for Redis) when the shutdown starts.
            wait_for(lambda: server.run(_checks_in_flight()) == 5, "the checks to be in flight")
            stopping.start()
            wait_for(lambda: _refused(server.target), "the server to refuse new calls")
        finally:
            os.kill(backing.proc.pid, signal.SIGCONT)
        answered = []
        ended_for_shutdown(lambda: answered.extend(reply.request_id for reply in replies))
        assert sorted(answered) == [1, 2, 3, 4, 5]
    finally:
        outbox.put(None)
        channel.close()
        if stopping.ident is not None:
            stopping.join(60)
    with backing.client() as r:
        (counter,) = list(r.scan_iter("coord:*drained*"))
        # Applied exactly for the answered checks (the first one included): nothing unanswered counted.
        assert int(r.hget(counter, "c")) == 1 + len(answered)


async def _checks_in_flight() -> int:
    """Requests of streams the server's loop is deciding (answer_each's task per request)."""
    return sum(
        1
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "").endswith("answer_each.<locals>.one") and not t.done()
    )


def _refused(target: str) -> bool:
    with grpc.insecure_channel(target) as fresh:
        try:
            health_pb2_grpc.HealthStub(fresh).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return True
    return False
