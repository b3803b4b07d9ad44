"""Calling Coord's Envoy rate limit service through the generated stubs, as Envoy would, and
keeping a sequence of calls inside one fixed window of the Redis clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import redis
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf.wrappers_pb2 import UInt64Value
from redis.cluster import RedisCluster

T = TypeVar("T")

OK = rls_pb2.RateLimitResponse.OK
OVER_LIMIT = rls_pb2.RateLimitResponse.OVER_LIMIT
Unit = rls_pb2.RateLimitResponse.RateLimit
UNLIMITED = 2**32 - 1
SECONDS = {Unit.SECOND: 1, Unit.MINUTE: 60, Unit.HOUR: 3600, Unit.DAY: 86_400}


def d(*entries: tuple[str, str], hits: int | None = None, limit: tuple[int, int] | None = None) -> Any:
    """A RateLimitDescriptor of (key, value) entries, with its own hits_addend and limit override."""
    descriptor = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
    )
    if hits is not None:
        descriptor.hits_addend.CopyFrom(UInt64Value(value=hits))
    if limit is not None:
        descriptor.limit.requests_per_unit, descriptor.limit.unit = limit
    return descriptor


class Rls:
    """A client of envoy.service.ratelimit.v3.RateLimitService on one Coord server."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = rls_pb2_grpc.RateLimitServiceStub(self.channel)

    def __call__(self, domain: str, *descriptors: Any, hits: int = 0) -> rls_pb2.RateLimitResponse:
        request = rls_pb2.RateLimitRequest(domain=domain, descriptors=descriptors, hits_addend=hits)
        response: rls_pb2.RateLimitResponse = self.stub.ShouldRateLimit(request, timeout=10)
        return response

    def close(self) -> None:
        self.channel.close()


@dataclass(frozen=True)
class Status:
    """A DescriptorStatus in plain values: code, limit, unit, name, remaining, reset (seconds, nanos)."""

    code: int
    limit: int | None
    unit: int | None
    name: str
    remaining: int
    reset: tuple[int, int] | None

    @classmethod
    def of(cls, status: rls_pb2.RateLimitResponse.DescriptorStatus) -> Status:
        has_limit = status.HasField("current_limit")
        limit = status.current_limit
        reset = status.duration_until_reset
        return cls(
            status.code,
            limit.requests_per_unit if has_limit else None,
            limit.unit if has_limit else None,
            limit.name,
            status.limit_remaining,
            (reset.seconds, reset.nanos) if status.HasField("duration_until_reset") else None,
        )


def statuses(response: rls_pb2.RateLimitResponse) -> list[Status]:
    return [Status.of(s) for s in response.statuses]


def no_limit() -> Status:
    """The status of a descriptor no rule applies to (or whose rule was replaced)."""
    return Status(OK, None, None, "", 0, None)


def unlimited() -> Status:
    return Status(OK, None, None, "", UNLIMITED, None)


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@dataclass
class Window:
    """The Redis clock (whole seconds) before and after a sequence of calls."""

    start: int
    end: int

    def reset_bounds(self, unit_seconds: int) -> tuple[int, int]:
        """The fixed window's duration_until_reset (whole seconds) any call in between could see."""
        return unit_seconds - self.end % unit_seconds, unit_seconds - self.start % unit_seconds


def redis_now(backing: redis.Redis | RedisCluster) -> int:
    """The Redis clock in whole seconds (of one node: a cluster's nodes share this machine's clock)."""
    if isinstance(backing, RedisCluster):
        node = backing.get_primaries()[0]
        return int(backing.time(target_nodes=node)[0])  # type: ignore[index]
    return int(backing.time()[0])  # type: ignore[index]


def in_one_window(
    backing: redis.Redis | RedisCluster, flush: Callable[[], None], unit_seconds: int, calls: Callable[[], T]
) -> tuple[T, Window]:
    """Run ``calls`` (after a flush) until one run lies within one window of ``unit_seconds`` by the
    Redis clock, so that fixed windows aligned to the unit cannot roll over in the middle of it."""
    for _ in range(20):
        flush()
        start = redis_now(backing)
        result = calls()
        end = redis_now(backing)
        if start // unit_seconds == end // unit_seconds:
            return result, Window(start, end)
    raise AssertionError("20 runs in a row crossed a window boundary")
