"""Server runtime against real Redis: health, Redis outages, deadlines, NOSCRIPT recovery, reflection,
and the INTERNAL error path."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc

from ..conftest import CoordThread, CoordUnderTest, RedisClusterProcess, RedisProcess, wait_for

CACHE = "coord.cache.v1.CacheService"


def health_status(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        return (
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service)).status
        )


def error_info(err: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo | None]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    return info, retry


def test_health_serving_for_server_and_each_service(coord: CoordUnderTest) -> None:
    assert health_status(coord.target) == health_pb2.HealthCheckResponse.SERVING
    assert health_status(coord.target, CACHE) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_services(coord_single: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord_single.target) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {CACHE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
        pool = descriptor_pool.DescriptorPool(db)
        method = pool.FindServiceByName(CACHE).FindMethodByName("Set")
        assert method.input_type.full_name == "coord.cache.v1.SetRequest"


def test_redis_outage_unavailable_then_recovery(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    server = start_coord(backing.url)
    with grpc.insecure_channel(server.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        stub.Set(pb.SetRequest(key="k", value=b"v"))

        backing.stop()
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.Get(pb.GetRequest(key="k"), timeout=30)
        # Fails fast, not hangs: a server waiting for Redis to come back would end in the call's own
        # DEADLINE_EXCEEDED, one waiting out its Redis timeout would say "did not answer within 1s";
        # only the refused connection gives this answer.
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
        assert excinfo.value.details().startswith("Redis is unavailable"), excinfo.value.details()
        info, retry = error_info(excinfo.value)
        assert info.reason == "BACKEND_UNAVAILABLE" and info.domain == "coord"
        assert retry is not None and retry.retry_delay.ToMilliseconds() > 0
        wait_for(
            lambda: health_status(server.target) == health_pb2.HealthCheckResponse.NOT_SERVING, "NOT_SERVING"
        )
        assert health_status(server.target, CACHE) == health_pb2.HealthCheckResponse.NOT_SERVING

        backing.start()  # same port, empty data (no persistence in this test)
        wait_for(lambda: health_status(server.target) == health_pb2.HealthCheckResponse.SERVING, "SERVING")
        assert stub.Set(pb.SetRequest(key="k", value=b"again")).outcome == pb.WRITE_OUTCOME_STORED
        assert stub.Get(pb.GetRequest(key="k")).entry.value == b"again"


def test_stalled_redis_is_bounded_by_the_rpc_deadline(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    server = start_coord(backing.url, redis_timeout=5.0)
    assert backing.proc is not None
    with grpc.insecure_channel(server.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        stub.Set(pb.SetRequest(key="k", value=b"v"))  # connection established
        os.kill(backing.proc.pid, signal.SIGSTOP)  # Redis accepts bytes but never answers
        try:
            with pytest.raises(grpc.RpcError) as excinfo:
                stub.Get(pb.GetRequest(key="k"), timeout=0.5)
            # The RPC's deadline ended it, not the 5 s Redis timeout (that is UNAVAILABLE, with
            # BACKEND_UNAVAILABLE). The server's own answer (DEADLINE_TOO_SHORT) and the caller's
            # deadline timer fall due at the same moment: either may be the one that arrives.
            assert excinfo.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            rich = rpc_status.from_call(excinfo.value)  # type: ignore[arg-type]
            if rich is not None:
                assert error_info(excinfo.value)[0].reason == "DEADLINE_TOO_SHORT"
        finally:
            os.kill(backing.proc.pid, signal.SIGCONT)
        wait_for(lambda: health_status(server.target) == health_pb2.HealthCheckResponse.SERVING, "SERVING")
        assert stub.Get(pb.GetRequest(key="k")).entry.value == b"v"


def test_stalled_redis_without_deadline_gives_unavailable_after_redis_timeout(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    server = start_coord(backing.url, redis_timeout=0.5)
    assert backing.proc is not None
    with grpc.insecure_channel(server.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        stub.Set(pb.SetRequest(key="k", value=b"v"))
        os.kill(backing.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(grpc.RpcError) as excinfo:
                stub.Get(pb.GetRequest(key="k"))
            assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(excinfo.value)[0].reason == "BACKEND_UNAVAILABLE"
        finally:
            os.kill(backing.proc.pid, signal.SIGCONT)


def test_script_flush_mid_run_recovers(coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        for round_ in range(3):
            stub.Set(pb.SetRequest(key="a", value=str(round_).encode()))
            stub.BatchSet(
                pb.BatchSetRequest(requests=[pb.SetRequest(key=f"b{i}", value=b"x") for i in range(5)])
            )
            nodes = coord.backing.nodes if isinstance(coord.backing, RedisClusterProcess) else [coord.backing]
            for node in nodes:
                with node.client() as r:
                    r.script_flush()
            assert stub.Get(pb.GetRequest(key="a")).entry.value == str(round_).encode()
            entries = stub.BatchGet(pb.BatchGetRequest(keys=[f"b{i}" for i in range(5)])).entries
            assert all(e.found for e in entries)
            assert stub.Increment(pb.IncrementRequest(key="n", delta=1)).value == round_ + 1


def test_unexpected_failure_is_internal_without_leaking(coord_single: CoordUnderTest) -> None:
    with coord_single.redis() as r:
        r.set("coord:default:cache:{wrongtype}", "a plain string, not a hash")
    with grpc.insecure_channel(coord_single.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.Get(pb.GetRequest(key="wrongtype"))
    err: Any = excinfo.value
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "WRONGTYPE" not in err.details() and "Traceback" not in err.details()
    assert error_info(err)[0].reason == "INTERNAL_ERROR"
