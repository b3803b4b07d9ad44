"""What the collection tests share: durations, the keys a collection leaves in Redis, error reading."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2

from tests.conftest import CoordUnderTest
from tests.security.authkit import Refusal, refusal


def sec(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(round(seconds * 1000))
    return d


def all_keys(coord: CoordUnderTest) -> dict[str, int]:
    """Every key in Redis (each node of a Cluster) with its PTTL in ms."""
    found: dict[str, int] = {}
    with coord.redis() as r:
        for key in r.scan_iter(count=1000):
            found[key.decode()] = r.pttl(key)
    return found


def assert_every_key_expires(coord: CoordUnderTest) -> dict[str, int]:
    """No key without a TTL (PTTL -1) anywhere; returns the keys."""
    keys = all_keys(coord)
    assert {k: t for k, t in keys.items() if t <= 0} == {}
    return keys


def refused(call: Callable[[], Any]) -> Refusal:
    """Run ``call``; it must fail. What it told its caller (code, reason, metadata)."""
    try:
        call()
    except grpc.RpcError as error:
        return refusal(error)
    raise AssertionError("the call did not fail")
