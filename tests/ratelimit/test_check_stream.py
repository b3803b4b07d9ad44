"""CheckStream: each message is decided exactly as Check would decide it, and a bad message gets its
own error answer while the stream goes on."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from coord.common.v1 import errors_pb2
from coord.ratelimit.v1 import ratelimit_pb2 as pb
from coord.ratelimit.v1 import ratelimit_pb2_grpc

from ..conftest import CoordUnderTest

RULE = pb.Rule(algorithm=pb.ALGORITHM_TOKEN_BUCKET, limit=3, period=duration_pb2.Duration(seconds=60))


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[ratelimit_pb2_grpc.RateLimitServiceStub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield ratelimit_pb2_grpc.RateLimitServiceStub(channel)


def check(key: str, **fields: object) -> pb.CheckRequest:
    return pb.CheckRequest(descriptors=[pb.Descriptor(key=key, rule=RULE)], **fields)  # type: ignore[arg-type]


def answers(
    stub: ratelimit_pb2_grpc.RateLimitServiceStub, requests: list[pb.CheckStreamRequest]
) -> dict[int, pb.CheckStreamResponse]:
    replies = list(stub.CheckStream(iter(requests), timeout=10))
    by_id = {r.request_id: r for r in replies}
    assert len(by_id) == len(replies) == len(requests)
    return by_id


def error_details(error: errors_pb2.StreamError) -> tuple[error_details_pb2.ErrorInfo, list[str]]:
    info = error_details_pb2.ErrorInfo()
    fields: list[str] = []
    for detail in error.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return info, fields


def test_stream_decides_like_check(stub: ratelimit_pb2_grpc.RateLimitServiceStub) -> None:
    requests = [pb.CheckStreamRequest(request_id=100 + i, check=check("user:1")) for i in range(5)]
    by_id = answers(stub, requests)
    assert all(r.WhichOneof("result") == "check" for r in by_id.values())
    allowed = [r for r in by_id.values() if r.check.allowed]
    denied = [r for r in by_id.values() if not r.check.allowed]
    assert len(allowed) == 3 and len(denied) == 2
    assert sorted(r.check.remaining for r in allowed) == [0, 1, 2]
    assert all(r.check.retry_after.ToMilliseconds() > 0 for r in denied)
    assert all(r.check.statuses[0].key == "user:1" for r in by_id.values())
    # The stream consumed from the same state a unary Check sees.
    peek = stub.Check(check("user:1", dry_run=True))
    assert not peek.allowed and peek.remaining == 0


def test_bad_message_gets_its_own_error_and_the_stream_goes_on(
    stub: ratelimit_pb2_grpc.RateLimitServiceStub,
) -> None:
    requests = [
        pb.CheckStreamRequest(request_id=1, check=check("a")),
        pb.CheckStreamRequest(request_id=2, check=check("")),
        pb.CheckStreamRequest(request_id=3, check=check("b", cost=-1)),
        pb.CheckStreamRequest(request_id=4, check=pb.CheckRequest()),
        pb.CheckStreamRequest(request_id=5, check=check("c")),
    ]
    by_id = answers(stub, requests)
    assert by_id[1].check.allowed and by_id[5].check.allowed
    expected = {2: "descriptors[0].key", 3: "cost", 4: "descriptors"}
    for request_id, field in expected.items():
        answer = by_id[request_id]
        assert answer.WhichOneof("result") == "error"
        assert answer.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        info, fields = error_details(answer.error)
        assert info.domain == "coord" and info.reason
        assert fields == [field], answer.error.message
    # Unary Check refuses the same input with the same reason.
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(check(""))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_empty_stream_ends_cleanly(stub: ratelimit_pb2_grpc.RateLimitServiceStub) -> None:
    assert list(stub.CheckStream(iter([]), timeout=10)) == []


def test_many_checks_in_flight_are_all_answered(stub: ratelimit_pb2_grpc.RateLimitServiceStub) -> None:
    # More messages than one stream handles at once: the rest wait for room, none is lost.
    requests = [pb.CheckStreamRequest(request_id=i, check=check(f"k{i % 50}")) for i in range(600)]
    by_id = answers(stub, requests)
    assert sum(r.check.allowed for r in by_id.values()) == 50 * 3
