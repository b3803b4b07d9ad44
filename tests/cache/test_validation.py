"""Every invalid CacheService request gets a clear error naming the field, with rich details."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc

from ..conftest import CoordUnderTest


@pytest.fixture
def stub(coord_single: CoordUnderTest) -> Iterator[cache_pb2_grpc.CacheServiceStub]:
    with grpc.insecure_channel(coord_single.target) as channel:
        yield cache_pb2_grpc.CacheServiceStub(channel)


def details(err: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, list[tuple[str, str]], Any]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    info = error_details_pb2.ErrorInfo()
    violations: list[tuple[str, str]] = []
    retry = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    assert info.domain == "coord"
    return info, violations, retry


def call_error(fn: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        fn()
    return excinfo.value


def dur(seconds: int = 0, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


CASES = [
    ("get empty key", lambda s: s.Get(pb.GetRequest(key="")), "INVALID_ARGUMENT", "INVALID_FIELD", "key"),
    (
        "key too long",
        lambda s: s.Get(pb.GetRequest(key="k" * 1025)),
        "INVALID_ARGUMENT",
        "KEY_TOO_LONG",
        "key",
    ),
    (
        "key with newline",
        lambda s: s.Set(pb.SetRequest(key="a\nb")),
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "key",
    ),
    (
        "value too large",
        lambda s: s.Set(pb.SetRequest(key="big", value=b"x" * ((1 << 20) + 1))),
        "RESOURCE_EXHAUSTED",
        "VALUE_TOO_LARGE",
        "value",
    ),
    (
        "negative ttl",
        lambda s: s.Set(pb.SetRequest(key="a", ttl=dur(-1))),
        "INVALID_ARGUMENT",
        "TTL_OUT_OF_RANGE",
        "ttl",
    ),
    (
        "ttl below 1 ms",
        lambda s: s.Set(pb.SetRequest(key="a", ttl=dur(0, 999))),
        "INVALID_ARGUMENT",
        "TTL_OUT_OF_RANGE",
        "ttl",
    ),
    (
        "ttl above max",
        lambda s: s.Set(pb.SetRequest(key="a", ttl=dur(31 * 86400))),
        "INVALID_ARGUMENT",
        "TTL_OUT_OF_RANGE",
        "ttl",
    ),
    (
        "if_version zero",
        lambda s: s.Set(pb.SetRequest(key="a", if_version=0)),
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "if_version",
    ),
    (
        "batch get empty",
        lambda s: s.BatchGet(pb.BatchGetRequest()),
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "keys",
    ),
    (
        "batch get too many",
        lambda s: s.BatchGet(pb.BatchGetRequest(keys=["k"] * 1001)),
        "INVALID_ARGUMENT",
        "BATCH_TOO_LARGE",
        "keys",
    ),
    (
        "batch get bad item",
        lambda s: s.BatchGet(pb.BatchGetRequest(keys=["ok", ""])),
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "keys[1]",
    ),
    (
        "batch set bad item",
        lambda s: s.BatchSet(
            pb.BatchSetRequest(requests=[pb.SetRequest(key="a"), pb.SetRequest(key="b", ttl=dur(-5))])
        ),
        "INVALID_ARGUMENT",
        "TTL_OUT_OF_RANGE",
        "requests[1].ttl",
    ),
    (
        "batch set empty",
        lambda s: s.BatchSet(pb.BatchSetRequest()),
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "requests",
    ),
    ("delete no keys", lambda s: s.Delete(pb.DeleteRequest()), "INVALID_ARGUMENT", "INVALID_FIELD", "keys"),
    (
        "delete if_version with two keys",
        lambda s: s.Delete(pb.DeleteRequest(keys=["a", "b"], if_version=3)),
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "if_version",
    ),
    (
        "increment bad ttl",
        lambda s: s.Increment(pb.IncrementRequest(key="n", delta=1, ttl=dur(-1))),
        "INVALID_ARGUMENT",
        "TTL_OUT_OF_RANGE",
        "ttl",
    ),
    (
        "increment empty key",
        lambda s: s.Increment(pb.IncrementRequest()),
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "key",
    ),
    ("touch empty key", lambda s: s.Touch(pb.TouchRequest()), "INVALID_ARGUMENT", "INVALID_FIELD", "key"),
    (
        "touch bad nanos",
        lambda s: s.Touch(pb.TouchRequest(key="a", ttl=dur(1, -5))),
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "ttl",
    ),
]


@pytest.mark.parametrize(("name", "call", "code", "reason", "field"), CASES, ids=[c[0] for c in CASES])
def test_invalid_requests(
    stub: cache_pb2_grpc.CacheServiceStub, name: str, call: Any, code: str, reason: str, field: str
) -> None:
    err = call_error(lambda: call(stub))
    assert err.code() == getattr(grpc.StatusCode, code), err.details()
    info, violations, _ = details(err)
    assert info.reason == reason
    assert info.metadata["field"] == field
    assert violations and violations[0][0] == field
    assert err.details().startswith(field + ":")


def test_limit_is_reported_in_metadata(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    err = call_error(lambda: stub.Get(pb.GetRequest(key="k" * 2000)))
    info, _, _ = details(err)
    assert info.metadata["limit"] == "1024" and info.metadata["actual"] == "2000"
    assert "1024" in err.details()


def test_nothing_written_by_a_rejected_batch(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    call_error(
        lambda: stub.BatchSet(
            pb.BatchSetRequest(requests=[pb.SetRequest(key="good", value=b"1"), pb.SetRequest(key="")])
        )
    )
    assert not stub.Get(pb.GetRequest(key="good")).entry.found


def test_configured_limits_apply(start_coord: Any, redis_single: Any) -> None:
    server = start_coord(
        redis_single.url, max_key_bytes=8, max_value_bytes=16, max_batch=2, max_ttl=10.0, default_ttl=5.0
    )
    with grpc.insecure_channel(server.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        assert (
            details(call_error(lambda: stub.Get(pb.GetRequest(key="123456789"))))[0].reason == "KEY_TOO_LONG"
        )
        big = call_error(lambda: stub.Set(pb.SetRequest(key="k", value=b"x" * 17)))
        assert big.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "16 bytes" in big.details()
        many = call_error(lambda: stub.BatchGet(pb.BatchGetRequest(keys=["a", "b", "c"])))
        assert details(many)[0].reason == "BATCH_TOO_LARGE"
        long_ttl = call_error(lambda: stub.Set(pb.SetRequest(key="k", ttl=dur(11))))
        assert details(long_ttl)[0].reason == "TTL_OUT_OF_RANGE"
        assert (
            stub.Set(pb.SetRequest(key="k", value=b"x" * 16, ttl=dur(10))).outcome == pb.WRITE_OUTCOME_STORED
        )
