"""COORD_RATELIMIT_DENY_CACHE: repeated checks of a key denied until T are answered without Redis until
T, with exactly the answer Redis would give, and never past T."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from coord.ratelimit.v1 import ratelimit_pb2 as pb
from coord.ratelimit.v1 import ratelimit_pb2_grpc

from ..conftest import CoordThread, RedisProcess
from .helpers import ALGORITHMS, FIXED_WINDOW, ms, rule


def check(key: str, r: pb.Rule, **fields: Any) -> pb.CheckRequest:
    return pb.CheckRequest(descriptors=[pb.Descriptor(key=key, rule=r)], **fields)


@pytest.fixture
def backing(redis_factory: Callable[..., RedisProcess]) -> RedisProcess:
    return redis_factory()


@pytest.fixture
def servers(
    backing: RedisProcess, start_coord: Callable[..., CoordThread]
) -> Iterator[tuple[ratelimit_pb2_grpc.RateLimitServiceStub, ratelimit_pb2_grpc.RateLimitServiceStub]]:
    """(a server remembering denials, a second server without the memory), sharing one Redis."""
    cached = start_coord(backing.url, ratelimit_deny_cache=True)
    plain = start_coord(backing.url)
    with grpc.insecure_channel(cached.target) as a, grpc.insecure_channel(plain.target) as b:
        yield ratelimit_pb2_grpc.RateLimitServiceStub(a), ratelimit_pb2_grpc.RateLimitServiceStub(b)


def evalsha_calls(redis: RedisProcess) -> int:
    with redis.client() as r:
        stats = r.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0)) + int(
        stats.get("cmdstat_eval", {}).get("calls", 0)
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_denied_key_is_answered_from_memory_exactly_as_redis_would(
    servers: tuple[Any, Any], backing: RedisProcess, algorithm: int
) -> None:
    cached, plain = servers
    r = rule(2, 30, algorithm)
    key = f"denied:{algorithm}"
    assert cached.Check(check(key, r)).allowed and cached.Check(check(key, r)).allowed
    first = cached.Check(check(key, r))  # Redis denies: remembered
    assert not first.allowed and first.remaining == 0
    before = evalsha_calls(backing)
    remembered = [cached.Check(check(key, r)) for _ in range(20)]
    assert evalsha_calls(backing) == before  # no script ran for them
    truth = plain.Check(check(key, r))  # the other server asks Redis
    for answer in remembered[-1:]:
        assert not answer.allowed and answer.remaining == 0
        assert not answer.statuses[0].consumed and answer.statuses[0].remaining == 0
        # Same figures as Redis's own answer, within the time between the two calls.
        assert abs(ms(answer.retry_after) - ms(truth.retry_after)) <= 50
        assert abs(ms(answer.reset_after) - ms(truth.reset_after)) <= 50
        assert answer.ratelimit_policy_header == truth.ratelimit_policy_header
        assert answer.limit == truth.limit and answer.statuses[0].name == truth.statuses[0].name
        assert abs(answer.decide_time.ToMilliseconds() - truth.decide_time.ToMilliseconds()) <= 50
    assert ms(remembered[-1].retry_after) <= ms(first.retry_after)  # counts down


def test_the_memory_ends_when_the_denial_does(servers: tuple[Any, Any], backing: RedisProcess) -> None:
    cached, _ = servers
    r = rule(1, 0.3, FIXED_WINDOW)  # one per 300 ms window
    key = "short"
    while not cached.Check(check(key, r)).allowed:  # start at a fresh window's first unit
        time.sleep(0.02)
    denied = cached.Check(check(key, r))
    assert not denied.allowed
    time.sleep(ms(denied.retry_after) / 1000 + 0.02)
    before = evalsha_calls(backing)
    assert cached.Check(check(key, r)).allowed  # past retry_after: Redis decides again
    assert evalsha_calls(backing) == before + 1


def test_only_identical_checks_are_answered_from_memory(
    servers: tuple[Any, Any], backing: RedisProcess
) -> None:
    cached, _ = servers
    r = rule(1, 60, FIXED_WINDOW)
    assert cached.Check(check("same", r)).allowed
    assert not cached.Check(check("same", r)).allowed
    before = evalsha_calls(backing)
    cached.Check(check("same", r, cost=1))  # identical: memory
    assert evalsha_calls(backing) == before
    cached.Check(check("same", rule(5, 60, FIXED_WINDOW)))  # another rule on the key: Redis
    cached.Check(check("same", r, scope="other"))  # another scope: Redis (its own state)
    two = pb.CheckRequest(
        scope="same",
        descriptors=[pb.Descriptor(key="same", rule=r), pb.Descriptor(key="x", rule=r)],
    )
    cached.Check(two)  # several descriptors: Redis
    assert evalsha_calls(backing) == before + 3


def test_a_reset_through_this_server_forgets_at_once(servers: tuple[Any, Any]) -> None:
    cached, _ = servers
    r = rule(1, 60, FIXED_WINDOW)
    assert cached.Check(check("login:alice", r)).allowed
    assert not cached.Check(check("login:alice", r)).allowed
    assert cached.Reset(pb.ResetRequest(key="login:alice")).existed
    assert cached.Check(check("login:alice", r)).allowed


def test_a_reset_through_another_server_is_seen_at_retry_after(servers: tuple[Any, Any]) -> None:
    """The documented bound of opting in: this server keeps the denial it saw until its retry_after."""
    cached, plain = servers
    r = rule(1, 0.5, FIXED_WINDOW)
    while not cached.Check(check("elsewhere", r)).allowed:
        time.sleep(0.02)
    denied = cached.Check(check("elsewhere", r))
    assert not denied.allowed
    assert plain.Reset(pb.ResetRequest(key="elsewhere")).existed
    assert plain.Check(check("elsewhere", r, dry_run=True)).allowed  # Redis: free again
    assert not cached.Check(check("elsewhere", r, dry_run=True)).allowed  # this server: not yet
    time.sleep(ms(denied.retry_after) / 1000 + 0.02)
    assert cached.Check(check("elsewhere", r, dry_run=True)).allowed


def test_without_the_setting_every_check_asks_redis(servers: tuple[Any, Any], backing: RedisProcess) -> None:
    _, plain = servers
    r = rule(1, 60, FIXED_WINDOW)
    assert plain.Check(check("plain", r)).allowed
    before = evalsha_calls(backing)
    for _ in range(5):
        assert not plain.Check(check("plain", r)).allowed
    assert evalsha_calls(backing) == before + 5
