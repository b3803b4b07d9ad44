"""Bad input is INVALID_ARGUMENT naming the field; fencing tokens survive Redis restarts; outages are
UNAVAILABLE and the service recovers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.lock.v1 import lock_pb2 as pb

from ..conftest import CoordThread, CoordUnderTest, RedisProcess, wait_for
from ._util import HoldStream, S, Stub, X, acquire, dur, error_info, lock_stub, release


@pytest.fixture
def stub(coord_single: CoordUnderTest) -> Iterator[Stub]:
    with lock_stub(coord_single.target) as s:
        yield s


def negative() -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=-1)


ACQUIRE_CASES: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name"),
    ({"name": "x" * 2000}, "name"),
    ({"name": "a\nb"}, "name"),
    ({"mode": pb.LOCK_MODE_UNSPECIFIED}, "mode"),
    ({"mode": 7}, "mode"),
    ({"mode": S, "limit": 0}, "limit"),
    ({"mode": S, "limit": 70000}, "limit"),
    ({"mode": X, "limit": 3}, "limit"),
    ({"ttl": negative()}, "ttl"),
    ({"ttl": duration_pb2.Duration(seconds=10**8)}, "ttl"),
    ({"ttl": duration_pb2.Duration(nanos=5)}, "ttl"),
    ({"wait": negative()}, "wait"),
    ({"wait": duration_pb2.Duration(seconds=10**8)}, "wait"),
    ({"owner": "o" * 300}, "owner"),
    ({"owner": "a\x00b"}, "owner"),
]


@pytest.mark.parametrize(("fields", "field"), ACQUIRE_CASES)
def test_acquire_bad_input_names_the_field(stub: Stub, fields: dict[str, Any], field: str) -> None:
    request = pb.AcquireRequest(name="L", mode=X)
    for key, value in fields.items():
        if isinstance(value, duration_pb2.Duration):
            getattr(request, key).CopyFrom(value)
        else:
            setattr(request, key, value)
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Acquire(request)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == field


def test_exclusive_with_limit_one_is_accepted(stub: Stub) -> None:
    assert acquire(stub, mode=X, limit=1).acquired


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ReleaseRequest(name="", lock_token="t"), "name"),
        (pb.ReleaseRequest(name="L", lock_token=""), "lock_token"),
        (pb.ReleaseRequest(name="L", lock_token="x" * 500), "lock_token"),
        (pb.ReleaseRequest(name="L", lock_token="a b\n"), "lock_token"),
    ],
)
def test_release_bad_input(stub: Stub, request_: pb.ReleaseRequest, field: str) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Release(request_)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == field


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ExtendRequest(name="", lock_token="t"), "name"),
        (pb.ExtendRequest(name="L", lock_token=""), "lock_token"),
        (pb.ExtendRequest(name="L", lock_token="t", ttl=duration_pb2.Duration(seconds=-3)), "ttl"),
        (pb.ExtendRequest(name="L", lock_token="t", ttl=duration_pb2.Duration(seconds=10**8)), "ttl"),
    ],
)
def test_extend_bad_input(stub: Stub, request_: pb.ExtendRequest, field: str) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Extend(request_)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == field


def test_describe_bad_input(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Describe(pb.DescribeRequest(name=""))
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == "name"


def test_heartbeat_bad_ttl_names_the_field(stub: Stub) -> None:
    from ._util import HoldStream

    hold = HoldStream(stub)
    hold.acquire(mode=X, ttl=dur(30))
    hold.next()
    hold.send(pb.HoldRequest(heartbeat=pb.HoldHeartbeat(ttl=duration_pb2.Duration(seconds=-1))))
    with pytest.raises(grpc.RpcError) as excinfo:
        hold.next()
    assert error_info(excinfo.value).metadata["field"] == "heartbeat.ttl"


def test_fencing_survives_restart_with_aof(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory(extra=("--appendonly", "yes", "--appendfsync", "always"))
    server = start_coord(backing.url)
    with lock_stub(server.target) as stub:
        tokens = []
        for _ in range(5):
            grant = acquire(stub).grant
            tokens.append(grant.fencing_token)
            release(stub, "L", grant.lock_token)
        held = acquire(stub, ttl=600).grant
        backing.stop()
        with pytest.raises(grpc.RpcError) as excinfo:
            acquire(stub, "other", timeout=10)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
        backing.start()  # same port and directory: the AOF is replayed
        wait_for(lambda: _answers(stub), "Coord to reach Redis again")
        # The grant made before the restart is still there and still owner-checked.
        assert not acquire(stub).acquired
        assert release(stub, "L", held.lock_token) == pb.RELEASE_OUTCOME_RELEASED
        after = acquire(stub).grant.fencing_token
        assert after > held.fencing_token > tokens[-1]


def test_fencing_never_goes_back_even_when_redis_loses_everything(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()  # no persistence at all: a restart forgets the counter
    server = start_coord(backing.url)
    with lock_stub(server.target) as stub:
        before = []
        for _ in range(3):
            grant = acquire(stub).grant
            before.append(grant.fencing_token)
            release(stub, "L", grant.lock_token)
        backing.stop()
        backing.start()
        wait_for(lambda: _answers(stub), "Coord to reach Redis again")
        after = acquire(stub).grant.fencing_token
    assert after > max(before), "the Redis TIME floor keeps tokens increasing"


def test_a_waiting_acquire_fails_as_fast_as_a_try_lock_when_redis_is_down(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    """A waiting Acquire (and a Hold) tries at once and gets the try-lock's error; it does not wait
    for its wake-up subscription first.

    The Redis timeout (60 s) is far beyond the calls' own deadline (10 s) and wait (20 s): a server
    that awaited the subscription (which a stopped Redis never confirms) before its first attempt
    would be ended by the caller's deadline, DEADLINE_EXCEEDED. Only an attempt made at once meets
    the refused connection, whose answer is the try-lock's: UNAVAILABLE, BACKEND_UNAVAILABLE,
    RetryInfo.
    """
    backing = redis_factory()
    server = start_coord(backing.url, redis_timeout=60.0)
    with lock_stub(server.target) as stub:
        assert acquire(stub, "warm-up").acquired
        backing.stop()
        tried = _failure(lambda: acquire(stub, "tried", timeout=10))
        waited = _failure(lambda: acquire(stub, "waited", wait=20, timeout=10))
        hold = HoldStream(stub, timeout=10)
        hold.acquire("held", mode=X, ttl=dur(30), wait=dur(20))
        held = _failure(hold.next)
    for err in (tried, waited, held):
        assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
        assert err.details() == tried.details() and (tried.details() or "").startswith("Redis is unavailable")
        assert error_info(err).reason == "BACKEND_UNAVAILABLE"
        assert _retry_delay_ms(err) > 0


def _failure(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call()
    return excinfo.value


def _retry_delay_ms(err: grpc.RpcError) -> int:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            return int(retry.retry_delay.ToMilliseconds())
    return 0


def _answers(stub: Stub) -> bool:
    try:
        stub.Describe(pb.DescribeRequest(name="probe"), timeout=2)
        return True
    except grpc.RpcError:
        return False
