"""Builders and assertions shared by the rate limit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

pb = ratelimit_pb2
TOKEN_BUCKET = pb.ALGORITHM_TOKEN_BUCKET
SLIDING_WINDOW = pb.ALGORITHM_SLIDING_WINDOW
SLIDING_LOG = pb.ALGORITHM_SLIDING_LOG
FIXED_WINDOW = pb.ALGORITHM_FIXED_WINDOW
ALGORITHMS = [TOKEN_BUCKET, SLIDING_WINDOW, SLIDING_LOG, FIXED_WINDOW]


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def ms(d: duration_pb2.Duration) -> int:
    return int(d.ToMilliseconds())


def rule(limit: int, period: float, algorithm: int = TOKEN_BUCKET, **kw: Any) -> ratelimit_pb2.Rule:
    return pb.Rule(algorithm=algorithm, limit=limit, period=dur(period), **kw)


def desc(key: str, r: ratelimit_pb2.Rule | None = None, **kw: Any) -> ratelimit_pb2.Descriptor:
    return pb.Descriptor(key=key, rule=r, **kw)


class Limiter:
    """A raw-stub client of one Coord target."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = ratelimit_pb2_grpc.RateLimitServiceStub(self.channel)

    def check(self, *descriptors: ratelimit_pb2.Descriptor, **kw: Any) -> ratelimit_pb2.CheckResponse:
        return self.stub.Check(pb.CheckRequest(descriptors=descriptors, **kw), timeout=10)

    def one(self, key: str, r: ratelimit_pb2.Rule, **kw: Any) -> ratelimit_pb2.CheckResponse:
        return self.check(desc(key, r), **kw)

    def reset(self, key: str, scope: str = "") -> bool:
        return self.stub.Reset(pb.ResetRequest(key=key, scope=scope), timeout=10).existed

    def close(self) -> None:
        self.channel.close()


def bad_field(error: grpc.RpcError) -> tuple[str, str]:
    """(field named by the BadRequest detail, ErrorInfo reason) of an INVALID_ARGUMENT error."""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    field, reason = "", ""
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            field = bad.field_violations[0].field
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return field, reason


def all_keys(coord: Any) -> Iterator[tuple[bytes, int]]:
    """Every key of the backing Redis (all cluster nodes) with its PTTL."""
    nodes = getattr(coord.backing, "nodes", [coord.backing])
    for node in nodes:
        with node.client() as r:
            for key in r.scan_iter(count=1000):
                yield key, int(r.pttl(key))


def redis_now_ms(coord: Any) -> int:
    nodes = getattr(coord.backing, "nodes", [coord.backing])
    with nodes[0].client() as r:
        seconds, micros = r.time()
        return int(seconds) * 1000 + int(micros) // 1000
