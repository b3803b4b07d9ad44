"""Every TTL and lease a request gives is checked alike (errors.proto, TTL_OUT_OF_RANGE): a negative
one, one below the minimum and one above the maximum are INVALID_ARGUMENT with reason
TTL_OUT_OF_RANGE, ErrorInfo metadata ``field``, ``min`` and ``max``, and a BadRequest violation naming
the field; zero means the field's default where the contract gives one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.collections.v1 import (
    collection_pb2,
    list_pb2,
    list_pb2_grpc,
    map_pb2,
    map_pb2_grpc,
    set_pb2,
    set_pb2_grpc,
    sorted_set_pb2,
    sorted_set_pb2_grpc,
)
from coord.election.v1 import election_pb2, election_pb2_grpc
from coord.lock.v1 import lock_pb2, lock_pb2_grpc
from coord.session.v1 import session_pb2, session_pb2_grpc

from ..conftest import CoordThread, RedisProcess, make_settings
from ..election._util import CampaignStream
from ..lock._util import HoldStream

D = duration_pb2.Duration
X = lock_pb2.LOCK_MODE_EXCLUSIVE
# A server whose TTL bounds make every case distinct: 2 s to 1 h, default 10 s.
SETTINGS = {"min_ttl": 2.0, "max_ttl": 3600.0, "default_ttl": 10.0}
# A token that is well formed (the token is checked before the grace): the session need not exist.
SESSION_TOKEN = "cs1_000" + "a" * 22 + "b" * 43

Call = Callable[[grpc.Channel, duration_pb2.Duration], object]


@pytest.fixture(scope="module")
def channel(redis_single: RedisProcess) -> Iterator[grpc.Channel]:
    server = CoordThread(make_settings(redis_single.url, **SETTINGS)).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            yield channel
    finally:
        server.stop()


# -- the calls, one per TTL field --------------------------------------------------------------------


def cache_set(ch: grpc.Channel, ttl: D) -> object:
    return cache_pb2_grpc.CacheServiceStub(ch).Set(cache_pb2.SetRequest(key="k", value=b"v", ttl=ttl))


def cache_batch_set(ch: grpc.Channel, ttl: D) -> object:
    item = cache_pb2.SetRequest(key="k", value=b"v", ttl=ttl)
    return cache_pb2_grpc.CacheServiceStub(ch).BatchSet(cache_pb2.BatchSetRequest(requests=[item]))


def cache_touch(ch: grpc.Channel, ttl: D) -> object:
    return cache_pb2_grpc.CacheServiceStub(ch).Touch(cache_pb2.TouchRequest(key="k", ttl=ttl))


def cache_increment(ch: grpc.Channel, ttl: D) -> object:
    return cache_pb2_grpc.CacheServiceStub(ch).Increment(cache_pb2.IncrementRequest(key="n", ttl=ttl))


def cache_get_or_lease(ch: grpc.Channel, ttl: D) -> object:
    request = cache_pb2.GetOrLeaseRequest(key="k", lease_ttl=ttl)
    return cache_pb2_grpc.CacheServiceStub(ch).GetOrLease(request)


def lock_acquire(ch: grpc.Channel, ttl: D) -> object:
    return lock_pb2_grpc.LockServiceStub(ch).Acquire(lock_pb2.AcquireRequest(name="L", mode=X, ttl=ttl))


def lock_extend(ch: grpc.Channel, ttl: D) -> object:
    request = lock_pb2.ExtendRequest(name="L", lock_token="t", ttl=ttl)
    return lock_pb2_grpc.LockServiceStub(ch).Extend(request)


def lock_hold_acquire(ch: grpc.Channel, ttl: D) -> object:
    hold = HoldStream(lock_pb2_grpc.LockServiceStub(ch), timeout=10)
    hold.acquire("H", mode=X, ttl=ttl)
    return hold.next()


def lock_hold_heartbeat(ch: grpc.Channel, ttl: D) -> object:
    hold = HoldStream(lock_pb2_grpc.LockServiceStub(ch), timeout=10)
    hold.acquire("HB", mode=X, ttl=D(seconds=30))
    assert hold.next().WhichOneof("kind") == "acquired"
    hold.send(lock_pb2.HoldRequest(heartbeat=lock_pb2.HoldHeartbeat(ttl=ttl)))
    try:
        return hold.next()
    finally:
        hold.cut()


def election_join(ch: grpc.Channel, ttl: D) -> object:
    campaign = CampaignStream(election_pb2_grpc.ElectionServiceStub(ch), timeout=10)
    campaign.send(election_pb2.CampaignRequest(join=election_pb2.CampaignJoin(name="E", ttl=ttl)))
    return campaign.next()


def election_keep_alive(ch: grpc.Channel, ttl: D) -> object:
    campaign = CampaignStream(election_pb2_grpc.ElectionServiceStub(ch), timeout=10)
    campaign.elected("EK", ttl=30)
    campaign.send(election_pb2.CampaignRequest(keep_alive=election_pb2.CampaignKeepAlive(ttl=ttl)))
    try:
        return campaign.next()
    finally:
        campaign.cut()


def session_idle(ch: grpc.Channel, ttl: D) -> object:
    request = session_pb2.CreateRequest(idle_timeout=ttl)
    return session_pb2_grpc.SessionServiceStub(ch).Create(request)


def session_absolute(ch: grpc.Channel, ttl: D) -> object:
    request = session_pb2.CreateRequest(idle_timeout=D(seconds=2), absolute_timeout=ttl)
    return session_pb2_grpc.SessionServiceStub(ch).Create(request)


def session_grace(ch: grpc.Channel, ttl: D) -> object:
    request = session_pb2.RotateRequest(token=SESSION_TOKEN, grace=ttl)
    return session_pb2_grpc.SessionServiceStub(ch).Rotate(request)


def map_set(ch: grpc.Channel, ttl: D) -> object:
    request = map_pb2.MapServiceSetRequest(
        name="m",
        fields=[map_pb2.MapField(field="f", value=b"v")],
        options=collection_pb2.WriteOptions(ttl=ttl),
    )
    return map_pb2_grpc.MapServiceStub(ch).Set(request)


def map_touch(ch: grpc.Channel, ttl: D) -> object:
    return map_pb2_grpc.MapServiceStub(ch).Touch(map_pb2.MapServiceTouchRequest(name="m", ttl=ttl))


def list_touch(ch: grpc.Channel, ttl: D) -> object:
    return list_pb2_grpc.ListServiceStub(ch).Touch(list_pb2.ListServiceTouchRequest(name="l", ttl=ttl))


def set_touch(ch: grpc.Channel, ttl: D) -> object:
    return set_pb2_grpc.SetServiceStub(ch).Touch(set_pb2.SetServiceTouchRequest(name="s", ttl=ttl))


def sorted_set_touch(ch: grpc.Channel, ttl: D) -> object:
    request = sorted_set_pb2.SortedSetServiceTouchRequest(name="z", ttl=ttl)
    return sorted_set_pb2_grpc.SortedSetServiceStub(ch).Touch(request)


@dataclass(frozen=True)
class Field:
    call: Call
    field: str
    min: str
    max: str


# Bounded by COORD_MIN_TTL..COORD_MAX_TTL (2s..1h here); unset or zero means a default.
SERVER_BOUNDS = {
    "cache Set": Field(cache_set, "ttl", "2s", "1h"),
    "cache BatchSet": Field(cache_batch_set, "requests[0].ttl", "2s", "1h"),
    "cache Touch": Field(cache_touch, "ttl", "2s", "1h"),
    "cache Increment": Field(cache_increment, "ttl", "2s", "1h"),
    "lock Acquire": Field(lock_acquire, "ttl", "2s", "1h"),
    "lock Extend": Field(lock_extend, "ttl", "2s", "1h"),
    "lock Hold acquire": Field(lock_hold_acquire, "acquire.ttl", "2s", "1h"),
    "lock Hold heartbeat": Field(lock_hold_heartbeat, "heartbeat.ttl", "2s", "1h"),
    "election join": Field(election_join, "join.ttl", "2s", "1h"),
    "election keep_alive": Field(election_keep_alive, "keep_alive.ttl", "2s", "1h"),
    "session idle_timeout": Field(session_idle, "idle_timeout", "2s", "1h"),
    "session absolute_timeout": Field(session_absolute, "absolute_timeout", "2s", "1h"),
    "map WriteOptions": Field(map_set, "options.ttl", "2s", "1h"),
    "map Touch": Field(map_touch, "ttl", "2s", "1h"),
    "list Touch": Field(list_touch, "ttl", "2s", "1h"),
    "set Touch": Field(set_touch, "ttl", "2s", "1h"),
    "sorted set Touch": Field(sorted_set_touch, "ttl", "2s", "1h"),
}
OUT_OF_SERVER_BOUNDS = {
    "negative": D(seconds=-1),
    "negative nanos": D(nanos=-1),
    "below the minimum": D(seconds=1, nanos=999_000_000),
    "below 1 ms": D(nanos=500_000),
    "above the maximum": D(seconds=3601),
}
# Their own bounds: the fill lease is required (1 ms to COORD_CACHE_MAX_LEASE, 1 min); the grace of
# a rotated token may be 0 (a hard cut) up to COORD_SESSION_MAX_GRACE (5 min).
OWN_BOUNDS = [
    ("lease negative", Field(cache_get_or_lease, "lease_ttl", "1ms", "1m"), D(seconds=-1)),
    ("lease zero (required)", Field(cache_get_or_lease, "lease_ttl", "1ms", "1m"), D()),
    ("lease below 1 ms", Field(cache_get_or_lease, "lease_ttl", "1ms", "1m"), D(nanos=999_999)),
    ("lease above the maximum", Field(cache_get_or_lease, "lease_ttl", "1ms", "1m"), D(seconds=61)),
    ("grace negative", Field(session_grace, "grace", "0", "5m"), D(seconds=-1)),
    ("grace below 1 ms", Field(session_grace, "grace", "0", "5m"), D(nanos=1)),
    ("grace above the maximum", Field(session_grace, "grace", "0", "5m"), D(seconds=301)),
]


# The metadata gives the bounds in whole milliseconds (one unit a program parses); the message in the
# settings' syntax.
AS_MS = {"0": "0ms", "1ms": "1ms", "2s": "2000ms", "1m": "60000ms", "5m": "300000ms", "1h": "3600000ms"}


def refusal(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, list[tuple[str, str]]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            detail.Unpack(bad)
    return info, [(v.field, v.description) for v in bad.field_violations]


def assert_ttl_out_of_range(channel: grpc.Channel, spec: Field, ttl: D) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        spec.call(channel, ttl)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    info, violations = refusal(error)
    assert info.reason == "TTL_OUT_OF_RANGE", error.details()
    assert dict(info.metadata) == {"field": spec.field, "min": AS_MS[spec.min], "max": AS_MS[spec.max]}
    assert [field for field, _ in violations] == [spec.field]
    assert f"and {spec.max} (got " in violations[0][1]  # the range and the value, in the message too


@pytest.mark.parametrize("value", OUT_OF_SERVER_BOUNDS.values(), ids=OUT_OF_SERVER_BOUNDS.keys())
@pytest.mark.parametrize("spec", SERVER_BOUNDS.values(), ids=SERVER_BOUNDS.keys())
def test_a_ttl_outside_the_server_bounds_is_ttl_out_of_range(
    channel: grpc.Channel, spec: Field, value: D
) -> None:
    assert_ttl_out_of_range(channel, spec, value)


@pytest.mark.parametrize(("spec", "value"), [c[1:] for c in OWN_BOUNDS], ids=[c[0] for c in OWN_BOUNDS])
def test_a_lease_or_grace_outside_its_bounds_is_ttl_out_of_range(
    channel: grpc.Channel, spec: Field, value: D
) -> None:
    assert_ttl_out_of_range(channel, spec, value)


@pytest.mark.parametrize("spec", SERVER_BOUNDS.values(), ids=SERVER_BOUNDS.keys())
def test_the_bounds_themselves_are_accepted(channel: grpc.Channel, spec: Field) -> None:
    for ttl in (D(seconds=2), D(seconds=3600)):
        try:
            spec.call(channel, ttl)
        except grpc.RpcError as error:  # another refusal (a lock token nobody holds) is not the TTL's
            assert error.code() != grpc.StatusCode.INVALID_ARGUMENT, error.details()


def test_zero_means_the_default_ttl(channel: grpc.Channel) -> None:
    """Zero (or unset) is not out of range: the server's default TTL (10 s here) applies."""
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    before = time.time()
    stub.Set(cache_pb2.SetRequest(key="zero", value=b"v", ttl=D()))
    stub.Set(cache_pb2.SetRequest(key="unset", value=b"v"))
    for key in ("zero", "unset"):
        expires = stub.Get(cache_pb2.GetRequest(key=key)).entry.expire_time.ToSeconds()
        # Bounds, not timing: between the 2 s minimum and the 10 s default from the first write.
        assert before + 2 < expires <= time.time() + 10
    granted = lock_pb2_grpc.LockServiceStub(channel).Acquire(
        lock_pb2.AcquireRequest(name="zero", mode=X, ttl=D())
    )
    assert granted.acquired and 2 < granted.grant.valid_for.ToSeconds() <= 30  # the lock default


def test_a_grace_of_zero_is_a_hard_cut_not_out_of_range(channel: grpc.Channel) -> None:
    stub = session_pb2_grpc.SessionServiceStub(channel)
    created = stub.Create(session_pb2.CreateRequest(idle_timeout=D(seconds=60)))
    rotated = stub.Rotate(session_pb2.RotateRequest(token=created.token, grace=D()))
    assert rotated.WhichOneof("result") == "rotated"
    old = stub.Validate(session_pb2.ValidateRequest(token=created.token))
    assert old.WhichOneof("result") == "invalid"
