"""GetStream: each message is answered exactly as Get would answer it, and a bad message gets its
own error answer while the stream goes on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc

from ..conftest import CoordUnderTest


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[cache_pb2_grpc.CacheServiceStub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield cache_pb2_grpc.CacheServiceStub(channel)


def test_hits_misses_and_errors_each_get_their_answer(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    stored = stub.Set(pb.SetRequest(key="k1", value=b"one", ttl=duration_pb2.Duration(seconds=60)))
    requests = [
        pb.GetStreamRequest(request_id=7, get=pb.GetRequest(key="k1")),
        pb.GetStreamRequest(request_id=8, get=pb.GetRequest(key="missing")),
        pb.GetStreamRequest(request_id=9, get=pb.GetRequest(key="")),
        pb.GetStreamRequest(request_id=10, get=pb.GetRequest(key="x" * 5000)),
        pb.GetStreamRequest(request_id=11, get=pb.GetRequest(key="k1")),
    ]
    by_id = {r.request_id: r for r in stub.GetStream(iter(requests), timeout=10)}
    assert sorted(by_id) == [7, 8, 9, 10, 11]
    for hit in (by_id[7], by_id[11]):
        assert hit.get == stub.Get(pb.GetRequest(key="k1"))
        assert hit.get.entry.value == b"one" and hit.get.entry.version == stored.version
    assert by_id[8].WhichOneof("result") == "get" and not by_id[8].get.entry.found
    for bad in (by_id[9], by_id[10]):
        assert bad.WhichOneof("result") == "error"
        assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        info = error_details_pb2.ErrorInfo()
        violations = error_details_pb2.BadRequest()
        for detail in bad.error.details:
            if detail.Is(info.DESCRIPTOR):
                detail.Unpack(info)
            elif detail.Is(violations.DESCRIPTOR):
                detail.Unpack(violations)
        assert info.domain == "coord" and info.reason
        assert [v.field for v in violations.field_violations] == ["key"]


def test_stream_deadline_bounds_the_stream(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    release = threading.Event()

    def requests() -> Iterator[pb.GetStreamRequest]:
        yield pb.GetStreamRequest(request_id=1, get=pb.GetRequest(key="k"))
        release.wait(5)  # the caller keeps its side open past the deadline

    replies = stub.GetStream(requests(), timeout=0.5)
    first = next(replies)
    assert first.request_id == 1 and not first.get.entry.found
    with pytest.raises(grpc.RpcError) as caught:
        next(replies)
    release.set()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
