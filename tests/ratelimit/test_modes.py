"""All-or-nothing and independent modes, scopes, and overall fields."""

from __future__ import annotations

import grpc
import pytest

from .helpers import ALGORITHMS, FIXED_WINDOW, TOKEN_BUCKET, Limiter, bad_field, desc, ms, pb, rule


@pytest.fixture
def rl(coord):
    limiter = Limiter(coord.target)
    yield limiter
    limiter.close()


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_all_or_nothing_denial_consumes_nothing_on_the_other_descriptors(rl, algo):
    roomy, tight = rule(10, 3600, algo), rule(1, 3600, FIXED_WINDOW)
    assert rl.one("global", tight, scope="tenant-7").allowed
    response = rl.check(desc("user:1", roomy), desc("global", tight), scope="tenant-7")
    assert not response.allowed
    user, glob = response.statuses
    assert (user.allowed, user.consumed, user.remaining) == (True, False, 10)
    assert (glob.allowed, glob.consumed) == (False, False)
    assert ms(response.retry_after) == ms(glob.retry_after) > 0
    assert rl.one("user:1", roomy, scope="tenant-7", dry_run=True).remaining == 10


def test_all_or_nothing_consumes_everything_when_all_allow(rl):
    response = rl.check(desc("a", rule(5, 3600)), desc("b", rule(3, 3600, FIXED_WINDOW)), scope="s", cost=2)
    assert response.allowed
    assert [(s.consumed, s.remaining) for s in response.statuses] == [(True, 3), (True, 1)]
    assert (response.limit, response.remaining) == (3, 1)  # the binding descriptor


def test_all_or_nothing_with_different_scopes_is_refused(rl):
    with pytest.raises(grpc.RpcError) as caught:
        rl.check(desc("a", rule(5, 60)), desc("b", rule(5, 60)))
    assert bad_field(caught.value) == ("scope", "RATELIMIT_SCOPE_REQUIRED")


def test_independent_mode_consumes_each_allowed_descriptor_across_scopes(rl):
    tight = rule(1, 3600, FIXED_WINDOW)
    rl.one("global", tight)
    # Different keys, no scope: each key is its own scope (its own cluster slot), one script each.
    keys = [f"user:{i}" for i in range(8)]
    response = rl.check(
        *[desc(k, rule(10, 3600, TOKEN_BUCKET)) for k in keys],
        desc("global", tight, cost=1),
        mode=pb.MODE_INDEPENDENT,
        cost=4,
    )
    assert not response.allowed
    assert [(s.allowed, s.consumed, s.remaining) for s in response.statuses[:-1]] == [(True, True, 6)] * 8
    assert (response.statuses[-1].allowed, response.statuses[-1].consumed) == (False, False)
    for k in keys:
        assert rl.one(k, rule(10, 3600, TOKEN_BUCKET), dry_run=True).remaining == 6


def test_per_descriptor_cost_overrides_the_request_cost(rl):
    response = rl.check(desc("a", rule(10, 60)), desc("b", rule(10, 60), cost=7), scope="s", cost=2)
    assert [s.remaining for s in response.statuses] == [8, 3]


def test_the_same_key_in_two_scopes_has_two_states(rl):
    r = rule(1, 3600, FIXED_WINDOW)
    assert rl.one("k", r, scope="x").allowed
    assert rl.one("k", r, scope="y").allowed
    assert rl.one("k", r).allowed
    assert not rl.one("k", r, scope="x").allowed
