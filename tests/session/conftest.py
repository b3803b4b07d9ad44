"""Helpers for the Session tests: a stub per test, rich-error decoding and a full Redis audit."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.session.v1 import session_pb2 as pb
from coord.session.v1 import session_pb2_grpc


@pytest.fixture
def sessions(coord: Any) -> Iterator[session_pb2_grpc.SessionServiceStub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield session_pb2_grpc.SessionServiceStub(channel)


def ms(millis: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(millis)
    return d


def create(stub: Any, subject: str = "alice", **kwargs: Any) -> pb.CreateResponse:
    return stub.Create(pb.CreateRequest(subject=subject, **kwargs))


def validate(stub: Any, token: str, **kwargs: Any) -> pb.ValidateResponse:
    return stub.Validate(pb.ValidateRequest(token=token, **kwargs))


def reason_of(response: Any) -> int:
    """The InvalidReason of a response whose result is ``invalid`` (fails the test otherwise)."""
    assert response.WhichOneof("result") == "invalid", response
    return int(response.invalid.reason)


def error_info(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str], list[str]]:
    """(code, ErrorInfo reason, ErrorInfo metadata, BadRequest fields) of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    reason, metadata, fields = "", {}, []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
            assert info.domain == "coord"
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return error.code(), reason, metadata, fields  # type: ignore[attr-defined]


def wait_until(check: Callable[[], Any], timeout: float = 10.0, step: float = 0.01) -> Any:
    """Poll ``check`` until it returns something truthy; returns that value."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(step)


def redis_now_ms(coord: Any) -> int:
    """Redis's clock (TIME), in milliseconds: the clock that expires sessions and their keys."""
    nodes = getattr(coord.backing, "nodes", [coord.backing])  # a cluster's nodes share this host's clock
    with nodes[0].client() as r:
        seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def redis_contents(coord: Any) -> list[tuple[bytes, int, list[bytes]]]:
    """Every key of the backing Redis (all cluster nodes) with its PTTL and every byte string in it."""
    out = []
    with coord.redis() as r:
        for key in r.scan_iter(count=1000):
            kind = r.type(key).decode()
            parts: list[bytes]
            if kind == "hash":
                parts = [b for pair in r.hgetall(key).items() for b in pair]
            elif kind == "zset":
                parts = [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
            elif kind == "string":
                parts = [r.get(key)]
            else:
                raise AssertionError(f"unexpected {kind} key {key!r}")
            out.append((key, r.pttl(key), parts))
    return out


def assert_clean(coord: Any, tokens: Iterable[str] = ()) -> None:
    """No key without a TTL, and no token (nor its secret part) in any key name or value."""
    secrets = [t.encode() for t in tokens] + [t[-43:].encode() for t in tokens]
    for key, pttl, parts in redis_contents(coord):
        assert pttl > 0, f"key {key!r} has no TTL (PTTL {pttl})"
        for secret in secrets:
            assert secret not in key
            for part in parts:
                assert secret not in part, f"a token appears in Redis under {key!r}"
